import Database from "better-sqlite3";
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
  type KeyRow,
  rowToAudit,
  rowToKey,
} from "../rows.js";
import { bindQuestionMark, buildAuditWhere, buildCreatedSinceCount, buildKeyListWhere } from "../sql-filters.js";
import { isDiskDatabase, narrowSidecars, prepareDatabaseFile, writeRefusalOf } from "./file-modes.js";
import { AUDIT_SQLITE_MIGRATIONS, applySqliteMigrations, CORE_SQLITE_MIGRATIONS } from "./migrations.js";
import { SqliteKeyImport } from "./sqlite-key-import.js";
import { prepareKeyWrites, SELECT_KEY_ROWS } from "./sqlite-key-rows.js";

export interface SqliteKeyStoreOptions {
  /** File path, or `:memory:`. Parent folders are created. */
  filename: string;
  /**
   * SQLite's own page cache, in MiB. Default 64 (SQLite's default is 2): with a million keys the
   * index pages a lookup walks no longer fit in 2 MiB, and each miss becomes a read call.
   */
  cacheMiB?: number;
  /**
   * How much of the file is read through a memory map, in MiB (no read call per page). Default
   * 1024: a million keys make a ~460 MiB file, and mapping all of it took their cache-miss p50
   * from ~19 to ~17.6 µs (the 256 MiB of earlier versions mapped half). Address space only: the
   * pages are the OS's file cache, shared and reclaimable. 0 turns it off.
   */
  mmapMiB?: number;
  /** How long change-feed rows are kept (docs/architecture.md, the change feed). Default one hour. */
  changeRetentionMs?: number;
}

/**
 * KeyStore on an embedded SQLite file (better-sqlite3). WAL journal with `synchronous = FULL`:
 * an acknowledged write is on disk before the response, so it survives `kill -9` and power loss.
 * Statements on the hot path are prepared once.
 */
export class SqliteKeyStore implements KeyStore {
  readonly db: Database.Database;
  private prepared: ReturnType<SqliteKeyStore["prepareStatements"]> | undefined;

  /**
   * The data folder or database file, found open to other users when the store opened it (mode
   * wider than 0700/0600): the service logs each at start. Folders and files it creates are
   * 0700/0600 whatever the umask (file-modes.ts).
   */
  readonly fileModeWarnings: readonly string[];
  private readonly onDisk: boolean;
  private readonly changeRetentionMs: number;
  private lastPruneAt = 0;

  constructor(options: SqliteKeyStoreOptions) {
    const onDisk = isDiskDatabase(options.filename);
    this.onDisk = onDisk;
    this.changeRetentionMs = options.changeRetentionMs ?? DEFAULT_CHANGE_RETENTION_MS;
    this.fileModeWarnings = onDisk ? prepareDatabaseFile(options.filename) : [];
    this.db = new Database(options.filename);
    this.db.pragma("journal_mode = WAL");
    if (onDisk) narrowSidecars(options.filename);
    this.db.pragma("synchronous = FULL");
    this.db.pragma("foreign_keys = ON");
    // Another process (the CLI beside a running server) may hold the write lock briefly.
    this.db.pragma("busy_timeout = 5000");
    // Cache misses are store reads: keep a million keys' index pages at hand (docs/benchmarks.md, scale).
    this.db.pragma(`cache_size = ${-1024 * Math.max(1, Math.floor(options.cacheMiB ?? 64))}`);
    this.db.pragma(`mmap_size = ${1024 * 1024 * Math.max(0, Math.floor(options.mmapMiB ?? 1024))}`);
  }

  private get s(): ReturnType<SqliteKeyStore["prepareStatements"]> {
    this.prepared ??= this.prepareStatements();
    return this.prepared;
  }

