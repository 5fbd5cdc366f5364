import type { AuditFilter, CreationCap, KeyListFilter, KeyPageCursor } from "../ports/key-store.js";

/** Adds a bound parameter and returns its placeholder (`?` for SQLite, `$n` for PostgreSQL). */
export type BindParameter = (value: unknown) => string;

/** SQLite-style positional parameters collected into `params`. */
export function bindQuestionMark(params: unknown[]): BindParameter {
  return (value) => {
    params.push(value);
    return "?";
  };
}

/** PostgreSQL-style numbered parameters (`$1`, `$2`, …) collected into `params`. */
export function bindNumbered(params: unknown[]): BindParameter {
  return (value) => {
    params.push(value);
    return `$${params.length}`;
  };
}

/** The SQL stores' differences in a key listing's WHERE clause. */
export type SqlDialect = "sqlite" | "postgres";

/** The expression the last-four index is on: `ref` ends with the secret's last four characters. */
export const REF_LAST4_SQL: Record<SqlDialect, string> = { sqlite: "substr(ref, -4)", postgres: "right(ref, 4)" };

/** A LIKE pattern matching `text` anywhere, its wildcards taken literally (escape character `\`). */
export const containsPattern = (text: string): string => `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/**
 * WHERE clause for a key listing, shared by the SQL stores. Status is derived the same way as
 * `computeKeyStatus`: revoked (or grace ended), then awaiting pickup, disabled, expired, else active.
 * Booleans are literals, not parameters, so the planners can use the partial indexes on
 * `enabled` and `awaiting_pickup` (docs/benchmarks.md, key search).
 */
export function buildKeyListWhere(filter: KeyListFilter, after: KeyPageCursor | null, bind: BindParameter, dialect: SqlDialect): string {
  const clauses: string[] = [];
  const [TRUE, FALSE] = dialect === "sqlite" ? ["1", "0"] : ["TRUE", "FALSE"];
  if (filter.ownerType) clauses.push(`owner_type = ${bind(filter.ownerType)}`);
  // Every type spelled out: the owner index leads with the type, and an owner id alone would scan.
  else if (filter.ownerId) clauses.push("owner_type IN ('user', 'application', 'organization')");
  if (filter.ownerId) clauses.push(`owner_id = ${bind(filter.ownerId)}`);
  if (filter.environment) clauses.push(`environment = ${bind(filter.environment)}`);
  if (filter.status) {
    // Built on demand: every placeholder made must appear in the SQL, in order.
    const now = filter.now;
    const revoked = () =>
      `((revoked_at IS NOT NULL AND revoked_at <= ${bind(now)}) OR (grace_ends_at IS NOT NULL AND grace_ends_at <= ${bind(now)}))`;
    switch (filter.status) {
      case "revoked":
        clauses.push(revoked());
        break;
      case "awaiting_pickup":
        clauses.push(`awaiting_pickup = ${TRUE} AND NOT ${revoked()}`);
        break;
      case "disabled":
        clauses.push(`enabled = ${FALSE} AND awaiting_pickup = ${FALSE} AND NOT ${revoked()}`);
        break;
      case "expired":
        clauses.push(`enabled = ${TRUE} AND awaiting_pickup = ${FALSE} AND expires_at <= ${bind(now)} AND NOT ${revoked()}`);
        break;
      case "active":
        clauses.push(
          `enabled = ${TRUE} AND awaiting_pickup = ${FALSE} AND NOT ${revoked()} AND (expires_at IS NULL OR expires_at > ${bind(now)})`,
        );
        break;
    }
  }
  if (filter.expiresBy !== undefined) clauses.push(`expires_at > ${bind(filter.now)} AND expires_at <= ${bind(filter.expiresBy)}`);
  const search = filter.search;
  if (search) {
    const terms: string[] = [];
    if (search.id) terms.push(`id = ${bind(search.id)}`);
    if (search.ref) terms.push(`(${REF_LAST4_SQL[dialect]} = ${bind(search.ref.slice(-4))} AND ref = ${bind(search.ref)})`);
    // Beside a name (which scans), SQLite finds the tail through its index once and checks each
    // entry scanned against that set, rather than computing the tail of each (about half the
    // cost of the OR at 100,000 keys, measured apart from bench/key-search.js).
    if (search.last4)
      terms.push(
        dialect === "sqlite" && search.name
          ? `id IN (SELECT id FROM keys WHERE ${REF_LAST4_SQL.sqlite} = ${bind(search.last4)})`
          : `${REF_LAST4_SQL[dialect]} = ${bind(search.last4)}`,
      );
    // SQLite's LIKE folds ASCII letters only; PostgreSQL's ILIKE (backslash its default escape) uses the trigram index.
    if (search.name)
      terms.push(
        dialect === "sqlite"
          ? `name LIKE ${bind(containsPattern(search.name))} ESCAPE '\\'`
          : `name ILIKE ${bind(containsPattern(search.name))}`,
      );
    if (terms.length > 0) clauses.push(terms.length === 1 ? (terms[0] as string) : `(${terms.join(" OR ")})`);
  }
  if (after) {
    const createdAt = bind(after.createdAt);
    clauses.push(`(created_at < ${createdAt} OR (created_at = ${bind(after.createdAt)} AND id < ${bind(after.id)}))`);
  }
  return clauses.length ? `WHERE ${clauses.join(" AND ")}` : "";
}

export function buildAuditWhere(filter: AuditFilter, afterSeq: number | null, bind: BindParameter): string {
  const clauses: string[] = [];
  if (filter.actorId) clauses.push(`actor_id = ${bind(filter.actorId)}`);
  if (filter.targetId) clauses.push(`target_id = ${bind(filter.targetId)}`);
  if (filter.action) clauses.push(`action = ${bind(filter.action)}`);
  if (filter.since !== undefined) clauses.push(`at >= ${bind(filter.since)}`);
  if (filter.until !== undefined) clauses.push(`at < ${bind(filter.until)}`);
  if (afterSeq !== null) clauses.push(`seq < ${bind(afterSeq)}`);
  return clauses.length ? `WHERE ${clauses.join(" AND ")}` : "";
}

/** Keys of an owner created since a time, rotations not counted: the member creation cap, shared by the SQL stores. */
export function buildCreatedSinceCount(cap: CreationCap, bind: BindParameter): string {
  return `SELECT COUNT(*) AS n FROM keys WHERE owner_type = ${bind(cap.owner.type)} AND owner_id = ${bind(cap.owner.id)} AND created_at >= ${bind(cap.since)} AND rotated_from IS NULL`;
}
