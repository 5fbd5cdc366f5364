// The data every scenario runs on, made once per bench run in a scratch folder (.tmp/bench):
// SQLite files and PostgreSQL schemas seeded with N keys, and the key files wrk reads.
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { PostgresKeyStore } from "../../dist/stores/postgres/postgres-key-store.js";
import { SqliteKeyStore } from "../../dist/stores/sqlite/sqlite-key-store.js";
import { buildKeys, buildUnknownKeys, insertPostgres, insertSqlite, writeKeyFile } from "./seed.js";

export class Fixtures {
  constructor(dir, { databaseUrl, log }) {
    this.dir = dir;
    this.databaseUrl = databaseUrl;
    this.log = log;
    this.schemas = [];
    this.cache = new Map();
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
  }

  path(name) {
    return join(this.dir, name);
  }

  /**
   * A fresh copy of a seeded SQLite file beside it (`<file>.<tag>.db`, any WAL of an earlier copy
   * removed): for a measurement that writes (usage, journal), so each starts from the same state.
   */
  static freshCopy(file, tag) {
    const copy = `${file}.${tag}.db`;
    for (const suffix of ["", "-wal", "-shm"]) rmSync(`${copy}${suffix}`, { force: true });
    copyFileSync(file, copy);
    return copy;
  }

  async memo(name, make) {
    if (!this.cache.has(name)) this.cache.set(name, await make());
    return this.cache.get(name);
  }

  /**
   * A SQLite file with `count` keys (scopes read, write), a file of their plaintexts, and, with
   * `admin`, one more key holding `keys:verify` (for POST /v1/keys/verify) in its own file.
   */
  sqlite(count, options = {}) {
    const name = `sqlite-${count}${options.tag ? `-${options.tag}` : ""}${options.admin ? "-admin" : ""}`;
    return this.memo(name, async () => {
      const started = performance.now();
      const keys = buildKeys(count, options.keyOptions);
      const db = this.path(`${name}.db`);
      const store = new SqliteKeyStore({ filename: db });
      await store.migrate();
      const records = keys.map((k) => k.record);
      let adminFile;
      if (options.admin) {
        const [admin] = buildKeys(1, { scopes: ["keys:verify"], owner: { type: "application", id: "bench-admin" } });
        records.push(admin.record);
        adminFile = this.path(`${name}-admin.txt`);
        writeKeyFile(adminFile, [admin.plaintext]);
      }
      insertSqlite(store.db, records);
      store.db.pragma("wal_checkpoint(TRUNCATE)");
      await store.close();
      const keysFile = this.path(`${name}-keys.txt`);
      writeKeyFile(
        keysFile,
        keys.map((k) => k.plaintext),
      );
      const hotFile = this.path(`${name}-hot.txt`);
      writeKeyFile(hotFile, [keys[0].plaintext]);
      this.log(`fixtures: ${name} seeded in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      return { db, keysFile, hotFile, adminFile, count };
    });
  }

  /** A file of well-formed keys no store holds (the NOT_FOUND path). */
  unknownKeys(count) {
    return this.memo(`unknown-${count}`, async () => {
      const file = this.path(`unknown-${count}.txt`);
      writeKeyFile(file, buildUnknownKeys(count));
      return file;
    });
  }

  /** A PostgreSQL schema with `count` keys; dropped by cleanup(). */
  postgres(count) {
    return this.memo(`postgres-${count}`, async () => {
      if (!this.databaseUrl) throw new Error("no DATABASE_URL");
      const started = performance.now();
      const schema = `kw_bench_${randomBytes(5).toString("hex")}`;
      this.schemas.push(schema);
      const store = new PostgresKeyStore({ connectionString: this.databaseUrl, schema });
      await store.migrate();
      const keys = buildKeys(count);
      await insertPostgres(
        store.pool,
        keys.map((k) => k.record),
      );
      await store.pool.query("ANALYZE keys");
      await store.close();
      const keysFile = this.path(`postgres-${count}-keys.txt`);
      writeKeyFile(
        keysFile,
        keys.map((k) => k.plaintext),
      );
      this.log(`fixtures: postgres-${count} seeded in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      return { schema, keysFile, count, databaseUrl: this.databaseUrl };
    });
  }

  async cleanup() {
    if (this.schemas.length > 0 && this.databaseUrl) {
      const client = new pg.Client({ connectionString: this.databaseUrl });
      await client.connect();
      for (const schema of this.schemas) await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await client.end();
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