  private prepareStatements() {
    return {
      findByDigest: this.db.prepare<
        [string],
        KeyRow & { owner_disabled: number | null; owner_limits: string | null; owner_created_at: number | null }
      >(
        `SELECT k.*, o.disabled AS owner_disabled, o.limits AS owner_limits, o.created_at AS owner_created_at,
                u.at AS last_used_at, u.ip AS last_used_ip FROM keys k
         LEFT JOIN owners o ON o.type = k.owner_type AND o.id = k.owner_id
         LEFT JOIN key_last_use u ON u.key_id = k.id WHERE k.digest = ?`,
      ),
      getKey: this.db.prepare<[string], KeyRow>(`${SELECT_KEY_ROWS} WHERE k.id = ?`),
      keyWrites: prepareKeyWrites(this.db),
      insertAudit: this.db.prepare(
        `INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS}) VALUES (${AUDIT_INSERT_COLUMNS.split(",")
          .map(() => "?")
          .join(", ")})`,
      ),
      lastAuditHash: this.db.prepare<[], { hash: string }>("SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1"),
      readAuditChain: this.db.prepare<[number, number], AuditRow>("SELECT * FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?"),
      getOwner: this.db.prepare<[string, string], OwnerRow>("SELECT * FROM owners WHERE type = ? AND id = ?"),
      ensureOwner: this.db.prepare("INSERT INTO owners (type, id, disabled, created_at) VALUES (?, ?, 0, ?) ON CONFLICT DO NOTHING"),
      setOwnerDisabled: this.db.prepare("UPDATE owners SET disabled = ? WHERE type = ? AND id = ?"),
      insertOwner: this.db.prepare(
        "INSERT INTO owners (type, id, disabled, created_at, name, limits) VALUES (?, ?, 0, ?, ?, ?) ON CONFLICT DO NOTHING",
      ),
      markReplaced: this.db.prepare(
        "UPDATE keys SET replaced_by = ?, grace_ends_at = ?, updated_at = ? WHERE id = ? AND replaced_by IS NULL AND revoked_at IS NULL",
      ),
      getMeta: this.db.prepare<[string], { value: string }>("SELECT value FROM meta WHERE name = ?"),
      setMetaOnce: this.db.prepare("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING"),
      countKeys: this.db.prepare<[], { n: number }>("SELECT COUNT(*) AS n FROM keys"),
      changeSeq: this.db.prepare<[], string>("SELECT value FROM meta WHERE name = 'change_seq'").pluck(),
      keyChangesAfter: this.db.prepare<[number, number], KeyChangeRow & { seq: number }>(
        "SELECT seq, key_id, digest, owner_type, owner_id FROM key_changes WHERE seq > ? ORDER BY seq LIMIT ?",
      ),
      lastKeyChange: this.db.prepare<[], number | null>("SELECT MAX(seq) FROM key_changes").pluck(),
      prunedKeyChanges: this.db.prepare<[], string>("SELECT value FROM meta WHERE name = 'key_changes_pruned_seq'").pluck(),
      lastOldKeyChange: this.db.prepare<[number], number | null>("SELECT MAX(seq) FROM key_changes WHERE changed_at < ?").pluck(),
      deleteKeyChanges: this.db.prepare<[number]>("DELETE FROM key_changes WHERE seq <= ?"),
      notePrunedKeyChanges: this.db.prepare<[string]>(
        `INSERT INTO meta (name, value) VALUES ('key_changes_pruned_seq', ?)
         ON CONFLICT (name) DO UPDATE SET value = CAST(MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER)) AS TEXT)`,
      ),
    };
  }

  async migrate(): Promise<void> {
    applySqliteMigrations(this.db, CORE_SQLITE_MIGRATIONS);
    applySqliteMigrations(this.db, AUDIT_SQLITE_MIGRATIONS);
  }

  async findKeyByDigest(digest: string): Promise<KeyLookup | null> {
    const row = this.s.findByDigest.get(digest);
    if (!row) return null;
    const key = rowToKey(row);
    return {
      key,
      ownerDisabled: row.owner_disabled === 1,
      ownerLimits: ownerLimitsOfLookup(key.owner, row.owner_limits, row.owner_created_at),
    };
  }

  async getKey(id: string): Promise<KeyRecord | null> {
    const row = this.s.getKey.get(id);
    return row ? rowToKey(row) : null;
  }

  async listKeys(filter: KeyListFilter, limit: number, after: KeyPageCursor | null): Promise<KeyPage> {
    const params: unknown[] = [];
    const where = buildKeyListWhere(filter, after, bindQuestionMark(params), "sqlite");
    const rows = this.db
      .prepare<unknown[], KeyRow>(`${SELECT_KEY_ROWS} ${where} ORDER BY k.created_at DESC, k.id DESC LIMIT ?`)
      .all(...params, limit + 1);
    const keys = rows.slice(0, limit).map(rowToKey);
    const last = keys[keys.length - 1];
    return { keys, next: rows.length > limit && last ? { createdAt: last.createdAt, id: last.id } : null };
  }

  async insertKey(key: KeyRecord, audit: AuditEvent, cap?: CreationCap): Promise<boolean> {
    // An immediate transaction holds the write lock from the count to the insert: exact across workers.
    return this.db
      .transaction(() => {
        if (cap && this.countCreated(cap) >= cap.max) return false;
        this.s.ensureOwner.run(key.owner.type, key.owner.id, key.createdAt);
        this.s.keyWrites.insert(key);
        this.appendChained(audit);
        return true;
      })
      .immediate();
  }

