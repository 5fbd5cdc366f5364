import { hostname } from "node:os";
import type Database from "better-sqlite3";
import type { LastUse, UsageCount, UsageJournal, UsageWriter } from "../../ports/usage-recorder.js";
import { decodeUsageBatch, encodeUsageBatch, UsageMerge } from "../../usage/usage-merge.js";

/**
 * A journal row its writer's last ended fold already added (`j` the row, `w` its writer): a flush
 * up to the fold's watermark, or a cancelling row of that fold or an earlier one.
 */
const DEAD = "((j.fold IS NULL AND j.id <= w.folded_to) OR (j.fold IS NOT NULL AND j.fold <= w.folded_fold))";

/** A writer not seen for this long is gone, wherever it ran (a live one appends or folds every minute). */
const ORPHAN_AFTER_MS = 10 * 60_000;

/** Whether a process of this machine is running: signal 0 checks without sending anything. */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, under another user.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The usage journal in the SQLite file (`usage_journal`, `usage_writers`); see UsageJournal. */
export class SqliteUsageJournal implements UsageJournal {
  private readonly s;

  constructor(
    private readonly db: Database.Database,
    /** Adds counts and last uses (the usage store's upserts); runs inside the journal's transactions. */
    private readonly apply: (counts: readonly UsageCount[], lastUses: readonly LastUse[]) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.s = {
      append: db.prepare<[string, number | null, string]>("INSERT INTO usage_journal (writer, fold, payload) VALUES (?, ?, ?)"),
      seen: db.prepare<[string, string, number, number]>(
        "INSERT INTO usage_writers (writer, host, pid, seen_at) VALUES (?, ?, ?, ?) ON CONFLICT (writer) DO UPDATE SET seen_at = excluded.seen_at",
      ),
      touchWriter: db.prepare<[number, string]>("UPDATE usage_writers SET seen_at = ? WHERE writer = ?"),
      endFold: db.prepare<[number, number, string]>(
        "UPDATE usage_writers SET folded_to = max(folded_to, ?), folded_fold = max(folded_fold, ?) WHERE writer = ?",
      ),
      purgeFolded: db.prepare<[string, number]>(
        `DELETE FROM usage_journal WHERE id IN (SELECT j.id FROM usage_journal j JOIN usage_writers w ON w.writer = j.writer
         WHERE j.writer = ? AND ${DEAD} LIMIT ?)`,
      ),
      writers: db.prepare<[], { writer: string; host: string; pid: number; seen_at: number }>(
        "SELECT writer, host, pid, seen_at FROM usage_writers",
      ),
      unlisted: db.prepare<[], { writer: string }>(
        "SELECT DISTINCT writer FROM usage_journal WHERE writer NOT IN (SELECT writer FROM usage_writers)",
      ),
      liveRowsOf: db.prepare<[string], { payload: string }>(
        `SELECT j.payload FROM usage_journal j LEFT JOIN usage_writers w ON w.writer = j.writer
         WHERE j.writer = ? AND (w.writer IS NULL OR NOT ${DEAD}) ORDER BY j.id`,
      ),
      dropRows: db.prepare<[string]>("DELETE FROM usage_journal WHERE writer = ?"),
      dropWriter: db.prepare<[string]>("DELETE FROM usage_writers WHERE writer = ?"),
    };
  }

  async append(writer: UsageWriter, batch: string): Promise<number> {
    return this.db.transaction(() => {
      this.s.seen.run(writer.id, writer.host, writer.pid, this.now());
      return Number(this.s.append.run(writer.id, null, batch).lastInsertRowid);
    })();
  }

  async applySlice(writer: string, fold: number, counts: readonly UsageCount[], lastUses: readonly LastUse[]): Promise<boolean> {
    // IMMEDIATE: the write lock first, so a recovery by another process cannot slip in between
    // the check that this writer still owns its journal and the slice.
    return this.db
      .transaction(() => {
        if (this.s.touchWriter.run(this.now(), writer).changes === 0) return false;
        this.apply(counts, lastUses);
        if (counts.length > 0) {
          const cancel = counts.map((c) => ({ ...c, count: -c.count }));
          this.s.append.run(writer, fold, encodeUsageBatch(cancel, []));
        }
        return true;
      })
      .immediate();
  }

  async endFold(writer: string, fold: number, upTo: number): Promise<void> {
    this.s.endFold.run(upTo, fold, writer);
  }

  async purgeFolded(writer: string, limit: number): Promise<number> {
    return this.s.purgeFolded.run(writer, limit).changes;
  }

  async recoverOrphans(): Promise<number> {
    const host = hostname();
    const now = this.now();
    return this.db
      .transaction(() => {
        const gone = this.s.writers
          .all()
          .filter((w) => (w.host === host && !processAlive(w.pid)) || now - w.seen_at > ORPHAN_AFTER_MS)
          .map((w) => w.writer);
        for (const row of this.s.unlisted.all()) gone.push(row.writer);
        for (const writer of gone) {
          // Its flushes plus its cancelling rows are exactly what it had not yet added.
          const merge = new UsageMerge();
          for (const row of this.s.liveRowsOf.all(writer)) decodeUsageBatch(row.payload, merge);
          this.apply(
            [...merge.counts.values()].filter((c) => c.count !== 0),
            [...merge.lastUses.values()],
          );
          this.s.dropRows.run(writer);
          this.s.dropWriter.run(writer);
        }
        return gone.length;
      })
      .immediate();
  }

  async retire(writer: string): Promise<void> {
    this.db.transaction(() => {
      // Anything still journaled stays with a writer that is gone, for the next recovery.
      this.s.touchWriter.run(0, writer);
    })();
  }
}
