import type pg from "pg";
import { KeywardError } from "../core/errors.js";
import type { KeyStore } from "../ports/key-store.js";
import { accountStoreFor } from "../service/account-store-factory.js";
import { openWebhookStore, storesBeside } from "../service/store-factory.js";
import { ensureNameSearchIndex } from "../stores/postgres/migrations.js";
import { PostgresKeyStore } from "../stores/postgres/postgres-key-store.js";
import { SqliteKeyStore } from "../stores/sqlite/sqlite-key-store.js";
import type { SqliteUsageStore } from "../stores/sqlite/sqlite-usage-store.js";

/**
 * A store seen as tables of rows, for export and copy-store (docs/migrating.md): every module's
 * migrations applied, tables and columns found in the database itself (so tables other modules
 * add are carried without a list to keep up to date), rows read in primary-key order a page at a
 * time, and written in batches.
 */

/** How a column's values are held: what a value read from the other database is turned into. */
export type ColumnKind = "integer" | "boolean" | "real" | "text" | "other";

export interface TableColumn {
  name: string;
  kind: ColumnKind;
  /** PostgreSQL: a serial column (its sequence is moved past copied values). */
  serial: boolean;
  /** The declared type (PostgreSQL: its udt_name, e.g. int8, text, bool). */
  sqlType: string;
}

export interface TableInfo {
  name: string;
  columns: TableColumn[];
  primaryKey: string[];
}

export type Row = Record<string, unknown>;

/** A statement run inside a write transaction. */
export type Run = (sql: string, params: readonly unknown[]) => Promise<Row[]>;

export const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

export interface RawStore {
  readonly kind: "sqlite" | "postgres";
  /** Where it is, without a password: recorded in a copy target to recognise a resumed copy. */
  readonly label: string;
  readonly keys: KeyStore;
  tables(): Promise<Map<string, TableInfo>>;
  /** Rows after `after` (primary-key values) in primary-key order, at most `limit`. */
  page(table: TableInfo, after: readonly unknown[] | null, limit: number, where?: string): Promise<Row[]>;
  count(table: string, where?: string): Promise<number>;
  query(sql: string, params?: readonly unknown[]): Promise<Row[]>;
  /** Runs `work` in one transaction: committed whole or rolled back. */
  transaction<T>(work: (run: Run) => Promise<T>): Promise<T>;
  /** `?` placeholders, numbered for PostgreSQL. */
  sql(text: string): string;
  /** PostgreSQL: drops the trigram index of key names, answering whether there was one (SQLite has none). */
  dropNameSearchIndex(): Promise<boolean>;
  /** PostgreSQL: builds it again (ensureNameSearchIndex). */
  ensureNameSearchIndex(): Promise<void>;
  close(): Promise<void>;
}

