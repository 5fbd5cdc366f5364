import type Database from "better-sqlite3";
import type { OutcomeCode } from "../../core/outcomes.js";
import {
  BUCKET_MS,
  type LastUse,
  type RecentRequest,
  type RecentRequestCursor,
  type StoredRecentRequest,
  type UsageCount,
  type UsageQuery,
  type UsageRow,
  type UsageStore,
} from "../../ports/usage-recorder.js";
import {
  countsByKey,
  RECENT_REQUEST_COLUMNS,
  RECENT_REQUESTS_KEPT_META,
  type RecentRequestRow,
  recentRequestsQuery,
  recentRequestValues,
  rowToRecentRequest,
  UPSERT_RECENT_REQUEST_SET,
} from "../recent-requests-sql.js";
import { buildUsageQuery } from "../usage-sql.js";
import { applySqliteMigrations, USAGE_SQLITE_MIGRATIONS } from "./migrations.js";
import { closeRelaxedConnection, openRelaxedConnection } from "./relaxed-connection.js";
import { ADVANCE_LAST_USE } from "./sqlite-key-rows.js";
import { SqliteUsageJournal } from "./sqlite-usage-journal.js";
import { WalCheckpointer } from "./wal-checkpointer.js";

export interface SqliteUsageStoreOptions {
  /**
   * Checkpoint the file's WAL from a worker thread (WalCheckpointer) instead of on the event loop
   * when SQLite's own threshold comes due. Default true for a file; an in-memory database has no WAL.
   */
  checkpointInWorker?: boolean;
}

/**
 * Usage counts in the SQLite file, with a journal: the recorder appends each flush as one row
 * and folds its flushes into `usage_counts` and `key_last_use` about once a minute, in
 * slices (SqliteUsageJournal), since every write here runs on the recording process's thread.
 *
 * Usage is written through a connection of its own with `synchronous = NORMAL`, as quota spends
 * are: in WAL mode a committed write survives `kill -9` without an fsync per transaction. With
 * the key store's `FULL`, every flush and every fold slice waited for the disk on the event loop
 * (25–50 ms a slice here, docs/benchmarks.md). Only a power loss can forget the last usage
 * writes before it; usage is already allowed to lose one flush (docs/usage.md).
 * Keys, revocations and audit keep the key store's `FULL`.
 *
 * Journaled usage is most of what the file's WAL receives (at 100,000 keys in use, over a
 * megabyte a second), so while a usage store is open the WAL is checkpointed off the event loop.
 */
export class SqliteUsageStore implements UsageStore {
  private readonly addCount: Database.Statement<[number, string, string, string, number]>;
  private readonly touchKey: Database.Statement<[string, number, string | null]>;
  private readonly lastSeq: Database.Statement<[string], { seq: number | null }>;
  private readonly putRecent: Database.Statement<unknown[]>;
  /** The ring size this process has made the table agree with. */
  private recentKept = -1;
  private readonly db: Database.Database;
  readonly journal: SqliteUsageJournal;
  /** The WAL checkpointer, when one runs. */
  readonly checkpointer: WalCheckpointer | null;

  constructor(keysDb: Database.Database, options: SqliteUsageStoreOptions = {}) {
    applySqliteMigrations(keysDb, USAGE_SQLITE_MIGRATIONS);
    this.db = openRelaxedConnection(keysDb);
    this.checkpointer = !keysDb.memory && (options.checkpointInWorker ?? true) ? new WalCheckpointer(keysDb.name) : null;
    const db = this.db;
    this.addCount = db.prepare(
      `INSERT INTO usage_counts (minute, key_id, owner, outcome, count) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (minute, key_id, outcome) DO UPDATE SET count = count + excluded.count`,
    );
    this.touchKey = db.prepare(ADVANCE_LAST_USE);
    this.lastSeq = db.prepare("SELECT MAX(seq) AS seq FROM recent_requests WHERE key_id = ?");
    this.putRecent = db.prepare(
      `INSERT INTO recent_requests (${RECENT_REQUEST_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (key_id, slot) DO UPDATE SET ${UPSERT_RECENT_REQUEST_SET}`,
    );
    this.journal = new SqliteUsageJournal(db, (counts, lastUses) => this.apply(counts, lastUses));
  }

  async writeUsage(counts: readonly UsageCount[], lastUses: readonly LastUse[]): Promise<void> {
    this.db.transaction(() => this.apply(counts, lastUses))();
  }

  private apply(counts: readonly UsageCount[], lastUses: readonly LastUse[]): void {
    for (const c of counts) this.addCount.run(c.minute, c.keyId, c.owner, c.outcome, c.count);
    for (const use of lastUses) this.touchKey.run(use.keyId, use.at, use.ip);
  }

  /**
   * One immediate transaction (the only writer meanwhile): each key's sequence goes on from its
   * largest, then each request overwrites its slot.
   */
  async writeRecentRequests(requests: readonly RecentRequest[], keep: number): Promise<void> {
    if (requests.length === 0 || keep < 1) return;
    this.db
      .transaction(() => {
        this.agreeOnKept(keep);
        const starts = new Map<string, number>();
        for (const [keyId] of countsByKey(requests)) starts.set(keyId, ((this.lastSeq.get(keyId) as { seq: number | null }).seq ?? -1) + 1);
        for (const values of recentRequestValues(requests, starts, keep)) this.putRecent.run(...values);
      })
      .immediate();
  }

  /** A smaller ring than the table was last written with: the slots past it go, once. */
  private agreeOnKept(keep: number): void {
    if (this.recentKept === keep) return;
    const row = this.db.prepare<[string], { value: string }>("SELECT value FROM meta WHERE name = ?").get(RECENT_REQUESTS_KEPT_META);
    if (row === undefined || Number(row.value) > keep) this.db.prepare("DELETE FROM recent_requests WHERE slot >= ?").run(keep);
    if (row === undefined || Number(row.value) !== keep)
      this.db
        .prepare("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
        .run(RECENT_REQUESTS_KEPT_META, String(keep));
    this.recentKept = keep;
  }

  async listRecentRequests(keyId: string, keep: number, limit: number, after: RecentRequestCursor | null): Promise<StoredRecentRequest[]> {
    const query = recentRequestsQuery(keyId, keep, limit, after);
    return this.db
      .prepare<unknown[], RecentRequestRow>(query.sql)
      .all(...query.values)
      .map((row) => rowToRecentRequest(keyId, row));
  }

  async queryUsage(query: UsageQuery): Promise<UsageRow[]> {
    const { sql, params } = buildUsageQuery(query, () => "?");
    const rows = this.db.prepare<unknown[], { start: number; key_id: string; outcome: string; count: number }>(sql).all(...params);
    return rows.map((row) => ({ start: row.start, keyId: row.key_id, outcome: row.outcome as OutcomeCode, count: row.count }));
  }

  /** Closes the usage connection (the key store closes its own). */
  async close(): Promise<void> {
    await this.checkpointer?.close();
    closeRelaxedConnection(this.db);
  }

  async pruneUsage(before: number): Promise<number> {
    return this.db.prepare("DELETE FROM usage_counts WHERE minute < ?").run(Math.floor(before / BUCKET_MS.minute) * BUCKET_MS.minute)
      .changes;
  }
}
