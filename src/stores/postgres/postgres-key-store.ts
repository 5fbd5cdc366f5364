import pg from "pg";
import { AUDIT_GENESIS_HASH, type AuditChainEntry } from "../../core/audit-chain.js";
import type { AuditEvent, KeyLifecycleChanges, KeyRecord, OwnerRecord, OwnerRef } from "../../core/model.js";
import type {
  AlsoChanged,
  AuditFilter,
  AuditPage,
  CreationCap,
  KeyChangeBatch,
  KeyImportSession,
  KeyListFilter,
  KeyLookup,
  KeyPage,
  KeyPageCursor,
  KeyStore,
  OwnerFields,
  OwnerListFilter,
  OwnerPage,
  RotateResult,
} from "../../ports/key-store.js";
import {
  CHANGE_FEED_MAX_ROWS,
  CHANGE_PRUNE_EVERY_MS,
  DEFAULT_CHANGE_RETENTION_MS,
  type KeyChangeRow,
  toChangeBatch,
} from "../key-changes.js";
import {
  type OwnerRow,
  ownerFromRow,
  ownerLimitsOfLookup,
  ownerListWhere,
  ownerPage,
  ownerUpdateSql,
  sharedLimitsToJson,
} from "../owner-rows.js";
import {
  AUDIT_INSERT_COLUMNS,
  type AuditRow,
  auditRowToChainEntry,
  chainedAuditRowValues,
  changesToColumns,
  KEY_COLUMNS,
  type KeyRow,
  keyToRowValues,
  rowToAudit,
  rowToKey,
} from "../rows.js";
import { bindNumbered, buildAuditWhere, buildCreatedSinceCount, buildKeyListWhere } from "../sql-filters.js";
import { AUDIT_POSTGRES_MIGRATIONS, applyPostgresMigrations, CORE_POSTGRES_MIGRATIONS, ensureNameSearchIndex } from "./migrations.js";
import { PostgresKeyImport } from "./postgres-key-import.js";

export interface PostgresKeyStoreOptions {
  connectionString: string;
  /** A schema to keep Keyward's tables in (created if missing). Default: the connection's search_path. */
  schema?: string;
  /** Pool size. Default 10. */
  maxConnections?: number;
  /**
   * How long one query may take before it fails, in ms (client side, so it holds when the server
   * hangs rather than refuses: a network black hole, a frozen server). Default 5,000.
   */
  queryTimeoutMs?: number;
  /** How long change-feed rows are kept (docs/architecture.md, the change feed). Default one hour. */
  changeRetentionMs?: number;
}

/** Statements the store ran, by kind: what keeps cached keys current costs (docs/deploy.md, sizing). */
export interface PostgresStatementCounts {
  /** `findKeyByDigest`: cache misses and re-reads. */
  keyLookups: number;
  /** `pollKeyChanges`: one per change-feed poll. */
  changePolls: number;
  /** Deletions of old change rows (about once a minute per store object). */
  changePrunes: number;
}

/**
 * One poll of the change feed, in one statement (so one snapshot): the snapshot itself, the
 * prune marker, and the change rows the previous snapshot could not see, which are exactly those
 * of transactions it listed as running ($3, its xip) or that had not started or ended before it
 * (xid at or past its xmax, $2). Transaction ids are 64-bit (xid8): no wraparound.
 */
const POLL_KEY_CHANGES = `
  WITH s AS (SELECT pg_current_snapshot() AS snap)
  SELECT s.snap::text AS snapshot,
         (SELECT value FROM meta WHERE name = 'key_changes_pruned_xid') AS pruned,
         c.key_id, c.digest, c.owner_type, c.owner_id
  FROM s LEFT JOIN LATERAL (
    SELECT seq, key_id, digest, owner_type, owner_id FROM key_changes
    WHERE $1::boolean AND (xid >= $2::xid8 OR xid = ANY($3::xid8[]))
    ORDER BY seq LIMIT $4
  ) c ON true
  ORDER BY c.seq`;

/**
 * Deletes change rows older than $1 of transactions every snapshot now sees as ended (below the
 * current xmin), and keeps the largest transaction id deleted: a reader whose last snapshot's
 * xmin is not above it may have missed a row, and resets.
 */