  private countCreated(cap: CreationCap): number {
    const params: unknown[] = [];
    const sql = buildCreatedSinceCount(cap, bindQuestionMark(params));
    return this.db.prepare<unknown[], { n: number }>(sql).get(...params)?.n ?? 0;
  }

  async updateKey(
    id: string,
    changes: KeyLifecycleChanges,
    audit: AuditEvent | null,
    also: readonly AlsoChanged[] = [],
  ): Promise<KeyRecord | null> {
    return this.db
      .transaction(() => {
        if (!this.s.getKey.get(id)) return null;
        for (const update of [{ id, changes }, ...also]) {
          const columns = changesToColumns(this.s.keyWrites.applyLastUse(update.id, update.changes), true);
          if (columns.length === 0) continue;
          const set = columns.map((c) => `${c.column} = ?`).join(", ");
          this.db
            .prepare(`UPDATE keys SET ${set}, updated_at = ? WHERE id = ?`)
            .run(...columns.map((c) => c.value), audit?.at ?? Date.now(), update.id);
        }
        const row = this.s.getKey.get(id);
        if (!row) return null;
        if (audit) this.appendChained(audit);
        return rowToKey(row);
      })
      .immediate();
  }

  async rotateKey(oldId: string, oldChanges: KeyLifecycleChanges, successor: KeyRecord, audit: AuditEvent): Promise<RotateResult> {
    return this.db
      .transaction((): RotateResult => {
        if (!this.s.getKey.get(oldId)) return "not_found";
        const marked = this.s.markReplaced.run(successor.id, oldChanges.graceEndsAt ?? null, audit.at, oldId);
        if (marked.changes === 0) return "conflict";
        this.s.keyWrites.insert(successor);
        this.appendChained(audit);
        return "rotated";
      })
      .immediate();
  }

  async getOwner(owner: OwnerRef): Promise<OwnerRecord | null> {
    const row = this.s.getOwner.get(owner.type, owner.id);
    return row ? ownerFromRow(row) : null;
  }

  async ensureOwner(owner: OwnerRef, now: number): Promise<void> {
    this.s.ensureOwner.run(owner.type, owner.id, now);
  }

  async setOwnerDisabled(owner: OwnerRef, disabled: boolean, audit: AuditEvent, now: number): Promise<OwnerRecord> {
    return this.db
      .transaction(() => {
        this.s.ensureOwner.run(owner.type, owner.id, now);
        this.s.setOwnerDisabled.run(disabled ? 1 : 0, owner.type, owner.id);
        this.appendChained(audit);
        return ownerFromRow(this.s.getOwner.get(owner.type, owner.id) as OwnerRow);
      })
      .immediate();
  }

  async createOwner(owner: OwnerRef, fields: OwnerFields, audit: AuditEvent, now: number): Promise<OwnerRecord | null> {
    return this.db
      .transaction(() => {
        const inserted = this.s.insertOwner.run(owner.type, owner.id, now, fields.name ?? null, sharedLimitsToJson(fields.limits ?? null));
        if (inserted.changes === 0) return null;
        this.appendChained(audit);
        return ownerFromRow(this.s.getOwner.get(owner.type, owner.id) as OwnerRow);
      })
      .immediate();
  }

  async updateOwner(owner: OwnerRef, fields: OwnerFields, audit: AuditEvent): Promise<OwnerRecord | null> {
    const { sql, values } = ownerUpdateSql(fields, () => "?");
    return this.db
      .transaction(() => {
        if (!this.s.getOwner.get(owner.type, owner.id)) return null;
        if (sql) this.db.prepare(`UPDATE owners SET ${sql} WHERE type = ? AND id = ?`).run(...values, owner.type, owner.id);
        this.appendChained(audit);
        return ownerFromRow(this.s.getOwner.get(owner.type, owner.id) as OwnerRow);
      })
      .immediate();
  }

  async listOwners(filter: OwnerListFilter, limit: number, after: KeyPageCursor | null): Promise<OwnerPage> {
    const { where, values } = ownerListWhere(filter, after, () => "?");
    const rows = this.db
      .prepare<unknown[], OwnerRow>(`SELECT * FROM owners WHERE ${where} ORDER BY created_at DESC, id DESC LIMIT ?`)
      .all(...values, limit + 1);
    return ownerPage(rows, limit);
  }

  /**
   * Links the event to the last one. Call it only inside the `db.transaction` of the change it
   * records (other modules sharing this database do, for their own changes).
   */
  appendChained(event: AuditEvent): void {
    this.s.insertAudit.run(...chainedAuditRowValues(event, this.s.lastAuditHash.get()?.hash ?? AUDIT_GENESIS_HASH));
  }

