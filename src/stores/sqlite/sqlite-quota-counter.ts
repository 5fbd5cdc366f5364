import type Database from "better-sqlite3";
import { blockSize } from "../../core/quota-block.js";
import type { QuotaBlock, QuotaBlockRequest, QuotaCounter } from "../../ports/limits.js";
import { applySqliteMigrations, LIMITS_SQLITE_MIGRATIONS } from "./migrations.js";
import { closeRelaxedConnection, openRelaxedConnection } from "./relaxed-connection.js";

/**
 * Quota counters in the SQLite file, beside the keys. A spend is one conditional upsert
 * (`… DO UPDATE … WHERE used + cost <= allowance RETURNING used`): no read-then-write, so
 * concurrent spends can never pass the allowance.
 *
 * Spends go through a connection of their own with `synchronous = NORMAL`: in WAL mode a
 * committed spend survives a crash of the process (`kill -9`) without an fsync per request,
 * which would cap a quota-limited key at a few thousand requests a second. Only a power loss
 * can forget the last spends before it (an under-count, never an over-spend of what was
 * acknowledged as refused); keys, revocations and audit keep the key store's `FULL`.
 */
export class SqliteQuotaCounter implements QuotaCounter {
  private readonly spendStatement: Database.Statement<[string, string, number, number | null, number], { used: number }>;
  private readonly usedStatement: Database.Statement<[string, string], { used: number }>;
  private readonly refundStatement: Database.Statement<[number, string, string], { used: number }>;
  private readonly takeBlockTransaction: Database.Transaction<
    (lineageId: string, window: string, allowance: number, block: QuotaBlockRequest, expiresAt: number | null) => QuotaBlock | null
  >;

  private readonly db: Database.Database;

  constructor(keysDb: Database.Database) {
    applySqliteMigrations(keysDb, LIMITS_SQLITE_MIGRATIONS);
    this.db = openRelaxedConnection(keysDb);
    const db = this.db;
    this.spendStatement = db.prepare(
      `INSERT INTO quota_counters (lineage_id, window, used, expires_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (lineage_id, window) DO UPDATE SET used = used + excluded.used WHERE used + excluded.used <= ?
       RETURNING used`,
    );
    this.usedStatement = db.prepare("SELECT used FROM quota_counters WHERE lineage_id = ? AND window = ?");
    this.refundStatement = db.prepare(
      "UPDATE quota_counters SET used = max(used - ?, 0) WHERE lineage_id = ? AND window = ? RETURNING used",
    );
    // The read and the conditional upsert in one write transaction (BEGIN IMMEDIATE below): no
    // other connection or process writes between them. The upsert's own condition would keep
    // the count exact without it; the transaction only spares a take refused for a stale read.
    this.takeBlockTransaction = db.transaction((lineageId, window, allowance, block, expiresAt) => {
      const taken = blockSize(allowance, this.usedStatement.get(lineageId, window)?.used ?? 0, block);
      if (taken > allowance) return null;
      const used = this.spendStatement.get(lineageId, window, taken, expiresAt, allowance)?.used;
      return used === undefined ? null : { taken, used };
    });
  }

  async spend(lineageId: string, window: string, allowance: number, cost: number, expiresAt: number | null): Promise<number | null> {
    return this.spendStatement.get(lineageId, window, cost, expiresAt, allowance)?.used ?? null;
  }

  async used(lineageId: string, window: string): Promise<number> {
    return this.usedStatement.get(lineageId, window)?.used ?? 0;
  }

  /** Gives `cost` uses back, never below zero; returns the use count after (0 when the window has none). */
  async refund(lineageId: string, window: string, cost: number): Promise<number> {
    return this.refundStatement.get(cost, lineageId, window)?.used ?? 0;
  }

  /** A block for BlockQuotaCounter (docs/limits.md, "Quota blocks"), in one write transaction. */
  async takeBlock(
    lineageId: string,
    window: string,
    allowance: number,
    block: QuotaBlockRequest,
    expiresAt: number | null,
  ): Promise<QuotaBlock | null> {
    return this.takeBlockTransaction.immediate(lineageId, window, allowance, block, expiresAt);
  }

  /** Closes the spend connection (the key store closes its own). */
  close(): void {
    closeRelaxedConnection(this.db);
  }

  /** Drops windows that ended before `before`. */
  prune(before: number): number {
    return this.db.prepare("DELETE FROM quota_counters WHERE expires_at IS NOT NULL AND expires_at < ?").run(before).changes;
  }
}
