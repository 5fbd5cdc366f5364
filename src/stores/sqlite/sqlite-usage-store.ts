import type Database from "better-sqlite3";
import type { OutcomeCode } from "../../core/outcomes.js";
import { BUCKET_MS, type LastUse, type UsageCount, type UsageQuery, type UsageRow, type UsageStore } from "../../ports/usage-recorder.js";
import { buildUsageQuery } from "../usage-sql.js";
import { applySqliteMigrations, USAGE_SQLITE_MIGRATIONS } from "./migrations.js";
import { SqliteUsageJournal } from "./sqlite-usage-journal.js";

/**
 * Usage counts in the SQLite file, with a journal: the recorder appends each flush as one row
 * and folds its flushes into `usage_counts` and `keys.last_used_at` about once a minute, in
 * slices (SqliteUsageJournal), since every write here runs on the recording process's thread.
 */
export class SqliteUsageStore implements UsageStore {
  private readonly addCount: Database.Statement<[number, string, string, string, number]>;
  private readonly touchKey: Database.Statement<[number, string | null, string, number]>;
  readonly journal: SqliteUsageJournal;

  constructor(private readonly db: Database.Database) {
    applySqliteMigrations(db, USAGE_SQLITE_MIGRATIONS);
    this.addCount = db.prepare(
      `INSERT INTO usage_counts (minute, key_id, owner, outcome, count) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (minute, key_id, outcome) DO UPDATE SET count = count + excluded.count`,
    );
    this.touchKey = db.prepare(
      "UPDATE keys SET last_used_at = ?, last_used_ip = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
    );
    this.journal = new SqliteUsageJournal(db, (counts, lastUses) => this.apply(counts, lastUses));
  }

  async writeUsage(counts: readonly UsageCount[], lastUses: readonly LastUse[]): Promise<void> {
    this.db.transaction(() => this.apply(counts, lastUses))();
  }

  private apply(counts: readonly UsageCount[], lastUses: readonly LastUse[]): void {
    for (const c of counts) this.addCount.run(c.minute, c.keyId, c.owner, c.outcome, c.count);
    for (const use of lastUses) this.touchKey.run(use.at, use.ip, use.keyId, use.at);
  }

  async queryUsage(query: UsageQuery): Promise<UsageRow[]> {
    const { sql, params } = buildUsageQuery(query, () => "?");
    const rows = this.db.prepare<unknown[], { start: number; key_id: string; outcome: string; count: number }>(sql).all(...params);
    return rows.map((row) => ({ start: row.start, keyId: row.key_id, outcome: row.outcome as OutcomeCode, count: row.count }));
  }

  async pruneUsage(before: number): Promise<number> {
    return this.db.prepare("DELETE FROM usage_counts WHERE minute < ?").run(Math.floor(before / BUCKET_MS.minute) * BUCKET_MS.minute)
      .changes;
  }
}