  async appendAuditEvent(event: AuditEvent): Promise<void> {
    this.db.transaction(() => this.appendChained(event)).immediate();
  }

  async readAuditChain(afterSeq: number, limit: number): Promise<AuditChainEntry[]> {
    return this.s.readAuditChain.all(afterSeq, limit).map(auditRowToChainEntry);
  }

  async listAuditEvents(filter: AuditFilter, limit: number, after: string | null): Promise<AuditPage> {
    const params: unknown[] = [];
    const where = buildAuditWhere(filter, after === null ? null : Number(after), bindQuestionMark(params));
    const rows = this.db
      .prepare<unknown[], AuditRow>(`SELECT * FROM audit_events ${where} ORDER BY seq DESC LIMIT ?`)
      .all(...params, limit + 1);
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return { events: page.map(rowToAudit), next: rows.length > limit && last ? String(last.seq) : null };
  }

  async getMeta(name: string): Promise<string | null> {
    return this.s.getMeta.get(name)?.value ?? null;
  }

  async setMetaOnce(name: string, value: string): Promise<boolean> {
    return this.s.setMetaOnce.run(name, value).changes === 1;
  }

  async countKeys(filter?: KeyListFilter): Promise<number> {
    if (!filter) return this.s.countKeys.get()?.n ?? 0;
    const params: unknown[] = [];
    const where = buildKeyListWhere(filter, null, bindQuestionMark(params), "sqlite");
    return this.db.prepare<unknown[], { n: number }>(`SELECT COUNT(*) AS n FROM keys ${where}`).get(...params)?.n ?? 0;
  }

  /** Bulk writes of an import (docs/migrating.md): prepared inserts, one immediate transaction per batch. */
  async openImport(options: { dryRun: boolean }): Promise<KeyImportSession> {
    return SqliteKeyImport.open(this.db, options.dryRun);
  }

  /**
   * 64 KiB, not a few bytes: after a checkpoint the WAL is rewritten from its start, in space it
   * already holds, so a tiny write can succeed on a full disk where real changes fail.
   */
  async probeWrite(): Promise<void> {
    this.db
      .prepare("INSERT INTO meta (name, value) VALUES ('write_probe', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
      .run(`${Date.now()}:${"0".repeat(65_536)}`);
  }

  /** A read-only file system, an immutable or unwritable file, seen without writing (file-modes.ts). */
  writeRefusal(): string | null {
    return this.onDisk ? writeRefusalOf(this.db.name) : null;
  }

  /** The `change_seq` counter that triggers bump with every key or owner change, from any connection. */
  async changeToken(): Promise<string> {
    return this.s.changeSeq.get() ?? "";
  }

  /**
   * The change feed (docs/architecture.md): the keys and owners changed after seq `after`. One
   * writer at a time commits in seq order, so the last seq read is the whole cursor. A cursor
   * older than the rows pruned since, or more rows than a poll lists, answers `reset`.
   */
  async pollKeyChanges(after: string | null): Promise<KeyChangeBatch> {
    if (Date.now() - this.lastPruneAt >= CHANGE_PRUNE_EVERY_MS) {
      this.lastPruneAt = Date.now();
      try {
        this.pruneKeyChanges(this.changeRetentionMs);
      } catch {
        // A read-only file or a busy writer: pruning waits for the next turn; reading goes on.
      }
    }
    return this.db.transaction((): KeyChangeBatch => {
      const pruned = Number(this.s.prunedKeyChanges.get() ?? 0);
      if (after === null) return toChangeBatch(String(Math.max(this.s.lastKeyChange.get() ?? 0, pruned)), [], false);
      const from = Number(after);
      const rows = this.s.keyChangesAfter.all(from, CHANGE_FEED_MAX_ROWS + 1);
      if (pruned > from || rows.length > CHANGE_FEED_MAX_ROWS) {
        return toChangeBatch(String(Math.max(this.s.lastKeyChange.get() ?? 0, pruned, from)), [], true);
      }
      return toChangeBatch(String(rows[rows.length - 1]?.seq ?? from), rows, false);
    })();
  }

  /** Deletes change rows older than `olderThanMs`, noting the last seq deleted (a reader behind it must reset). Answers how many. */
  pruneKeyChanges(olderThanMs: number): number {
    return this.db.transaction(() => {
      const last = this.s.lastOldKeyChange.get(Date.now() - olderThanMs);
      if (last === null || last === undefined) return 0;
      const deleted = this.s.deleteKeyChanges.run(last).changes;
      this.s.notePrunedKeyChanges.run(String(last));
      return deleted;
    })();
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
