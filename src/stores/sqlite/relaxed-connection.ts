import Database from "better-sqlite3";
import { narrowSidecars } from "./file-modes.js";

/**
 * A connection of its own to the key store's file, with `synchronous = NORMAL`, for writes that
 * come with every request or flush (quota spends, usage): in WAL mode a committed write survives
 * `kill -9` without an fsync per transaction; only a power loss can forget the last ones. Keys,
 * revocations and audit keep the key store's `FULL`. An in-memory key store is shared as it is
 * (a second connection would open another, empty database).
 */
export function openRelaxedConnection(keysDb: Database.Database): Database.Database {
  if (keysDb.memory) return keysDb;
  const db = new Database(keysDb.name);
  db.pragma("journal_mode = WAL");
  // The key store made the file 0600; its -wal and -shm follow it (docs/hardening.md).
  narrowSidecars(keysDb.name);
  db.pragma("synchronous = NORMAL");
  db.pragma("busy_timeout = 5000");
  return db;
}

/** Closes a connection from openRelaxedConnection (never the shared in-memory one). */
export function closeRelaxedConnection(db: Database.Database): void {
  if (db.open && !db.memory) db.close();
}
