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

/**
 * WHERE clause for a key listing, shared by the SQL stores. Status is derived the same way as
 * `computeKeyStatus`: revoked (or grace ended), then awaiting pickup, disabled, expired, else active.
 */
export function buildKeyListWhere(filter: KeyListFilter, after: KeyPageCursor | null, bind: BindParameter, trueValue: unknown): string {
  const clauses: string[] = [];
  if (filter.ownerType) clauses.push(`owner_type = ${bind(filter.ownerType)}`);
  if (filter.ownerId) clauses.push(`owner_id = ${bind(filter.ownerId)}`);
  if (filter.environment) clauses.push(`environment = ${bind(filter.environment)}`);
  if (filter.status) {
    // Built on demand: every placeholder made must appear in the SQL, in order.
    const now = filter.now;
    const revoked = () =>
      `((revoked_at IS NOT NULL AND revoked_at <= ${bind(now)}) OR (grace_ends_at IS NOT NULL AND grace_ends_at <= ${bind(now)}))`;
    const enabled = () => `enabled = ${bind(trueValue)}`;
    const awaiting = () => `awaiting_pickup = ${bind(trueValue)}`;
    const expired = () => `(expires_at IS NOT NULL AND expires_at <= ${bind(now)})`;
    switch (filter.status) {
      case "revoked":
        clauses.push(revoked());
        break;
      case "awaiting_pickup":
        clauses.push(`NOT ${revoked()} AND ${awaiting()}`);
        break;
      case "disabled":
        clauses.push(`NOT ${revoked()} AND NOT ${awaiting()} AND NOT ${enabled()}`);
        break;
      case "expired":
        clauses.push(`NOT ${revoked()} AND NOT ${awaiting()} AND ${enabled()} AND ${expired()}`);
        break;
      case "active":
        clauses.push(`NOT ${revoked()} AND NOT ${awaiting()} AND ${enabled()} AND NOT ${expired()}`);
        break;
    }
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
