import type pg from "pg";
import type { OutcomeCode } from "../../core/outcomes.js";
import { BUCKET_MS, type LastUse, type UsageCount, type UsageQuery, type UsageRow, type UsageStore } from "../../ports/usage-recorder.js";
import { buildUsageQuery } from "../usage-sql.js";
import { migratePool, USAGE_POSTGRES_MIGRATIONS } from "./migrations.js";

function* chunks<T>(items: readonly T[], size: number): Generator<readonly T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

/** `($from, $from+1, …)`: one row of `count` numbered placeholders. */
const placeholders = (from: number, count: number): string => `(${Array.from({ length: count }, (_, i) => `$${from + i}`).join(", ")})`;

/** Usage counts in PostgreSQL: each flush is one transaction of multi-row statements (no round trip per key). */
export class PostgresUsageStore implements UsageStore {
  constructor(private readonly pool: pg.Pool) {}

  async migrate(): Promise<void> {
    await migratePool(this.pool, USAGE_POSTGRES_MIGRATIONS);
  }

  async writeUsage(counts: readonly UsageCount[], lastUses: readonly LastUse[]): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN");
      for (const chunk of chunks(counts, 2_000)) {
        const values: unknown[] = [];
        const rows = chunk.map((c) => {
          values.push(c.minute, c.keyId, c.owner, c.outcome, c.count);
          return placeholders(values.length - 4, 5);
        });
        await client.query(
          `INSERT INTO usage_counts (minute, key_id, owner, outcome, count) VALUES ${rows.join(", ")}
           ON CONFLICT (minute, key_id, outcome) DO UPDATE SET count = usage_counts.count + EXCLUDED.count`,
          values,
        );
      }
      for (const chunk of chunks(lastUses, 5_000)) {
        const values: unknown[] = [];
        const rows = chunk.map((use) => {
          values.push(use.at, use.ip, use.keyId);
          const n = values.length;
          return `($${n - 2}::bigint, $${n - 1}::text, $${n}::text)`;
        });
        await client.query(
          `UPDATE keys SET last_used_at = v.at, last_used_ip = v.ip FROM (VALUES ${rows.join(", ")}) AS v (at, ip, id)
           WHERE keys.id = v.id AND (keys.last_used_at IS NULL OR keys.last_used_at < v.at)`,
          values,
        );
      }
      await client.query("COMMIT");
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  async queryUsage(query: UsageQuery): Promise<UsageRow[]> {
    const { sql, params } = buildUsageQuery(query, (i) => `$${i}`);
    const result = await this.pool.query<{ start: string; key_id: string; outcome: string; count: string }>(sql, params);
    return result.rows.map((row) => ({
      start: Number(row.start),
      keyId: row.key_id,
      outcome: row.outcome as OutcomeCode,
      count: Number(row.count),
    }));
  }

  async pruneUsage(before: number): Promise<number> {
    const minute = Math.floor(before / BUCKET_MS.minute) * BUCKET_MS.minute;
    return (await this.pool.query("DELETE FROM usage_counts WHERE minute < $1", [minute])).rowCount ?? 0;
  }
}
