import { BUCKET_MS, type UsageQuery } from "../ports/usage-recorder.js";

/**
 * The usage query shared by SQLite and PostgreSQL: minute rows summed into buckets. The bucket
 * width is a number from a fixed table, never caller text; every filter is a bound parameter.
 */
export function buildUsageQuery(query: UsageQuery, placeholder: (index: number) => string): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  const bind = (value: unknown): string => {
    params.push(value);
    return placeholder(params.length);
  };
  const width = BUCKET_MS[query.bucket];
  const where = [`minute >= ${bind(query.since)}`, `minute < ${bind(query.until)}`];
  if (query.keyId !== undefined) where.push(`key_id = ${bind(query.keyId)}`);
  if (query.owner !== undefined) where.push(`owner = ${bind(query.owner)}`);
  if (query.outcome !== undefined) where.push(`outcome = ${bind(query.outcome)}`);
  const start = `(minute - (minute % ${width}))`;
  if (query.groupBy === "outcome")
    return {
      sql: `SELECT ${start} AS start, '' AS key_id, outcome, SUM(count) AS count FROM usage_counts
            WHERE ${where.join(" AND ")} GROUP BY ${start}, outcome ORDER BY start, outcome LIMIT ${bind(query.limit)}`,
      params,
    };
  return {
    sql: `SELECT ${start} AS start, key_id, outcome, SUM(count) AS count FROM usage_counts
          WHERE ${where.join(" AND ")} GROUP BY ${start}, key_id, outcome ORDER BY start, key_id, outcome LIMIT ${bind(query.limit)}`,
    params,
  };
}