const PRUNE_KEY_CHANGES = `
  WITH gone AS (
    DELETE FROM key_changes WHERE changed_at < $1 AND xid < pg_snapshot_xmin(pg_current_snapshot()) RETURNING xid
  )
  INSERT INTO meta (name, value) SELECT 'key_changes_pruned_xid', max(xid)::text FROM gone HAVING count(*) > 0
  ON CONFLICT (name) DO UPDATE SET value = GREATEST(meta.value::xid8, excluded.value::xid8)::text`;

/** A pg_snapshot as text: `xmin:xmax:xip,xip,…`. */
function parseSnapshot(text: string): { xmin: bigint; xmax: string; xip: string } {
  const match = /^(\d+):(\d+):([\d,]*)$/.exec(text);
  if (!match) throw new RangeError("not a change-feed cursor");
  return { xmin: BigInt(match[1] as string), xmax: match[2] as string, xip: `{${match[3]}}` };
}

const placeholders = (count: number, from = 1) => Array.from({ length: count }, (_, i) => `$${i + from}`).join(", ");
export const INSERT_KEY = `INSERT INTO keys (${KEY_COLUMNS.join(", ")}) VALUES (${placeholders(KEY_COLUMNS.length)})`;
const INSERT_AUDIT = `INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS}) VALUES (${placeholders(14)})`;
// Serialises audit appends across instances: each event must link to the one before it.
const AUDIT_CHAIN_LOCK = 0x6b776163;
export const ENSURE_OWNER = "INSERT INTO owners (type, id, disabled, created_at) VALUES ($1, $2, FALSE, $3) ON CONFLICT DO NOTHING";

/** Links `event` to the last audit event, inside the caller's transaction (other modules sharing the database use it too). */
export async function appendChained(client: pg.PoolClient, event: AuditEvent): Promise<void> {
  await client.query("SELECT pg_advisory_xact_lock($1)", [AUDIT_CHAIN_LOCK]);
  const last = (await client.query<{ hash: string }>("SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1")).rows[0]?.hash;
  await client.query(INSERT_AUDIT, chainedAuditRowValues(event, last ?? AUDIT_GENESIS_HASH));
}

/** Runs `work` in one transaction on one pooled client: committed if it returns, rolled back if it throws. */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    const result = await work(client);
    await client.query("COMMIT");
    return result;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

/**
 * KeyStore on PostgreSQL (node-postgres, pooled). The verify lookup is one named prepared
 * statement on the unique digest index. Writes and their audit events share a transaction.
 */
export class PostgresKeyStore implements KeyStore {
  readonly pool: pg.Pool;
  private readonly schema: string | undefined;
  /**
   * Whether name search has its trigram index (pg_trgm), known once `migrate()` ran: without it
   * `GET /v1/keys?q=` scans the keys table for names (the service warns at start).
   */
  nameSearchIndexed: boolean | null = null;
  /** Statements run, by kind (counted on this store object, every caller together). */
  readonly statementCounts: PostgresStatementCounts = { keyLookups: 0, changePolls: 0, changePrunes: 0 };
  private readonly changeRetentionMs: number;
  private lastPruneAt = 0;

