import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type Database from "better-sqlite3";
import type { KeyRecord } from "../../core/model.js";
import type { ImportMatch, KeyImportSession } from "../../ports/key-store.js";
import { KEY_COLUMNS, keyToRowValues } from "../rows.js";

// Last uses live in key_last_use (sqlite-key-rows.ts); an imported key has none.
const LAST_USE = new Set<string>(["last_used_at", "last_used_ip"]);
const COLUMNS = KEY_COLUMNS.map((column, index) => ({ column, index })).filter(({ column }) => !LAST_USE.has(column));
const INDEXES = COLUMNS.map((c) => c.index);
const NAMES = COLUMNS.map((c) => c.column).join(", ");

const MATCH_KEYS = `SELECT id, external_id, digest FROM keys WHERE external_id IN (SELECT value FROM json_each(@externalIds))
  UNION SELECT id, external_id, digest FROM keys WHERE digest IN (SELECT value FROM json_each(@digests))`;

/** The SQL of one import session, on the connection that runs it (this thread's, or a worker's). */
interface ImportSql {
  dryRun: boolean;
  /** Creates the TEMP table: the batch being staged, or a dry run's would-be keys. */
  create: string;
  match: string;
  /** Stages one row: a whole key, or a dry run's id, external id and digest. */
  stage: string;
  /** The staged batch into `keys`: owners, keys, the ids left out, and emptying the stage (none in a dry run). */
  owners: string;
  move: string;
  left: string;
  clear: string;
  drop: string;
}

