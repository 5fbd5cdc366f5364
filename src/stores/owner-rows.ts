import type { OwnerLimits, OwnerRecord, OwnerRef, OwnerType, SharedLimits } from "../core/model.js";
import { type SharedLimitsJson, sharedLimitsFromApi, sharedLimitsJson } from "../core/shared-limits.js";
import type { KeyPageCursor, OwnerFields, OwnerListFilter, OwnerPage } from "../ports/key-store.js";

/** An owners row as either SQL store returns it (SQLite integers, PostgreSQL booleans and bigints as text). */
export interface OwnerRow {
  type: string;
  id: string;
  disabled: number | boolean;
  created_at: number | string;
  name: string | null;
  limits: string | null;
}

/** Shared limits as stored: JSON in the API's own spelling, so an export reads as the API writes. */
export function sharedLimitsToJson(limits: SharedLimits | null): string | null {
  const json = sharedLimitsJson(limits);
  return json ? JSON.stringify(json) : null;
}

export function sharedLimitsFromJson(text: string | null): SharedLimits | null {
  return text === null ? null : sharedLimitsFromApi(JSON.parse(text) as Partial<SharedLimitsJson>);
}

export function ownerFromRow(row: OwnerRow): OwnerRecord {
  return {
    type: row.type as OwnerType,
    id: row.id,
    disabled: row.disabled === true || row.disabled === 1,
    createdAt: Number(row.created_at),
    name: row.name ?? null,
    limits: sharedLimitsFromJson(row.limits ?? null),
  };
}

/**
 * The shared limits a verify lookup carries for a key's owner (the owner columns of the digest
 * query, `owner_limits` and `owner_created_at`); null when the owner has none. Parsed once per
 * lookup: the cached entry keeps the result.
 */
export function ownerLimitsOfLookup(owner: OwnerRef, limits: string | null, createdAt: number | string | null): OwnerLimits | null {
  const shared = sharedLimitsFromJson(limits);
  return shared ? { ...shared, owner, createdAt: Number(createdAt ?? 0) } : null;
}

/** The SET list of an owner update, with its values in order; `bind` names the next placeholder. */
export function ownerUpdateSql(fields: OwnerFields, bind: () => string): { sql: string; values: unknown[] } {
  const sets: string[] = [];
  const values: unknown[] = [];
  if (fields.name !== undefined) {
    sets.push(`name = ${bind()}`);
    values.push(fields.name);
  }
  if (fields.limits !== undefined) {
    sets.push(`limits = ${bind()}`);
    values.push(sharedLimitsToJson(fields.limits));
  }
  return { sql: sets.join(", "), values };
}

/** The WHERE of an owner listing (newest first, keyset-paged), with its values in order. */
export function ownerListWhere(
  filter: OwnerListFilter,
  after: KeyPageCursor | null,
  bind: () => string,
): { where: string; values: unknown[] } {
  const clauses = [`type = ${bind()}`];
  const values: unknown[] = [filter.type];
  if (filter.ids) {
    // No ids: nothing matches (every placeholder made must still be bound, in order).
    clauses.push(filter.ids.length === 0 ? "1 = 0" : `id IN (${filter.ids.map(() => bind()).join(", ")})`);
    values.push(...filter.ids);
  }
  if (filter.q) {
    const like = `%${filter.q.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    clauses.push(`(lower(id) LIKE ${bind()} ESCAPE '\\' OR lower(coalesce(name, '')) LIKE ${bind()} ESCAPE '\\')`);
    values.push(like, like);
  }
  if (after) {
    clauses.push(`(created_at < ${bind()} OR (created_at = ${bind()} AND id < ${bind()}))`);
    values.push(after.createdAt, after.createdAt, after.id);
  }
  return { where: clauses.join(" AND "), values };
}

/** A page from `limit + 1` rows: the extra row only says there is more. */
export function ownerPage(rows: OwnerRow[], limit: number): OwnerPage {
  const owners = rows.slice(0, limit).map(ownerFromRow);
  const last = owners[owners.length - 1];
  return { owners, next: rows.length > limit && last ? { createdAt: last.createdAt, id: last.id } : null };
}
