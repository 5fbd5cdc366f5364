// The console's key search at scale (issue 21): `GET /v1/keys` queries on 100,000 keys, SQLite and
// PostgreSQL, through the engine (`Keyward.listKeys` / `countKeys`, what the route calls). Each
// query kind's p50 and p95 are reported as a ratio to a plain first page measured in the same run
// and store. See docs/benchmarks.md, "Key search".
//
//   npm run build && node bench/key-search.js                 # 100,000 keys, both stores
//   node bench/key-search.js --keys 10000 --seconds 1 --plans  # smaller; print each query's plan
//
// PostgreSQL runs when DATABASE_URL is set (a scratch schema, dropped at the end).
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { parseKeySearch } from "../dist/core/key-search.js";
import { Keyward } from "../dist/engine/keyward.js";
import { PostgresKeyStore } from "../dist/stores/postgres/postgres-key-store.js";
import { PostgresWebhookStore } from "../dist/stores/postgres/postgres-webhook-store.js";
import { bindNumbered, bindQuestionMark, buildKeyListWhere } from "../dist/stores/sql-filters.js";
import { SELECT_KEY_ROWS } from "../dist/stores/sqlite/sqlite-key-rows.js";
import { SqliteKeyStore } from "../dist/stores/sqlite/sqlite-key-store.js";
import { SqliteWebhookStore } from "../dist/stores/sqlite/sqlite-webhook-store.js";
import { insertPostgres, insertSqlite } from "./lib/seed.js";
import { seedRecords } from "./lib/shape.js";
import { percentile } from "./lib/stats.js";

function parseArgs(argv) {
  const flags = { keys: 100_000, seconds: 2, rounds: 4, plans: false, only: null, out: "bench/results/key-search-latest.json" };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--plans") flags.plans = true;
    else if (arg === "--keys" || arg === "--seconds" || arg === "--rounds") flags[arg.slice(2)] = Number(argv[++i]);
    else if (arg === "--out") flags.out = argv[++i];
    else if (arg === "--only") flags.only = argv[++i];
    else
      throw new Error(
        `unknown argument ${arg}: --keys N, --seconds S (per query kind), --rounds N, --plans, --only sqlite|postgres, --out file`,
      );
  }
  return flags;
}

const DAY = 86_400_000;

/** The query kinds: what the console asks, each a filter for listKeys (or countKeys with `count`). */
function queryKinds(records) {
  const sample = records[Math.floor(records.length / 3)];
  const user = records.find((r) => r.owner.type === "user" && r.owner.id === "user123") ?? records.find((r) => r.owner.type === "user");
  const rare = records[Math.floor(records.length * 0.48)].name;
  const s = (q) => ({ search: parseKeySearch(q) });
  return [
    { kind: "first page (baseline)", filter: {} },
    { kind: "q: a key id", filter: s(sample.id) },
    { kind: "q: a whole ref", filter: s(sample.ref) },
    { kind: "q: four characters (ref's last four or name)", filter: s(sample.ref.slice(-4)) },
    { kind: "q: name, common word (~10%)", filter: s("BILLING") },
    { kind: `q: name, one match ("${rare}")`, filter: s(rare) },
    { kind: "q: name, no match", filter: s("no such key") },
    { kind: "q: name, two letters, no match", filter: s("zq") },
    { kind: "owner: one user's keys", filter: { ownerType: user.owner.type, ownerId: user.owner.id } },
    { kind: "owner_id alone", filter: { ownerId: user.owner.id } },
    { kind: "owner + q", filter: { ownerType: user.owner.type, ownerId: user.owner.id, ...s(user.name.split(" ")[0]) } },
    { kind: "environment=production", filter: { environment: "production" } },
    { kind: "status=active", filter: { status: "active" } },
    { kind: "status=revoked", filter: { status: "revoked" } },
    { kind: "status=expired", filter: { status: "expired" } },
    { kind: "status=disabled (1%)", filter: { status: "disabled" } },
    { kind: "status=awaiting_pickup (0.05%)", filter: { status: "awaiting_pickup" } },
    { kind: "expiring_within 7 days", filter: { expiresWithinMs: 7 * DAY } },
    { kind: "expiring_within 7 days + status=active", filter: { expiresWithinMs: 7 * DAY, status: "active" } },
    { kind: "total: every key", filter: {}, count: true },
    { kind: "total: environment=production", filter: { environment: "production" }, count: true },
    { kind: "total: status=active", filter: { status: "active" }, count: true },
    { kind: "total: q common word", filter: s("billing"), count: true },
    { kind: "total: q no match", filter: s("no such key"), count: true },
    { kind: "total: one user's keys", filter: { ownerType: user.owner.type, ownerId: user.owner.id }, count: true },
  ];
}