  constructor(options: PostgresKeyStoreOptions) {
    if (options.schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(options.schema)) throw new RangeError("invalid schema name");
    this.schema = options.schema;
    this.changeRetentionMs = options.changeRetentionMs ?? DEFAULT_CHANGE_RETENTION_MS;
    this.pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.maxConnections ?? 10,
      // Fail fast when the database is unreachable: the engine then serves from cache or answers 503.
      connectionTimeoutMillis: Math.min(2_000, options.queryTimeoutMs ?? 2_000),
      // A hung server never answers, so the server-side statement_timeout never fires: the
      // client's own timeout bounds every call, and the pool drops the client it timed out on.
      query_timeout: options.queryTimeoutMs ?? 5_000,
      ...(options.schema ? { options: `-c search_path=${options.schema}` } : {}),
    });
    // An idle client losing its connection must not crash the process; the next query reconnects.
    this.pool.on("error", () => {});
    // A client checked out of the pool (a transaction, a migration) when the server goes away
    // emits "error" too, and with no listener that would end the process. The query it was
    // running rejects on its own, so the event itself needs no handling.
    this.pool.on("connect", (client) => client.on("error", () => {}));
  }

  /** Runs `work` in one transaction on one pooled client: committed whole or rolled back. */
  transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, work);
  }

  async migrate(): Promise<void> {
    const client = await this.pool.connect();
    try {
      if (this.schema) await client.query(`CREATE SCHEMA IF NOT EXISTS ${this.schema}`);
      await applyPostgresMigrations(client, CORE_POSTGRES_MIGRATIONS);
      await applyPostgresMigrations(client, AUDIT_POSTGRES_MIGRATIONS);
      this.nameSearchIndexed = await ensureNameSearchIndex(client);
    } finally {
      client.release();
    }
  }

  async findKeyByDigest(digest: string): Promise<KeyLookup | null> {
    this.statementCounts.keyLookups++;
    const result = await this.pool.query<
      KeyRow & { owner_disabled: boolean | null; owner_limits: string | null; owner_created_at: string | null }
    >({
      name: "keyward_find_key_by_digest",
      text: `SELECT k.*, o.disabled AS owner_disabled, o.limits AS owner_limits, o.created_at AS owner_created_at FROM keys k
             LEFT JOIN owners o ON o.type = k.owner_type AND o.id = k.owner_id WHERE k.digest = $1`,
      values: [digest],
    });
    const row = result.rows[0];
    if (!row) return null;
    const key = rowToKey(row);
    return {
      key,
      ownerDisabled: row.owner_disabled === true,
      ownerLimits: ownerLimitsOfLookup(key.owner, row.owner_limits, row.owner_created_at),
    };
  }

  async getKey(id: string): Promise<KeyRecord | null> {
    const row = (await this.pool.query<KeyRow>("SELECT * FROM keys WHERE id = $1", [id])).rows[0];
    return row ? rowToKey(row) : null;
  }

  async listKeys(filter: KeyListFilter, limit: number, after: KeyPageCursor | null): Promise<KeyPage> {
    const params: unknown[] = [];
    const where = buildKeyListWhere(filter, after, bindNumbered(params), "postgres");
    params.push(limit + 1);
    const rows = (
      await this.pool.query<KeyRow>(`SELECT * FROM keys ${where} ORDER BY created_at DESC, id DESC LIMIT $${params.length}`, params)
    ).rows;
    const keys = rows.slice(0, limit).map(rowToKey);
    const last = keys[keys.length - 1];
    return { keys, next: rows.length > limit && last ? { createdAt: last.createdAt, id: last.id } : null };
  }

  async insertKey(key: KeyRecord, audit: AuditEvent, cap?: CreationCap): Promise<boolean> {
    return this.transaction(async (client) => {
      if (cap) {
        // One lock per owner for the rest of the transaction: concurrent creations for the same
        // owner count and insert one after another, on every instance.
        await client.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [`keyward:cap:${cap.owner.type}:${cap.owner.id}`]);
        const params: unknown[] = [];
        const counted = await client.query<{ n: string }>(buildCreatedSinceCount(cap, bindNumbered(params)), params);
        if (Number(counted.rows[0]?.n ?? 0) >= cap.max) return false;
      }
      await client.query(ENSURE_OWNER, [key.owner.type, key.owner.id, key.createdAt]);
      await client.query(INSERT_KEY, keyToRowValues(key, false));
      await appendChained(client, audit);
      return true;
    });
  }

  async updateKey(
    id: string,
    changes: KeyLifecycleChanges,
    audit: AuditEvent | null,
    also: readonly AlsoChanged[] = [],
  ): Promise<KeyRecord | null> {
    return this.transaction(async (client) => {
      let updated: KeyRow | undefined;
      for (const update of [{ id, changes }, ...also]) {
        const columns = changesToColumns(update.changes, false);
        const set = [...columns.map((c, i) => `${c.column} = $${i + 1}`), `updated_at = $${columns.length + 1}`].join(", ");
        const result = await client.query<KeyRow>(`UPDATE keys SET ${set} WHERE id = $${columns.length + 2} RETURNING *`, [
          ...columns.map((c) => c.value),
          audit?.at ?? Date.now(),
          update.id,
        ]);
        if (update.id === id) {
          updated = result.rows[0];
          if (!updated) return null;
        }
      }
      if (audit) await appendChained(client, audit);
      return updated ? rowToKey(updated) : null;
    });
  }

  async rotateKey(oldId: string, oldChanges: KeyLifecycleChanges, successor: KeyRecord, audit: AuditEvent): Promise<RotateResult> {
    return this.transaction(async (client): Promise<RotateResult> => {
      // The conditional update is the arbiter: of two concurrent rotations only one matches.
      const marked = await client.query(
        "UPDATE keys SET replaced_by = $1, grace_ends_at = $2, updated_at = $3 WHERE id = $4 AND replaced_by IS NULL AND revoked_at IS NULL",
        [successor.id, oldChanges.graceEndsAt ?? null, audit.at, oldId],
      );
      if (marked.rowCount === 0) {
        const exists = await client.query("SELECT 1 FROM keys WHERE id = $1", [oldId]);
        return exists.rowCount === 0 ? "not_found" : "conflict";
      }
      await client.query(INSERT_KEY, keyToRowValues(successor, false));
      await appendChained(client, audit);
      return "rotated";
    });
  }

  async getOwner(owner: OwnerRef): Promise<OwnerRecord | null> {
    const row = (await this.pool.query<OwnerRow>("SELECT * FROM owners WHERE type = $1 AND id = $2", [owner.type, owner.id])).rows[0];
    return row ? ownerFromRow(row) : null;
  }

  async ensureOwner(owner: OwnerRef, now: number): Promise<void> {
    await this.pool.query(ENSURE_OWNER, [owner.type, owner.id, now]);
  }

  async setOwnerDisabled(owner: OwnerRef, disabled: boolean, audit: AuditEvent, now: number): Promise<OwnerRecord> {
    return this.transaction(async (client) => {
      await client.query(ENSURE_OWNER, [owner.type, owner.id, now]);
      const row = (
        await client.query<OwnerRow>("UPDATE owners SET disabled = $1 WHERE type = $2 AND id = $3 RETURNING *", [
          disabled,
          owner.type,
          owner.id,
        ])
      ).rows[0];
      await appendChained(client, audit);
      return ownerFromRow(row as OwnerRow);
    });
  }

  async createOwner(owner: OwnerRef, fields: OwnerFields, audit: AuditEvent, now: number): Promise<OwnerRecord | null> {
    return this.transaction(async (client) => {
      const row = (
        await client.query<OwnerRow>(
          `INSERT INTO owners (type, id, disabled, created_at, name, limits) VALUES ($1, $2, FALSE, $3, $4, $5)
           ON CONFLICT DO NOTHING RETURNING *`,
          [owner.type, owner.id, now, fields.name ?? null, sharedLimitsToJson(fields.limits ?? null)],
        )
      ).rows[0];
      if (!row) return null;
      await appendChained(client, audit);
      return ownerFromRow(row);
    });
  }

  async updateOwner(owner: OwnerRef, fields: OwnerFields, audit: AuditEvent): Promise<OwnerRecord | null> {
    let n = 0;
    const { sql, values } = ownerUpdateSql(fields, () => `$${++n}`);
    return this.transaction(async (client) => {
      const row = (
        await client.query<OwnerRow>(
          sql
            ? `UPDATE owners SET ${sql} WHERE type = $${n + 1} AND id = $${n + 2} RETURNING *`
            : "SELECT * FROM owners WHERE type = $1 AND id = $2 FOR UPDATE",
          [...values, owner.type, owner.id],
        )
      ).rows[0];
      if (!row) return null;
      await appendChained(client, audit);
      return ownerFromRow(row);
    });
  }

  async listOwners(filter: OwnerListFilter, limit: number, after: KeyPageCursor | null): Promise<OwnerPage> {
    let n = 0;
    const { where, values } = ownerListWhere(filter, after, () => `$${++n}`);
    const rows = (
      await this.pool.query<OwnerRow>(`SELECT * FROM owners WHERE ${where} ORDER BY created_at DESC, id DESC LIMIT $${n + 1}`, [
        ...values,
        limit + 1,
      ])
    ).rows;
    return ownerPage(rows, limit);
  }

  async appendAuditEvent(event: AuditEvent): Promise<void> {
    await this.transaction((client) => appendChained(client, event));
  }

  async readAuditChain(afterSeq: number, limit: number): Promise<AuditChainEntry[]> {
    const rows = (await this.pool.query<AuditRow>("SELECT * FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2", [afterSeq, limit]))
      .rows;
    return rows.map(auditRowToChainEntry);
  }

  async listAuditEvents(filter: AuditFilter, limit: number, after: string | null): Promise<AuditPage> {
    const params: unknown[] = [];
    const where = buildAuditWhere(filter, after === null ? null : Number(after), bindNumbered(params));
    params.push(limit + 1);
    const rows = (await this.pool.query<AuditRow>(`SELECT * FROM audit_events ${where} ORDER BY seq DESC LIMIT $${params.length}`, params))
      .rows;
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return { events: page.map(rowToAudit), next: rows.length > limit && last ? String(last.seq) : null };
  }

  async getMeta(name: string): Promise<string | null> {
    return (await this.pool.query<{ value: string }>("SELECT value FROM meta WHERE name = $1", [name])).rows[0]?.value ?? null;
  }

  async setMetaOnce(name: string, value: string): Promise<boolean> {
    return (
      ((await this.pool.query("INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING", [name, value])).rowCount ?? 0) === 1
    );
  }

  async probeWrite(): Promise<void> {
    await this.pool.query(
      "INSERT INTO meta (name, value) VALUES ('write_probe', $1) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
      [String(Date.now())],
    );
  }

  async countKeys(filter?: KeyListFilter): Promise<number> {
    const params: unknown[] = [];
    const where = filter ? buildKeyListWhere(filter, null, bindNumbered(params), "postgres") : "";
    return Number((await this.pool.query<{ n: string }>(`SELECT COUNT(*) AS n FROM keys ${where}`, params)).rows[0]?.n ?? 0);
  }

  /**
   * The change feed (docs/architecture.md): the keys and owners changed since the snapshot
   * `after` (null: answers the current snapshot only). Commit order is not sequence order
   * across connections, so the cursor is a snapshot, not a seq: see POLL_KEY_CHANGES.
   */
  async pollKeyChanges(after: string | null): Promise<KeyChangeBatch> {
    if (Date.now() - this.lastPruneAt >= CHANGE_PRUNE_EVERY_MS) {
      this.lastPruneAt = Date.now();
      // In the background: a poll never waits for it, and a failed prune is retried next turn.
      this.pruneKeyChanges(this.changeRetentionMs).catch(() => {});
    }
    const previous = after === null ? null : parseSnapshot(after);
    this.statementCounts.changePolls++;
    const result = await this.pool.query<KeyChangeRow & { snapshot: string; pruned: string | null }>({
      name: "keyward_poll_key_changes",
      text: POLL_KEY_CHANGES,
      values: [previous !== null, previous?.xmax ?? "0", previous?.xip ?? "{}", CHANGE_FEED_MAX_ROWS + 1],
    });
    const first = result.rows[0];
    if (!first) throw new Error("change feed poll answered no row");
    const rows = result.rows.filter((row) => row.key_id !== null || row.owner_type !== null);
    const reset =
      previous !== null && ((first.pruned !== null && BigInt(first.pruned) >= previous.xmin) || rows.length > CHANGE_FEED_MAX_ROWS);
    return toChangeBatch(first.snapshot, rows, reset);
  }

  /** Deletes change rows older than `olderThanMs` (of ended transactions); answers whether any was. */
  async pruneKeyChanges(olderThanMs: number): Promise<boolean> {
    this.statementCounts.changePrunes++;
    const noted = await this.pool.query(PRUNE_KEY_CHANGES, [Date.now() - olderThanMs]);
    return (noted.rowCount ?? 0) > 0;
  }

  /** Bulk writes of an import (docs/migrating.md): one multi-row insert per batch. */
  async openImport(options: { dryRun: boolean }): Promise<KeyImportSession> {
    return PostgresKeyImport.open(this.pool, options.dryRun);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
