import { randomBytes } from "node:crypto";
import type pg from "pg";
import type { KeyRecord } from "../../core/model.js";
import type { ImportMatch, KeyImportSession } from "../../ports/key-store.js";
import { KEY_COLUMNS, keyToRowValues } from "../rows.js";

/** The PostgreSQL type of each key column (migrations.ts), for the arrays `unnest` takes apart. */
const COLUMN_TYPES: Record<(typeof KEY_COLUMNS)[number], string> = {
  id: "text",
  digest: "text",
  hash_version: "integer",
  ref: "text",
  name: "text",
  owner_type: "text",
  owner_id: "text",
  environment: "text",
  scopes: "text",
  enabled: "boolean",
  created_at: "bigint",
  updated_at: "bigint",
  expires_at: "bigint",
  revoked_at: "bigint",
  revoked_reason: "text",
  last_used_at: "bigint",
  rate_limit: "text",
  concurrency: "integer",
  quota: "text",
  allowed_cidrs: "text",
  metadata: "text",
  rotated_from: "text",
  replaced_by: "text",
  grace_ends_at: "bigint",
  lineage_id: "text",
  last_used_ip: "text",
  delegation: "text",
  awaiting_pickup: "boolean",
  legacy_format: "text",
  external_id: "text",
};

/** One statement per batch: every column an array, `unnest` makes the rows. */
const INSERT_KEYS = `INSERT INTO keys (${KEY_COLUMNS.join(", ")})
  SELECT * FROM unnest(${KEY_COLUMNS.map((column, i) => `$${i + 1}::${COLUMN_TYPES[column]}[]`).join(", ")})`;

/** The same, leaving out (and not returning) a row another writer stored first: only after the plain insert met one. */
const INSERT_KEYS_UNLESS_STORED = `${INSERT_KEYS} ON CONFLICT DO NOTHING RETURNING id`;

const UNIQUE_VIOLATION = "23505";

const INSERT_OWNERS = `INSERT INTO owners (type, id, disabled, created_at)
  SELECT type, id, FALSE, created_at FROM unnest($1::text[], $2::text[], $3::bigint[]) AS o(type, id, created_at)
  ON CONFLICT DO NOTHING`;

const MATCH_KEYS = `SELECT id, external_id, digest FROM keys WHERE external_id = ANY($1::text[])
  UNION SELECT id, external_id, digest FROM keys WHERE digest = ANY($2::text[])`;

type MatchRow = { id: string; external_id: string | null; digest: string };

const toMatch = (row: MatchRow): ImportMatch => ({ id: row.id, externalId: row.external_id, digest: row.digest });

/**
 * An import into PostgreSQL (KeyImportSession): each batch is one transaction of two statements,
 * the batch's owners and its keys, each a multi-row insert of arrays through `unnest` (a round
 * trip per batch, not per row). The keys go in with a plain insert, ~15% cheaper than `ON
 * CONFLICT DO NOTHING`'s speculative one; only if another writer stored one of them since the
 * batch was matched (a unique violation) is the batch written again with `ON CONFLICT DO NOTHING`,
 * leaving those out. A batch commits without waiting for its WAL flush (`synchronous_commit =
 * off`): the import's audit event, committed after the last batch as every change is, flushes it.
 * Time on PostgreSQL goes to the server's index maintenance (docs/benchmarks.md, import), which
 * works while this process reads the next batch.
 *
 * A dry run holds one connection for its whole length and keeps what it would have written in a
 * TEMP table of that session, dropped at the end.
 */
export class PostgresKeyImport implements KeyImportSession {
  private constructor(
    private readonly pool: pg.Pool,
    private readonly scratch: { client: pg.PoolClient; table: string } | null,
  ) {}

  /**
   * Two batches are written at once, each by its own server backend: one backend maintaining the
   * key indexes was the import's limit, on one core of the server (docs/benchmarks.md, import).
   * A dry run's one connection takes its statements in turn, so it writes one at a time.
   */
  get writers(): number {
    return this.scratch === null ? 2 : 1;
  }