/** sqlite:<path> or postgres://…; `schema` selects a PostgreSQL schema (KEYWARD_DATABASE_SCHEMA). */
export async function openRawStore(url: string, schema: string | null = null): Promise<RawStore> {
  let keys: KeyStore;
  let label: string;
  if (url.startsWith("sqlite:")) {
    const filename = url.slice("sqlite:".length).replace(/^\/\//, "");
    if (!filename) throw new KeywardError("INVALID_CONFIGURATION", "sqlite: needs a file path");
    keys = new SqliteKeyStore({ filename });
    label = `sqlite:${filename}`;
  } else if (/^postgres(ql)?:\/\//.test(url)) {
    keys = new PostgresKeyStore({ connectionString: url, queryTimeoutMs: 120_000, ...(schema ? { schema } : {}) });
    const parsed = new URL(url);
    parsed.password = "";
    label = `${parsed.toString()}${schema ? `#${schema}` : ""}`;
  } else throw new KeywardError("INVALID_CONFIGURATION", `${url}: a store URL starts with sqlite: or postgres://`);
  try {
    await keys.migrate();
    const stores = await storesBeside(keys);
    await accountStoreFor(keys)?.migrate();
    await openWebhookStore(keys)?.migrate();
    if (keys instanceof SqliteKeyStore) {
      // Usage journaled by a service that has stopped is added to the counts first (docs/usage.md).
      await (stores.usage as SqliteUsageStore).journal.recoverOrphans();
    }
    await stores.usage.close?.();
    await stores.quotas.close?.();
  } catch (error) {
    await keys.close();
    throw error;
  }
  return keys instanceof SqliteKeyStore ? new SqliteRaw(keys, label) : new PostgresRaw(keys as PostgresKeyStore, label);
}

function sqliteKind(type: string): ColumnKind {
  const t = type.toUpperCase();
  if (t.includes("INT")) return "integer";
  if (t.includes("TEXT") || t.includes("CHAR")) return "text";
  if (t.includes("REAL") || t.includes("FLOA") || t.includes("DOUB")) return "real";
  return "other";
}

function postgresKind(type: string): ColumnKind {
  if (type === "bigint" || type === "integer" || type === "smallint") return "integer";
  if (type === "boolean") return "boolean";
  if (type === "text" || type.startsWith("character")) return "text";
  if (type === "real" || type === "double precision" || type === "numeric") return "real";
  return "other";
}

/** `(a, b) > (?, ?)` for keyset paging. */
function afterClause(primaryKey: readonly string[]): string {
  return `(${primaryKey.map(quote).join(", ")}) > (${primaryKey.map(() => "?").join(", ")})`;
}

class SqliteRaw implements RawStore {
  readonly kind = "sqlite" as const;
  constructor(
    readonly keys: SqliteKeyStore,
    readonly label: string,
  ) {
    // As for PostgreSQL: a batch commits with its progress, so one lost to a power cut is redone;
    // in WAL mode NORMAL never leaves the file inconsistent, and closing checkpoints it to disk.
    keys.db.pragma("synchronous = NORMAL");
    // Read through the page cache, not a memory map: a whole-file scan would otherwise show up
    // as the process's own memory (up to the store's 1 GiB map), though none of it is heap.
    keys.db.pragma("mmap_size = 0");
  }

  private get db() {
    return this.keys.db;
  }

  async tables(): Promise<Map<string, TableInfo>> {
    const names = this.db
      .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
      .all();
    const tables = new Map<string, TableInfo>();
    for (const { name } of names) {
      const info = this.db.prepare<[], { name: string; type: string; pk: number }>(`PRAGMA table_info(${quote(name)})`).all();
      const primaryKey = info
        .filter((c) => c.pk > 0)
        .sort((a, b) => a.pk - b.pk)
        .map((c) => c.name);
      tables.set(name, {
        name,
        columns: info.map((c) => ({ name: c.name, kind: sqliteKind(c.type), serial: false, sqlType: c.type })),
        primaryKey: primaryKey.length > 0 ? primaryKey : ["rowid"],
      });
    }
    return tables;
  }

  async page(table: TableInfo, after: readonly unknown[] | null, limit: number, where?: string): Promise<Row[]> {
    const conditions = [...(where ? [`(${where})`] : []), ...(after ? [afterClause(table.primaryKey)] : [])];
    const sql = `SELECT ${table.columns.map((c) => quote(c.name)).join(", ")} FROM ${quote(table.name)}${
      conditions.length > 0 ? ` WHERE ${conditions.join(" AND ")}` : ""
    } ORDER BY ${table.primaryKey.map(quote).join(", ")} LIMIT ?`;
    return this.db.prepare<unknown[], Row>(sql).all(...(after ?? []), limit);
  }

  async count(table: string, where?: string): Promise<number> {
    return (this.db.prepare<[], { n: number }>(`SELECT COUNT(*) AS n FROM ${quote(table)}${where ? ` WHERE ${where}` : ""}`).get()?.n ??
      0) as number;
  }

  async query(sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    const statement = this.db.prepare<unknown[], Row>(sql);
    if (statement.reader) return statement.all(...params);
    statement.run(...params);
    return [];
  }

  async transaction<T>(work: (run: Run) => Promise<T>): Promise<T> {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      const result = await work((sql, params) => this.query(sql, params));
      this.db.exec("COMMIT");
      return result;
    } catch (error) {
      if (this.db.inTransaction) this.db.exec("ROLLBACK");
      throw error;
    }
  }

  sql(text: string): string {
    return text;
  }

  async dropNameSearchIndex(): Promise<boolean> {
    return false;
  }

  async ensureNameSearchIndex(): Promise<void> {}

  async close(): Promise<void> {
    await this.keys.close();
  }
}

class PostgresRaw implements RawStore {
  readonly kind = "postgres" as const;
  constructor(
    readonly keys: PostgresKeyStore,
    readonly label: string,
  ) {}

  sql(text: string): string {
    let n = 0;
    return text.replace(/\?/g, () => `$${++n}`);
  }

  async dropNameSearchIndex(): Promise<boolean> {
    const found = await this.query("SELECT to_regclass('keys_name_trgm') IS NOT NULL AS found");
    if (!found[0]?.found) return false;
    await this.query("DROP INDEX keys_name_trgm");
    return true;
  }

