import type { OwnerRef } from "../core/model.js";
import type { KeyChangeBatch } from "../ports/key-store.js";

/**
 * The change feed shared by the SQL stores (docs/architecture.md, the change feed): rows written
 * by triggers on keys and owners, read by each instance from its last cursor.
 */

/** At most this many rows are listed per poll; past it, the poll answers `reset` (drop every cached key). */
export const CHANGE_FEED_MAX_ROWS = 10_000;
/** How long change rows are kept by default: an instance that has not polled for longer drops its whole cache. */
export const DEFAULT_CHANGE_RETENTION_MS = 3_600_000;
/** How often (at most) one store object prunes old change rows, from its polls. */
export const CHANGE_PRUNE_EVERY_MS = 60_000;

export interface KeyChangeRow {
  key_id: string | null;
  digest: string | null;
  owner_type: string | null;
  owner_id: string | null;
}

/** The batch of `rows` (in feed order) ending at `cursor`. */
export function toChangeBatch(cursor: string, rows: readonly KeyChangeRow[], reset: boolean): KeyChangeBatch {
  const batch: KeyChangeBatch = { cursor, keys: [], owners: [], reset };
  if (reset) return batch;
  for (const row of rows) {
    if (row.key_id !== null) batch.keys.push({ id: row.key_id, digest: row.digest });
    else if (row.owner_type !== null && row.owner_id !== null)
      batch.owners.push({ type: row.owner_type as OwnerRef["type"], id: row.owner_id });
  }
  return batch;
}