  static async open(pool: pg.Pool, dryRun: boolean): Promise<PostgresKeyImport> {
    if (!dryRun) return new PostgresKeyImport(pool, null);
    const client = await pool.connect();
    const table = `kw_import_${randomBytes(6).toString("hex")}`;
    try {
      await client.query(`CREATE TEMP TABLE ${table} (id TEXT PRIMARY KEY, external_id TEXT UNIQUE, digest TEXT NOT NULL UNIQUE)`);
    } catch (error) {
      client.release();
      throw error;
    }
    return new PostgresKeyImport(pool, { client, table });
  }

  async findMatches(externalIds: readonly string[], digests: readonly string[]): Promise<ImportMatch[]> {
    if (externalIds.length === 0 && digests.length === 0) return [];
    const params = [externalIds, digests];
    if (this.scratch === null) return (await this.pool.query<MatchRow>(MATCH_KEYS, params)).rows.map(toMatch);
    const { client, table } = this.scratch;
    const sql = `${MATCH_KEYS} UNION SELECT id, external_id, digest FROM ${table} WHERE external_id = ANY($1::text[])
      UNION SELECT id, external_id, digest FROM ${table} WHERE digest = ANY($2::text[])`;
    return (await client.query<MatchRow>(sql, params)).rows.map(toMatch);
  }

  async insert(keys: readonly KeyRecord[]): Promise<ReadonlySet<string>> {
    if (keys.length === 0) return new Set();
    let inserted: readonly { id: string }[] = [];
    if (this.scratch !== null) {
      const { client, table } = this.scratch;
      inserted = (
        await client.query<{ id: string }>(
          `INSERT INTO ${table} (id, external_id, digest) SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING RETURNING id`,
          [keys.map((k) => k.id), keys.map((k) => k.externalId), keys.map((k) => k.digest)],
        )
      ).rows;
    } else {
      const owners = new Map<string, KeyRecord>();
      for (const key of keys) owners.set(`${key.owner.type}:${key.owner.id}`, key);
      const columns: unknown[][] = KEY_COLUMNS.map(() => new Array(keys.length));
      keys.forEach((key, row) => {
        const values = keyToRowValues(key, false);
        for (let i = 0; i < values.length; i++) (columns[i] as unknown[])[row] = values[i];
      });
      const list = [...owners.values()];
      const ownerColumns = [list.map((k) => k.owner.type), list.map((k) => k.owner.id), list.map((k) => k.updatedAt)];
      const client = await this.pool.connect();
      try {
        // The batch was matched just before: a conflict means another writer got there in between,
        // so the plain insert (~15% faster than ON CONFLICT's speculative one) goes first.
        for (const sql of [INSERT_KEYS, INSERT_KEYS_UNLESS_STORED]) {
          try {
            // A batch need not wait for its WAL flush: the import's audit event, committed after the
            // last batch with the default synchronous commit, flushes the WAL of every batch before it.
            await client.query("BEGIN; SET LOCAL synchronous_commit = off");
            await client.query(INSERT_OWNERS, ownerColumns);
            const result = await client.query<{ id: string }>(sql, columns);
            await client.query("COMMIT");
            inserted = sql === INSERT_KEYS ? keys : result.rows;
            break;
          } catch (error) {
            await client.query("ROLLBACK").catch(() => {});
            if (sql === INSERT_KEYS_UNLESS_STORED || (error as { code?: string }).code !== UNIQUE_VIOLATION) throw error;
          }
        }
      } finally {
        client.release();
      }
    }
    const written = new Set(inserted.map((row) => row.id));
    return new Set(keys.filter((key) => !written.has(key.id)).map((key) => key.id));
  }

  async close(): Promise<void> {
    if (this.scratch === null) return;
    const { client, table } = this.scratch;
    try {
      await client.query(`DROP TABLE IF EXISTS ${table}`);
    } finally {
      client.release();
    }
  }
}