/** The engine's filter for a kind at `now` (expiring_within is relative, as the route computes it). */
function engineFilter(filter, now) {
  const { expiresWithinMs, ...rest } = filter;
  return expiresWithinMs === undefined ? rest : { ...rest, expiresBy: now + expiresWithinMs };
}

async function run(keyward, kind) {
  const filter = engineFilter(kind.filter, keyward.clock.now());
  if (kind.count) return keyward.countKeys(filter);
  return (await keyward.listKeys(filter, { limit: 50 })).data.length;
}

/**
 * Every kind measured in turn, `rounds` times (drift in the machine's load spreads over all
 * kinds): each turn runs calls for its share of `seconds`, at least 5.
 */
async function measure(keyward, kinds, { seconds, rounds }) {
  const samples = kinds.map(() => []);
  const results = kinds.map(() => null);
  for (const [i, kind] of kinds.entries()) results[i] = await run(keyward, kind); // warm, and what it answers
  for (let round = 0; round < rounds; round++) {
    for (const [i, kind] of kinds.entries()) {
      const until = performance.now() + (seconds * 1000) / rounds;
      let calls = 0;
      while (calls < 5 || performance.now() < until) {
        const started = performance.now();
        await run(keyward, kind);
        samples[i].push(performance.now() - started);
        calls++;
      }
    }
  }
  const base = percentile(samples[0], 50);
  const baseP95 = percentile(samples[0], 95);
  return kinds.map((kind, i) => ({
    kind: kind.kind,
    answer: kind.count ? `${results[i]} counted` : `${results[i]} rows`,
    calls: samples[i].length,
    p50Ms: percentile(samples[i], 50),
    p95Ms: percentile(samples[i], 95),
    p50Ratio: percentile(samples[i], 50) / base,
    p95Ratio: percentile(samples[i], 95) / baseP95,
  }));
}

/** The plan each kind's query gets, for the docs: which index it uses. */
async function plans(store, kinds, now) {
  const out = [];
  for (const kind of kinds) {
    const filter = { ...engineFilter(kind.filter, now), now };
    const params = [];
    if (store instanceof SqliteKeyStore) {
      const where = buildKeyListWhere(filter, null, bindQuestionMark(params), "sqlite");
      const sql = kind.count
        ? `SELECT COUNT(*) FROM keys ${where}`
        : `${SELECT_KEY_ROWS} ${where} ORDER BY k.created_at DESC, k.id DESC LIMIT ${kind.count ? 1 : 51}`;
      const rows = store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params);
      out.push({ kind: kind.kind, plan: rows.map((row) => row.detail).join("; ") });
    } else {
      const where = buildKeyListWhere(filter, null, bindNumbered(params), "postgres");
      const sql = kind.count
        ? `SELECT COUNT(*) FROM keys ${where}`
        : `SELECT * FROM keys ${where} ORDER BY created_at DESC, id DESC LIMIT 51`;
      const rows = (await store.pool.query(`EXPLAIN ${sql}`, params)).rows.map((row) => row["QUERY PLAN"].trim());
      const nodes = rows.filter((line) => !/^(Filter|Recheck|Sort Key|Index Cond|Rows Removed)/.test(line.replace(/^->\s*/, "")));
      out.push({ kind: kind.kind, plan: nodes.map((line) => line.replace(/^->\s*/, "").replace(/\s+\(cost=.*$/, "")).join("; ") });
    }
  }
  return out;
}

async function sqliteSetup(records, dir) {
  const file = join(dir, "search.db");
  const seeding = new SqliteKeyStore({ filename: file });
  await seeding.migrate();
  await new SqliteWebhookStore(seeding).migrate();
  insertSqlite(seeding.db, records);
  seeding.db.pragma("wal_checkpoint(TRUNCATE)");
  await seeding.close();
  const store = new SqliteKeyStore({ filename: file });
  await store.migrate();
  return store;
}