  async ensureNameSearchIndex(): Promise<void> {
    const client = await this.keys.pool.connect();
    try {
      await ensureNameSearchIndex(client);
    } finally {
      client.release();
    }
  }

  async tables(): Promise<Map<string, TableInfo>> {
    const pool = this.keys.pool;
    const names = await pool.query<{ name: string }>(
      "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name",
    );
    const columns = await pool.query<{
      table_name: string;
      column_name: string;
      data_type: string;
      udt_name: string;
      column_default: string | null;
    }>(
      "SELECT table_name, column_name, data_type, udt_name, column_default FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position",
    );
    const keys = await pool.query<{ table_name: string; column_name: string }>(
      `SELECT c.relname AS table_name, a.attname AS column_name FROM pg_index i
       JOIN pg_class c ON c.oid = i.indrelid
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
       WHERE i.indisprimary AND c.relnamespace = current_schema()::regnamespace
       ORDER BY c.relname, array_position(i.indkey::int2[], a.attnum)`,
    );
    const tables = new Map<string, TableInfo>();
    for (const { name } of names.rows) tables.set(name, { name, columns: [], primaryKey: [] });
    for (const c of columns.rows)
      tables.get(c.table_name)?.columns.push({
        name: c.column_name,
        kind: postgresKind(c.data_type),
        serial: c.column_default?.startsWith("nextval(") ?? false,
        sqlType: c.udt_name,
      });
    for (const k of keys.rows) tables.get(k.table_name)?.primaryKey.push(k.column_name);
    return tables;
  }

  async page(table: TableInfo, after: readonly unknown[] | null, limit: number, where?: string): Promise<Row[]> {
    if (table.primaryKey.length === 0) throw new KeywardError("INTERNAL_ERROR", `table ${table.name} has no primary key`);
    const conditions = [...(where ? [`(${where})`] : []), ...(after ? [afterClause(table.primaryKey)] : [])];
    const sql = `SELECT ${table.columns.map((c) => quote(c.name)).join(", ")} FROM ${quote(table.name)}${
      conditions.length > 0 ? ` WHERE ${conditions.join(" AND ")}` : ""
    } ORDER BY ${table.primaryKey.map(quote).join(", ")} LIMIT ?`;
    return (await this.keys.pool.query<Row>(this.sql(sql), [...(after ?? []), limit])).rows;
  }

  async count(table: string, where?: string): Promise<number> {
    const rows = await this.query(`SELECT COUNT(*) AS n FROM ${quote(table)}${where ? ` WHERE ${where}` : ""}`);
    return Number(rows[0]?.n ?? 0);
  }

  async query(sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    return (await this.keys.pool.query<Row>(this.sql(sql), params as unknown[])).rows;
  }

  async transaction<T>(work: (run: Run) => Promise<T>): Promise<T> {
    return this.keys.transaction(async (client: pg.PoolClient) => {
      // A batch and its progress row commit together: a commit lost to a crash loses both, and
      // the copy redoes that batch. So no batch waits for the disk (the copy's last commit, with
      // the default setting, flushes everything before it).
      await client.query("SET LOCAL synchronous_commit TO off");
      return work(async (sql, params) => (await client.query<Row>(this.sql(sql), params as unknown[])).rows);
    });
  }

  async close(): Promise<void> {
    await this.keys.close();
  }
}

/** A value read from either database, as the target column holds it. */
export function toColumn(value: unknown, kind: ColumnKind, target: "sqlite" | "postgres"): unknown {
  if (value === null || value === undefined) return null;
  switch (kind) {
    case "boolean":
      if (typeof value === "boolean") return value;
      if (typeof value === "number" || typeof value === "bigint") return Number(value) !== 0;
      return value === "1" || value === "true" || value === "t";
    case "integer":
      if (typeof value === "boolean") return value ? 1 : 0;
      if (typeof value === "string" && target === "sqlite") {
        const n = Number(value);
        return Number.isSafeInteger(n) ? n : BigInt(value);
      }
      return value;
    default:
      if (typeof value === "boolean") return target === "sqlite" ? (value ? 1 : 0) : value;
      return value;
  }
}

/** A value as an export line holds it: integers as numbers (PostgreSQL's BIGINT arrives as text), booleans as 0/1 as in SQLite. */
export function toExported(value: unknown, kind: ColumnKind): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value === "boolean") return value ? 1 : 0;
  if (kind === "integer" && typeof value === "string") {
    const n = Number(value);
    return Number.isSafeInteger(n) ? n : value;
  }
  if (typeof value === "bigint") return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  return value;
}
