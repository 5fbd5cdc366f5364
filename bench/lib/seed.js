// Seeding for the bench: many keys written straight into a store's tables in one transaction
// (the engine's createKey writes an audit record and syncs per key, which is right for real use
// and far too slow for a million keys). Records come from the engine's own `newKeyRecord` and rows
// from the store's own row mapping, so they are exactly what createKey would have written.
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { hashApiKey } from "../../dist/core/hashing.js";
import { formatKeyRef, generateApiKey } from "../../dist/core/key-format.js";
import { newKeyRecord } from "../../dist/core/new-key-record.js";
import { generateId } from "../../dist/core/random.js";
import { KEY_COLUMNS, keyToRowValues } from "../../dist/stores/rows.js";
import { prepareKeyWrites } from "../../dist/stores/sqlite/sqlite-key-rows.js";

export const BENCH_OWNER = { type: "application", id: "bench" };

/**
 * Builds `count` key records (plaintext + record). A pool of random bytes is drawn at once and
 * handed out, so a million keys take seconds, not minutes.
 */
export function buildKeys(count, options = {}) {
  const now = Date.now();
  let pool = randomBytes(1 << 20);
  let offset = 0;
  const random = (size) => {
    if (offset + size > pool.length) {
      pool = randomBytes(1 << 20);
      offset = 0;
    }
    const out = pool.subarray(offset, offset + size);
    offset += size;
    return out;
  };
  const keys = [];
  for (let i = 0; i < count; i++) {
    const plaintext = generateApiKey({ environment: "production", random });
    const id = generateId("key", random);
    keys.push({
      plaintext,
      record: newKeyRecord({
        id,
        secret: { digest: hashApiKey(plaintext), hashVersion: 0, ref: formatKeyRef(plaintext) },
        name: `bench ${i}`,
        owner: options.owner ?? BENCH_OWNER,
        environment: "production",
        scopes: options.scopes ?? ["read", "write"],
        now,
        rateLimit: options.rateLimit ?? null,
        concurrency: options.concurrency ?? null,
        quota: options.quota ?? null,
      }),
    });
  }
  return keys;
}

/** Well-formed keys (right prefix and checksum) that no store holds: the NOT_FOUND path. */
export function buildUnknownKeys(count) {
  return buildKeys(count).map((k) => k.plaintext);
}

/** Inserts records into a migrated SqliteKeyStore's database, in one transaction. */
export function insertSqlite(db, records) {
  const keys = prepareKeyWrites(db);
  const owner = db.prepare("INSERT INTO owners (type, id, disabled, created_at) VALUES (?, ?, 0, ?) ON CONFLICT DO NOTHING");
  db.pragma("synchronous = OFF");
  db.transaction(() => {
    for (const record of records) {
      owner.run(record.owner.type, record.owner.id, record.createdAt);
      keys.insert(record);
    }
  })();
  db.pragma("synchronous = FULL");
}

/** Inserts records into a migrated PostgresKeyStore's tables, in batches through unnest (one round trip per batch). */
export async function insertPostgres(pool, records) {
  const owners = new Map(records.map((r) => [`${r.owner.type}:${r.owner.id}`, r]));
  for (const r of owners.values()) {
    await pool.query("INSERT INTO owners (type, id, disabled, created_at) VALUES ($1, $2, false, $3) ON CONFLICT DO NOTHING", [
      r.owner.type,
      r.owner.id,
      r.createdAt,
    ]);
  }
  const types = await pool.query(
    `SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'keys' AND table_schema = current_schema()`,
  );
  const typeOf = new Map(types.rows.map((row) => [row.column_name, row.data_type]));
  const casts = KEY_COLUMNS.map((c, i) => `$${i + 1}::${typeOf.get(c) ?? "text"}[]`);
  const sql = `INSERT INTO keys (${KEY_COLUMNS.join(", ")}) SELECT * FROM unnest(${casts.join(", ")})`;
  const batch = 20_000;
  for (let start = 0; start < records.length; start += batch) {
    const columns = KEY_COLUMNS.map(() => []);
    for (const record of records.slice(start, start + batch)) {
      keyToRowValues(record, false).forEach((value, i) => {
        columns[i].push(value);
      });
    }
    await pool.query(sql, columns);
  }
}

/** Plaintexts one per line, for wrk's Lua script. Bench keys only, in a scratch folder. */
export function writeKeyFile(file, plaintexts) {
  writeFileSync(file, `${plaintexts.join("\n")}\n`, { mode: 0o600 });
}