function importSql(dryRun: boolean): ImportSql {
  const table = `temp.kw_import_${randomBytes(6).toString("hex")}`;
  const drop = `DROP TABLE IF EXISTS ${table}`;
  if (dryRun)
    return {
      dryRun,
      create: `CREATE TABLE ${table} (id TEXT PRIMARY KEY, external_id TEXT UNIQUE, digest TEXT NOT NULL UNIQUE)`,
      match: `${MATCH_KEYS} UNION SELECT id, external_id, digest FROM ${table} WHERE external_id IN (SELECT value FROM json_each(@externalIds))
        UNION SELECT id, external_id, digest FROM ${table} WHERE digest IN (SELECT value FROM json_each(@digests))`,
      stage: `INSERT INTO ${table} (id, external_id, digest) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
      owners: "",
      move: "",
      left: "",
      clear: "",
      drop,
    };
  return {
    dryRun,
    create: `CREATE TABLE ${table} AS SELECT ${NAMES} FROM main.keys WHERE 0`,
    match: MATCH_KEYS,
    stage: `INSERT INTO ${table} (${NAMES}) VALUES (${COLUMNS.map(() => "?").join(", ")})`,
    owners: `INSERT INTO owners (type, id, disabled, created_at) SELECT owner_type, owner_id, 0, MAX(updated_at) FROM ${table} GROUP BY owner_type, owner_id ON CONFLICT DO NOTHING`,
    move: `INSERT INTO keys (${NAMES}) SELECT ${NAMES} FROM ${table} WHERE true ON CONFLICT DO NOTHING`,
    left: `SELECT s.id FROM ${table} s WHERE NOT EXISTS (SELECT 1 FROM keys k WHERE k.id = s.id)`,
    clear: `DELETE FROM ${table}`,
    drop,
  };
}

/**
 * The writes of an import on one connection: match a batch, and stage and move it (or, in a dry
 * run, remember it). The same function runs in this thread (an in-memory database) and, as its
 * source text, in the import's worker thread; it uses nothing from outside its arguments.
 */
function importWriter(db: Database.Database, sql: ImportSql) {
  db.exec(sql.create);
  const match = db.prepare(sql.match);
  const stage = db.prepare(sql.stage);
  const owners = sql.dryRun ? null : db.prepare(sql.owners);
  const move = sql.dryRun ? null : db.prepare(sql.move);
  const left = sql.dryRun ? null : db.prepare(sql.left).pluck();
  const clear = sql.dryRun ? null : db.prepare(sql.clear);
  return {
    match(externalIds: string, digests: string): { id: string; external_id: string | null; digest: string }[] {
      return match.all({ externalIds, digests }) as { id: string; external_id: string | null; digest: string }[];
    },
    /** Rows as `stage` takes them; answers the ids left out. */
    insert(rows: unknown[][]): string[] {
      if (owners === null || move === null || left === null || clear === null) {
        // A dry run writes its TEMP table only: a deferred transaction, which takes no lock on the database.
        const skipped: string[] = [];
        db.transaction(() => {
          for (const row of rows) if (stage.run(row).changes === 0) skipped.push(row[0] as string);
        })();
        return skipped;
      }
      return db
        .transaction(() => {
          for (const row of rows) stage.run(row);
          owners.run();
          const skipped = move.run().changes === rows.length ? [] : (left.all() as string[]);
          clear.run();
          return skipped;
        })
        .immediate();
    },
    drop(): void {
      db.exec(sql.drop);
    },
  };
}

/**
 * The import's worker thread: its own connection, the writer above, and a request/answer loop.
 * Evaluated from a string, as the WAL checkpointer's worker is (wal-checkpointer.ts), so it runs
 * the same from the package and from the TypeScript sources; better-sqlite3 is required by the
 * absolute path the main thread resolved.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const importWriter = ${importWriter.toString()};
let db;
let writer;
try {
  db = new Database(workerData.filename, { fileMustExist: true });
  for (const pragma of workerData.pragmas) db.pragma(pragma);
  writer = importWriter(db, workerData.sql);
  parentPort.postMessage({ ready: true });
} catch (error) {
  parentPort.postMessage({ ready: false, error: { message: error.message, code: error.code } });
}
parentPort.on("message", (message) => {
  if (message.kind === "close") {
    if (db && db.open) db.close();
    parentPort.close();
    return;
  }
  try {
    const result = message.kind === "match" ? writer.match(message.externalIds, message.digests) : writer.insert(message.rows);
    parentPort.postMessage({ id: message.id, result });
  } catch (error) {
    parentPort.postMessage({ id: message.id, error: { message: error.message, code: error.code } });
  }
});
`;

/**
 * Pragmas of the import's connection. Statement journals and the staging table stay in memory
 * (`temp_store = MEMORY`): the change-token trigger on `keys` makes every insert open a statement
 * journal, and writing those to a temporary file was most of an import's time (docs/benchmarks.md,
 * import). A dry run keeps the default, so its scratch table, which grows with the import, is a
 * temporary file. `synchronous = NORMAL`: a batch is durable once the WAL is synced, which the
 * import's audit event, written after the last batch with `synchronous = FULL`, does for every
 * batch before it; a power cut in the middle loses batches of an import that has not reported,
 * which its next run writes again. Checkpoints every 20,000 pages rather than 1,000: a page
 * rewritten by several batches is copied once.
 */
function pragmasFor(dryRun: boolean): string[] {
  return [
    "journal_mode = WAL",
    "synchronous = NORMAL",
    "foreign_keys = ON",
    "busy_timeout = 5000",
    "cache_size = -131072",
    `mmap_size = ${1 << 30}`,
    "wal_autocheckpoint = 20000",
    ...(dryRun ? [] : ["temp_store = MEMORY"]),
  ];
}

type MatchRow = { id: string; external_id: string | null; digest: string };
const toMatch = (row: MatchRow): ImportMatch => ({ id: row.id, externalId: row.external_id, digest: row.digest });

/** A batch's rows as the staging statement takes them. */
function rowsOf(keys: readonly KeyRecord[], dryRun: boolean): unknown[][] {
  return keys.map((key) => {
    if (dryRun) return [key.id, key.externalId, key.digest];
    const values = keyToRowValues(key, true);
    return INDEXES.map((i) => values[i]);
  });
}

/** An error from the worker, with the code store-errors.ts reads (SQLITE_BUSY, SQLITE_FULL…). */
function workerError(error: { message: string; code?: string }): Error {
  return Object.assign(new Error(error.message), error.code ? { code: error.code } : {});
}

/**
 * An import into SQLite (KeyImportSession). On a file, in a worker thread with a connection of
 * its own: the import parses and checks the next batch on the main thread while the worker writes
 * this one, and the store's own connection serves requests meanwhile. An in-memory database has
 * only the store's connection: the same writes, in this thread.
 *
 * A batch is staged in a TEMP table, then moved into `keys` by one `INSERT … SELECT` in one
 * immediate transaction, owners first: one statement a batch instead of one a row (each of which
 * opened a statement journal for the change-token trigger). `ON CONFLICT DO NOTHING`: a key
 * another writer stored meanwhile is left out, not an error. Matching reads a batch's external ids
 * and digests in one statement (JSON lists bound once, probed through the unique indexes). A dry
 * run remembers what it would have written in a TEMP table (a temporary file), dropped at the end.
 */
export class SqliteKeyImport implements KeyImportSession {
  private readonly pending = new Map<number, { resolve: (value: never) => void; reject: (error: Error) => void }>();
  private nextRequest = 0;
  private failed: Error | null = null;
  private closed: Promise<void> | null = null;

  private constructor(
    private readonly dryRun: boolean,
    private readonly local: ReturnType<typeof importWriter> | null,
    private readonly worker: Worker | null,
  ) {
    worker?.on("message", (message: { id?: number; result?: unknown; error?: { message: string; code?: string } }) => {
      if (message.id === undefined) return;
      const request = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (message.error) request?.reject(workerError(message.error));
      else request?.resolve(message.result as never);
    });
    const stop = (error: Error) => {
      this.failed ??= error;
      for (const request of this.pending.values()) request.reject(error);
      this.pending.clear();
    };
    worker?.on("error", stop);
    worker?.once("exit", () => stop(new Error("the import's worker thread ended")));
  }

  static async open(store: Database.Database, dryRun: boolean): Promise<SqliteKeyImport> {
    const sql = importSql(dryRun);
    if (store.memory) return new SqliteKeyImport(dryRun, importWriter(store, sql), null);
    const driver = createRequire(import.meta.url).resolve("better-sqlite3");
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { filename: store.name, driver, pragmas: pragmasFor(dryRun), sql },
    });
    const ready = await new Promise<{ ready: boolean; error?: { message: string; code?: string } }>((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
    });
    if (!ready.ready) {
      await worker.terminate();
      throw workerError(ready.error ?? { message: "the import's worker thread did not start" });
    }
    return new SqliteKeyImport(dryRun, null, worker);
  }

  private request<T>(message: Record<string, unknown>): Promise<T> {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.nextRequest++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: never) => void, reject });
      this.worker?.postMessage({ ...message, id });
    });
  }

  async findMatches(externalIds: readonly string[], digests: readonly string[]): Promise<ImportMatch[]> {
    if (externalIds.length === 0 && digests.length === 0) return [];
    const [ids, sums] = [JSON.stringify(externalIds), JSON.stringify(digests)];
    const rows = this.local
      ? this.local.match(ids, sums)
      : await this.request<MatchRow[]>({ kind: "match", externalIds: ids, digests: sums });
    return rows.map(toMatch);
  }

  async insert(keys: readonly KeyRecord[]): Promise<ReadonlySet<string>> {
    if (keys.length === 0) return new Set();
    const rows = rowsOf(keys, this.dryRun);
    return new Set(this.local ? this.local.insert(rows) : await this.request<string[]>({ kind: "insert", rows }));
  }

  close(): Promise<void> {
    this.closed ??= (async () => {
      if (this.local) {
        this.local.drop();
        return;
      }
      const worker = this.worker as Worker;
      if (this.failed) return;
      const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
      worker.postMessage({ kind: "close" });
      // A worker stuck in a write is ended after a while rather than waited for forever.
      const timer = setTimeout(() => void worker.terminate(), 10_000);
      await exited;
      clearTimeout(timer);
    })();
    return this.closed;
  }
}
