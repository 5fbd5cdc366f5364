import type pg from "pg";
import type { QuotaCounter } from "../../ports/limits.js";
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

  async used(lineageId: string, window: string): Promise<number> {
    const result = await this.pool.query<{ used: string }>('SELECT used FROM quota_counters WHERE lineage_id = $1 AND "window" = $2', [
      lineageId,
      window,
    ]);
    return Number(result.rows[0]?.used ?? 0);
  }
}
