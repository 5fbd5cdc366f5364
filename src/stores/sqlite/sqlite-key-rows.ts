import type Database from "better-sqlite3";
import type { KeyLifecycleChanges, KeyRecord } from "../../core/model.js";
import { KEY_COLUMNS, keyToRowValues } from "../rows.js";

/**
 * In SQLite a key's last use lives apart from the key, in `key_last_use` (narrow rows, clustered
 * by key id): usage folds rewrite it for every key in use about once a minute, and rewriting the
 * wide `keys` row instead dirtied one page per key (~25 µs a key, 25–50 ms per slice of a fold on
 * the event loop; docs/benchmarks.md). Reads join it back, so a KeyRecord looks the same as on
 * PostgreSQL.
 */
const LAST_USE_COLUMNS: ReadonlySet<string> = new Set(["last_used_at", "last_used_ip"]);
const KEY_TABLE_COLUMNS = KEY_COLUMNS.map((column, index) => ({ column, index })).filter(({ column }) => !LAST_USE_COLUMNS.has(column));

/** Selects whole key rows (`k`), last use included; add `WHERE …` on `k.` columns. */
export const SELECT_KEY_ROWS =
  "SELECT k.*, u.at AS last_used_at, u.ip AS last_used_ip FROM keys k LEFT JOIN key_last_use u ON u.key_id = k.id";

/** Moves a key's last use forward, never back: folds from several processes may arrive out of order. */
export const ADVANCE_LAST_USE =
  "INSERT INTO key_last_use (key_id, at, ip) VALUES (?, ?, ?) ON CONFLICT (key_id) DO UPDATE SET at = excluded.at, ip = excluded.ip WHERE excluded.at > at";

/** Writes of whole keys and of their last use, prepared once per connection. */
export function prepareKeyWrites(db: Database.Database) {
  const insertKey = db.prepare(
    `INSERT INTO keys (${KEY_TABLE_COLUMNS.map((c) => c.column).join(", ")}) VALUES (${KEY_TABLE_COLUMNS.map(() => "?").join(", ")})`,
  );
  const setLastUse = db.prepare<[string, number, string | null]>(
    "INSERT INTO key_last_use (key_id, at, ip) VALUES (?, ?, ?) ON CONFLICT (key_id) DO UPDATE SET at = excluded.at, ip = excluded.ip",
  );
  const clearLastUse = db.prepare<[string]>("DELETE FROM key_last_use WHERE key_id = ?");
  return {
    /** Inserts a whole key (inside the caller's transaction). */
    insert(key: KeyRecord): void {
      const values = keyToRowValues(key, true);
      insertKey.run(...KEY_TABLE_COLUMNS.map((c) => values[c.index]));
      if (key.lastUsedAt !== null) setLastUse.run(key.id, key.lastUsedAt, key.lastUsedIp);
      else clearLastUse.run(key.id);
    },
    /** Applies the last-use part of `changes`, if any; returns the rest. */
    applyLastUse(id: string, changes: KeyLifecycleChanges): KeyLifecycleChanges {
      const { lastUsedAt, lastUsedIp, ...rest } = changes;
      if (lastUsedAt === undefined && lastUsedIp === undefined) return changes;
      if (lastUsedAt === null) clearLastUse.run(id);
      else if (lastUsedAt !== undefined) setLastUse.run(id, lastUsedAt, lastUsedIp ?? null);
      return rest;
    },
  };
}
