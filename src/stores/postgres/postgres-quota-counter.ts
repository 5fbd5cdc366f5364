import type pg from "pg";
import type { QuotaBlock, QuotaBlockRequest, QuotaCounter } from "../../ports/limits.js";
import { LIMITS_POSTGRES_MIGRATIONS, migratePool } from "./migrations.js";

/**
 * Quota counters in PostgreSQL, shared by every instance. A spend is one conditional upsert
 * (`… WHERE used + cost <= allowance RETURNING used`) under the row lock: exact across
 * instances, with no read-then-write, and independent of Redis.
 */
export class PostgresQuotaCounter implements QuotaCounter {
  constructor(private readonly pool: pg.Pool) {}

  async migrate(): Promise<void> {
    await migratePool(this.pool, LIMITS_POSTGRES_MIGRATIONS);
  }

  async spend(lineageId: string, window: string, allowance: number, cost: number, expiresAt: number | null): Promise<number | null> {
    const result = await this.pool.query<{ used: string }>({
      name: "keyward_quota_spend",
      text: `INSERT INTO quota_counters (lineage_id, "window", used, expires_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (lineage_id, "window") DO UPDATE SET used = quota_counters.used + EXCLUDED.used
             WHERE quota_counters.used + EXCLUDED.used <= $5 RETURNING used`,
      values: [lineageId, window, cost, expiresAt, allowance],
    });
    const row = result.rows[0];
    return row ? Number(row.used) : null;
  }

  /** Gives `cost` uses back, never below zero; returns the use count after (0 when the window has none). */
  async refund(lineageId: string, window: string, cost: number): Promise<number> {
    const result = await this.pool.query<{ used: string }>({
      name: "keyward_quota_refund",
      text: `UPDATE quota_counters SET used = GREATEST(used - $3, 0) WHERE lineage_id = $1 AND "window" = $2 RETURNING used`,
      values: [lineageId, window, cost],
    });
    return Number(result.rows[0]?.used ?? 0);
  }

  /**
   * A block for BlockQuotaCounter (docs/limits.md, "Quota blocks") in one statement: the row is
   * locked and read (`FOR UPDATE`, so the size is computed from its newest count), then the same
   * conditional upsert as a spend writes the block only if it still fits. When the row does not
   * exist yet and two takes insert it at once, the second one's condition is checked against the
   * first one's row: it takes its block or nothing, never more than the allowance.
   */
  async takeBlock(
    lineageId: string,
    window: string,
    allowance: number,
    block: QuotaBlockRequest,
    expiresAt: number | null,
  ): Promise<QuotaBlock | null> {
    const result = await this.pool.query<{ used: string; taken: string }>({
      name: "keyward_quota_take_block",
      text: `WITH current AS MATERIALIZED (
               SELECT used FROM quota_counters WHERE lineage_id = $1 AND "window" = $2 FOR UPDATE
             ), block AS MATERIALIZED (
               SELECT GREATEST($3::bigint, LEAST($4::bigint, ($5::bigint - COALESCE((SELECT used FROM current), 0)) / $6::bigint)) AS n
             )
             INSERT INTO quota_counters AS q (lineage_id, "window", used, expires_at)
             SELECT $1, $2, n, $7 FROM block WHERE n <= $5::bigint
             ON CONFLICT (lineage_id, "window") DO UPDATE SET used = q.used + EXCLUDED.used
             WHERE q.used + EXCLUDED.used <= $5::bigint
             RETURNING q.used, (SELECT n FROM block) AS taken`,
      values: [lineageId, window, block.min, block.max, allowance, block.share, expiresAt],
    });
    const row = result.rows[0];
    return row ? { taken: Number(row.taken), used: Number(row.used) } : null;
  }

  async used(lineageId: string, window: string): Promise<number> {
    const result = await this.pool.query<{ used: string }>('SELECT used FROM quota_counters WHERE lineage_id = $1 AND "window" = $2', [
      lineageId,
      window,
    ]);
    return Number(result.rows[0]?.used ?? 0);
  }
}