async function postgresSetup(records, databaseUrl, schema) {
  const admin = new pg.Client({ connectionString: databaseUrl });
  await admin.connect();
  // pg_trgm where a dropped scratch schema cannot take it along (as the test helper does).
  await admin.query("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public").catch(() => {});
  await admin.end();
  // Seeding and VACUUM take longer than the service's 5 s query timeout on a loaded machine.
  const store = new PostgresKeyStore({ connectionString: databaseUrl, schema, queryTimeoutMs: 300_000 });
  await store.migrate();
  await new PostgresWebhookStore(store).migrate();
  await insertPostgres(store.pool, records);
  // What autovacuum does to a table after 100,000 inserts: statistics, the visibility map (index-only
  // counts) and the trigram index's pending list merged (until then every search reads that list).
  await store.pool.query("VACUUM ANALYZE keys");
  return store;
}

const fmt = (v, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : "–");

function markdown(store, rows, planRows) {
  const lines = [
    `#### ${store}`,
    "",
    "| query | answer | p50 ms | p95 ms | p50 vs first page | p95 vs first page |",
    "|---|---|---|---|---|---|",
  ];
  for (const r of rows)
    lines.push(`| ${r.kind} | ${r.answer} | ${fmt(r.p50Ms)} | ${fmt(r.p95Ms)} | ${fmt(r.p50Ratio, 1)}× | ${fmt(r.p95Ratio, 1)}× |`);
  if (planRows) {
    lines.push("", "| query | plan |", "|---|---|");
    for (const p of planRows) lines.push(`| ${p.kind} | ${p.plan.replaceAll("|", "\\|")} |`);
  }
  return lines.join("\n");
}

async function main() {
  const flags = parseArgs(process.argv.slice(2));
  const log = (line) => process.stderr.write(`${line}\n`);
  const now = Date.now();
  const records = seedRecords(flags.keys, now);
  const kinds = queryKinds(records);
  const report = {
    date: new Date().toISOString(),
    keys: flags.keys,
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    node: process.version,
    stores: {},
  };
  const dir = mkdtempSync(join(tmpdir(), "keyward-bench-search-"));
  const out = [];
  try {
    if (flags.only !== "postgres") {
      log(`seeding SQLite with ${flags.keys} keys`);
      const sqlite = await sqliteSetup(records, dir);
      const sqliteEngine = new Keyward({ store: sqlite });
      log("measuring SQLite");
      const sqliteRows = await measure(sqliteEngine, kinds, flags);
      const sqlitePlans = flags.plans ? await plans(sqlite, kinds, now) : null;
      report.stores.sqlite = { rows: sqliteRows, plans: sqlitePlans };
      out.push(markdown(`SQLite, ${flags.keys.toLocaleString("en-US")} keys`, sqliteRows, sqlitePlans));
      log(out.at(-1));
      await sqliteEngine.close();
    }

    const databaseUrl = flags.only === "sqlite" ? undefined : process.env.DATABASE_URL;
    if (databaseUrl) {
      const schema = `kw_bench_search_${randomBytes(4).toString("hex")}`;
      let postgres = null;
      try {
        log(`seeding PostgreSQL (${schema}) with ${flags.keys} keys`);
        postgres = await postgresSetup(records, databaseUrl, schema);
        const pgEngine = new Keyward({ store: postgres });
        log(`measuring PostgreSQL (name trigram index: ${postgres.nameSearchIndexed ? "yes" : "no"})`);
        const pgRows = await measure(pgEngine, kinds, flags);
        const pgPlans = flags.plans ? await plans(postgres, kinds, now) : null;
        report.stores.postgres = { rows: pgRows, plans: pgPlans, trigram: postgres.nameSearchIndexed };
        const version = (await postgres.pool.query("SHOW server_version")).rows[0].server_version;
        out.push(markdown(`PostgreSQL ${version}, ${flags.keys.toLocaleString("en-US")} keys`, pgRows, pgPlans));
        await pgEngine.close();
        postgres = null;
      } catch (error) {
        log(`PostgreSQL: ${error.stack ?? error}`);
        throw error;
      } finally {
        // The pool first: a connection left in a transaction would hold locks the drop waits for.
        await postgres?.close().catch(() => {});
        const client = new pg.Client({ connectionString: databaseUrl });
        await client.connect();
        await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        await client.end();
      }
    } else {
      log("DATABASE_URL is not set: PostgreSQL left out");
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(
    `Key search, ${report.date}: ${report.cpu}, ${report.cores} cores, Node ${report.node}; ${flags.seconds} s per query kind in ${flags.rounds} rounds; limit 50.\n\n${out.join("\n\n")}\n`,
  );
  if (flags.out) {
    mkdirSync(join(flags.out, ".."), { recursive: true });
    writeFileSync(flags.out, `${JSON.stringify(report, null, 2)}\n`);
  }
}

await main();
