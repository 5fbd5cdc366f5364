import type pg from "pg";
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
import { numberPlaceholders } from "../account-rows.js";
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
import { migratePool, USAGE_POSTGRES_MIGRATIONS } from "./migrations.js";

function* chunks<T>(items: readonly T[], size: number): Generator<readonly T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

/** `($from, $from+1, …)`: one row of `count` numbered placeholders. */
const placeholders = (from: number, count: number): string => `(${Array.from({ length: count }, (_, i) => `$${from + i}`).join(", ")})`;

/** Usage counts in PostgreSQL: each flush is one transaction of multi-row statements (no round trip per key). */
export class PostgresUsageStore implements UsageStore {
  /** The ring size this process has made the table agree with. */
  private recentKept = -1;

  constructor(private readonly pool: pg.Pool) {}

  async migrate(): Promise<void> {
    await migratePool(this.pool, USAGE_POSTGRES_MIGRATIONS);
  }

  async writeUsage(counts: readonly UsageCount[], lastUses: readonly LastUse[]): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN");
      for (const chunk of chunks(counts, 2_000)) {
        const values: unknown[] = [];
        const rows = chunk.map((c) => {
          values.push(c.minute, c.keyId, c.owner, c.outcome, c.count);
          return placeholders(values.length - 4, 5);
        });
        await client.query(
          `INSERT INTO usage_counts (minute, key_id, owner, outcome, count) VALUES ${rows.join(", ")}
           ON CONFLICT (minute, key_id, outcome) DO UPDATE SET count = usage_counts.count + EXCLUDED.count`,
          values,
        );
      }
      for (const chunk of chunks(lastUses, 5_000)) {
        const values: unknown[] = [];
        const rows = chunk.map((use) => {
          values.push(use.at, use.ip, use.keyId);
          const n = values.length;
          return `($${n - 2}::bigint, $${n - 1}::text, $${n}::text)`;
        });
        await client.query(
          `UPDATE keys SET last_used_at = v.at, last_used_ip = v.ip FROM (VALUES ${rows.join(", ")}) AS v (at, ip, id)
           WHERE keys.id = v.id AND (keys.last_used_at IS NULL OR keys.last_used_at < v.at)`,
          values,
        );
      }
      await client.query("COMMIT");
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  /**
   * One transaction: the keys' sequences advance in one statement (rows locked in key order, so
   * concurrent writers wait for each other instead of deadlocking, and each gets its own slots),
   * then one multi-row upsert puts each request in its slot.
   */
  async writeRecentRequests(requests: readonly RecentRequest[], keep: number): Promise<void> {
    if (requests.length === 0 || keep < 1) return;
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN");
      if (this.recentKept !== keep) await this.agreeOnKept(client, keep);
      const counts = countsByKey(requests);
      const heads: unknown[] = [];
      const headRows = counts.map(([keyId, count]) => {
        heads.push(keyId, count);
        return `($${heads.length - 1}, $${heads.length}::bigint)`;
      });
      const advanced = await client.query<{ key_id: string; next_seq: string }>(
        `INSERT INTO recent_request_heads (key_id, next_seq) VALUES ${headRows.join(", ")}
         ON CONFLICT (key_id) DO UPDATE SET next_seq = recent_request_heads.next_seq + EXCLUDED.next_seq RETURNING key_id, next_seq`,
        heads,
      );
      const counted = new Map(counts);
      const starts = new Map(advanced.rows.map((row) => [row.key_id, Number(row.next_seq) - (counted.get(row.key_id) as number)]));
      const values: unknown[] = [];
      const rows = recentRequestValues(requests, starts, keep).map((row) => {
        values.push(...row);
        return placeholders(values.length - row.length + 1, row.length);
      });
      await client.query(
        `INSERT INTO recent_requests (${RECENT_REQUEST_COLUMNS}) VALUES ${rows.join(", ")}
         ON CONFLICT (key_id, slot) DO UPDATE SET ${UPSERT_RECENT_REQUEST_SET}`,
        values,
      );
      await client.query("COMMIT");
      this.recentKept = keep;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  /** A smaller ring than the table was last written with: the slots past it go, once. */
  private async agreeOnKept(client: pg.PoolClient, keep: number): Promise<void> {
    const row = (await client.query<{ value: string }>("SELECT value FROM meta WHERE name = $1", [RECENT_REQUESTS_KEPT_META])).rows[0];
    if (row === undefined || Number(row.value) > keep) await client.query("DELETE FROM recent_requests WHERE slot >= $1", [keep]);
    if (row === undefined || Number(row.value) !== keep)
      await client.query("INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value", [
        RECENT_REQUESTS_KEPT_META,
        String(keep),
      ]);
  }

  async listRecentRequests(keyId: string, keep: number, limit: number, after: RecentRequestCursor | null): Promise<StoredRecentRequest[]> {
    const query = recentRequestsQuery(keyId, keep, limit, after);
    const result = await this.pool.query<RecentRequestRow>(numberPlaceholders(query.sql), query.values);
    return result.rows.map((row) => rowToRecentRequest(keyId, row));
  }

  async queryUsage(query: UsageQuery): Promise<UsageRow[]> {
    const { sql, params } = buildUsageQuery(query, (i) => `$${i}`);
    const result = await this.pool.query<{ start: string; key_id: string; outcome: string; count: string }>(sql, params);
    return result.rows.map((row) => ({
      start: Number(row.start),
      keyId: row.key_id,
      outcome: row.outcome as OutcomeCode,
      count: Number(row.count),
    }));
  }

  async pruneUsage(before: number): Promise<number> {
    const minute = Math.floor(before / BUCKET_MS.minute) * BUCKET_MS.minute;
    return (await this.pool.query("DELETE FROM usage_counts WHERE minute < $1", [minute])).rowCount ?? 0;
  }
}
