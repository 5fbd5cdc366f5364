// Issue 24, the cluster rows: three `keyward serve` instances on one PostgreSQL schema and one
// Redis (KEYWARD_REDIS_URL, a prefix of their own, so their invalidation channel is theirs alone),
// 100,000 keys, GET /v1/authz load rotating over the keys and spread over the three (one wrk a
// instance, the 64 connections split between them). Nothing is pinned: three servers, three
// load generators, PostgreSQL and Redis share the machine's cores, so throughput here is not a
// result; what is measured is what the database sees and how fast a revocation travels.
//
//   statements  each instance's own count of the statements its key store ran
//               (`keyward_store_statements_total` on /metrics: key lookups, change-feed polls and
//               prunes), read before and after a window of steady load with no key changed,
//               per second per instance.
//   revocation  `revocations` times: a key outside wrk's set, first verified (and so cached) on all
//               three, is revoked with POST /v1/keys/:id/revoke through one instance (each in
//               turn) while the load runs; the two others are asked for it over and over from
//               the moment the revoke is sent, and the lag is the time until both answer 401.
//   sizing      the PostgreSQL `keys` table with its indexes after seeding (VACUUM ANALYZE, as
//               autovacuum would), per key; each instance's resident size before any request and
//               with every key cached, the difference per cached key (docs/deploy.md, Sizing).
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { FEED_CACHE_MAX_AGE_MS } from "../../dist/engine/keyward.js";
import { PostgresKeyStore } from "../../dist/stores/postgres/postgres-key-store.js";
import { processRss, runProcess, startServer } from "../lib/proc.js";
import { buildKeys, insertPostgres, writeKeyFile } from "../lib/seed.js";
import { summarize } from "../lib/stats.js";
import { runWrk } from "../lib/wrk.js";

const KEYWARD_BIN = fileURLToPath(new URL("../../bin/keyward.js", import.meta.url));
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const INSTANCES = 3;
/** The engine's safety-net re-read age with a change feed (KEYWARD_CACHE_MAX_AGE_MS unset). */
const SAFETY_NET_MS = FEED_CACHE_MAX_AGE_MS;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Seeds the schema: `count` keys for the load and `extra` more to revoke; sizes measured after VACUUM ANALYZE. */
async function seed(ctx, count, extra) {
  const started = performance.now();
  const schema = `kw_bench_cluster_${randomBytes(4).toString("hex")}`;
  ctx.fixtures.schemas.push(schema);
  const store = new PostgresKeyStore({ connectionString: ctx.databaseUrl, schema });
  await store.migrate();
  const keys = buildKeys(count + extra);
  await insertPostgres(
    store.pool,
    keys.map((k) => k.record),
  );
  await store.pool.query("VACUUM ANALYZE keys");
  const size = await store.pool.query(
    "SELECT pg_total_relation_size($1::regclass) AS total, pg_relation_size($1::regclass) AS heap, pg_indexes_size($1::regclass) AS indexes, (SELECT count(*) FROM keys) AS rows",
    [`${schema}.keys`],
  );
  await store.close();
  const load = keys.slice(0, count);
  const keysFile = ctx.fixtures.path(`cluster-${count}-keys.txt`);
  writeKeyFile(
    keysFile,
    load.map((k) => k.plaintext),
  );
  const s = size.rows[0];
  const table = { rows: Number(s.rows), totalBytes: Number(s.total), heapBytes: Number(s.heap), indexBytes: Number(s.indexes) };
  table.bytesPerKey = table.totalBytes / table.rows;
  ctx.log(`fixtures: cluster schema ${schema}, ${count + extra} keys, seeded in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return { schema, keysFile, count, revocable: keys.slice(count).map((k) => ({ id: k.record.id, key: k.plaintext })), table };
}

/** Sizes of every table of the schema after the run (usage and the change feed grow with traffic and changes). */
async function tableSizes(databaseUrl, schema) {
  const store = new PostgresKeyStore({ connectionString: databaseUrl, schema });
  try {
    const result = await store.pool.query(
      `SELECT c.relname AS name, pg_total_relation_size(c.oid) AS bytes FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY 2 DESC`,
      [schema],
    );
    return result.rows.filter((r) => Number(r.bytes) > 16_384).map((r) => ({ table: r.name, bytes: Number(r.bytes) }));
  } finally {
    await store.close();
  }
}

/** The samples of a Prometheus text exposition, as `name{labels}` → value. */
async function scrape(port) {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  const text = await response.text();
  const values = new Map();
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.length === 0) continue;
    const space = line.lastIndexOf(" ");
    values.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return values;
}

function statements(values) {
  const kinds = {};
  for (const kind of ["key_lookup", "change_poll", "change_prune"])
    kinds[kind] = values.get(`keyward_store_statements_total{kind="${kind}"}`) ?? 0;
  return kinds;
}

async function authz(port, key) {
  const response = await fetch(`http://127.0.0.1:${port}/v1/authz`, { headers: { "x-api-key": key } });
  await response.arrayBuffer();
  return response.status;
}

/**
 * warmUp of lib/wrk.js, one step at a time, a step retried when wrk exits without its summary
 * (seen once with three wrk and three servers on two cores; the count is reported).
 */
async function warmAll(options, keyCount, stepSeconds, maxSeconds) {
  let sent = 0;
  let spent = 0;
  let retries = 0;
  while (sent < keyCount && spent < maxSeconds) {
    try {
      sent += (await runWrk({ ...options, seconds: stepSeconds, order: "seq", offset: sent })).requests;
    } catch (error) {
      if (!String(error.message).includes("no summary") || ++retries > 5) throw error;
    }
    spent += stepSeconds;
  }
  return { sent, seconds: spent, retries };
}

/** Reads the key's row until it shows the revocation committed; the time it first did, or null after `timeoutMs`. */
async function untilCommitted(client, table, id, since, timeoutMs) {
  while (performance.now() - since < timeoutMs) {
    const result = await client.query(`SELECT revoked_at IS NOT NULL AS revoked FROM ${table} WHERE id = $1`, [id]);
    if (result.rows[0]?.revoked) return performance.now();
  }
  return null;
}

/** Asks `port` for `key` until it answers 401; the time (performance.now()) of that answer, or null after `timeoutMs`. */
async function until401(port, key, since, timeoutMs) {
  let polls = 0;
  while (performance.now() - since < timeoutMs) {
    polls++;
    if ((await authz(port, key)) === 401) return { at: performance.now(), polls };
  }
  return { at: null, polls };
}

export async function runCluster(ctx) {
  const { opts } = ctx;
  if (!ctx.databaseUrl) throw new Error("the cluster group needs PostgreSQL (DATABASE_URL)");
  const count = opts.keys;
  const fix = await seed(ctx, count, opts.revocations);
  ctx.log(
    `  keys table: ${(fix.table.totalBytes / 2 ** 20).toFixed(1)} MiB for ${fix.table.rows} keys (${Math.round(fix.table.bytesPerKey)} bytes a key, indexes ${(fix.table.indexBytes / 2 ** 20).toFixed(1)} MiB)`,
  );
  const env = {
    KEYWARD_DATABASE_URL: ctx.databaseUrl,
    KEYWARD_DATABASE_SCHEMA: fix.schema,
    KEYWARD_REDIS_URL: REDIS_URL,
    KEYWARD_REDIS_PREFIX: `keyward-bench-cluster:${process.pid}:${fix.schema}:`,
    KEYWARD_FAILED_ATTEMPTS_LIMIT: "0",
    KEYWARD_LOG_LEVEL: "warn",
  };
  // The admin key that revokes, minted by the CLI (which also applies every migration once).
  const created = JSON.parse(
    await runProcess({ command: process.execPath, args: [KEYWARD_BIN, "admin-key", "create", "--name", "bench cluster", "--json"], env }),
  );
  const admin = created.key;
  const servers = [];
  let db;
  try {
    for (let i = 0; i < INSTANCES; i++) {
      servers.push(
        await startServer({ command: process.execPath, args: [KEYWARD_BIN, "serve", "--port", "0", "--host", "127.0.0.1"], env }),
      );
    }
    await sleep(1_000);
    const rssIdle = await Promise.all(servers.map((s) => processRss(s.pid)));
    const split = servers.map((_, i) => Math.floor(opts.connections / INSTANCES) + (i < opts.connections % INSTANCES ? 1 : 0));
    const base = servers.map((s, i) => ({ url: `http://127.0.0.1:${s.port}/v1/authz`, connections: split[i], keysFile: fix.keysFile }));
    // Every instance walks every key (a running instance has the keys in use cached), all three at once.
    const warmStarted = performance.now();
    const warm = await Promise.all(base.map((b) => warmAll(b, count, opts.smoke ? 1 : 2, 300)));
    ctx.log(
      `  warmed: ${warm.map((w) => `${w.sent}${w.retries ? ` (${w.retries} wrk retried)` : ""}`).join(", ")} requests in ${((performance.now() - warmStarted) / 1000).toFixed(0)} s`,
    );
    const rssWarm = await Promise.all(servers.map((s) => processRss(s.pid)));

    const settleSeconds = opts.smoke ? 1 : 5;
    const windowSeconds = opts.clusterSeconds;
    // Under load a revocation and its polls took up to ~2 s here (2026-12-03, load average 8–12):
    // the load runs long enough for all of them.
    const revokeBudgetSeconds = opts.revocations * 2 + 5;
    const loadSeconds = settleSeconds + windowSeconds + revokeBudgetSeconds;
    let loadEnded = null;
    const load = Promise.all(base.map((b) => runWrk({ ...b, seconds: loadSeconds }))).finally(() => {
      loadEnded = performance.now();
    });
    await sleep(settleSeconds * 1_000);
    const before = await Promise.all(servers.map((s) => scrape(s.port)));
    const windowStarted = performance.now();
    await sleep(windowSeconds * 1_000);
    const after = await Promise.all(servers.map((s) => scrape(s.port)));
    const windowMs = performance.now() - windowStarted;
    const perInstance = servers.map((_, i) => {
      const a = statements(before[i]);
      const b = statements(after[i]);
      const kinds = Object.fromEntries(Object.keys(a).map((k) => [k, b[k] - a[k]]));
      const total = Object.values(kinds).reduce((x, y) => x + y, 0);
      return {
        statements: kinds,
        perSecond: total / (windowMs / 1000),
        cachedKeys: after[i].get('keyward_cache_entries{kind="positive"}') ?? null,
      };
    });
    ctx.log(`  statements a second per instance, no key changed: ${perInstance.map((p) => p.perSecond.toFixed(2)).join(", ")}`);
    const rssLoaded = await Promise.all(servers.map((s) => processRss(s.pid)));

    // Revocations, one instance after the other, while the load runs.
    const revocations = [];
    db = new pg.Client({ connectionString: ctx.databaseUrl });
    await db.connect();
    for (let i = 0; i < fix.revocable.length; i++) {
      const { id, key } = fix.revocable[i];
      const via = i % INSTANCES;
      const statuses = await Promise.all(servers.map((s) => authz(s.port, key)));
      if (statuses.some((s) => s !== 200)) throw new Error(`key ${id} was not valid on every instance before its revocation: ${statuses}`);
      const others = servers.filter((_, j) => j !== via);
      const sent = performance.now();
      const polls = others.map((s) => until401(s.port, key, sent, 5_000));
      const committed = untilCommitted(db, `${fix.schema}.keys`, id, sent, 5_000);
      const response = await fetch(`http://127.0.0.1:${servers[via].port}/v1/keys/${id}/revoke`, {
        method: "POST",
        headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
        body: JSON.stringify({ reason: "bench" }),
      });
      await response.arrayBuffer();
      const acknowledged = performance.now();
      if (response.status !== 200) throw new Error(`revoke ${id} through instance ${via + 1}: HTTP ${response.status}`);
      const seen = await Promise.all(polls);
      const committedAt = await committed;
      const ownStatus = await authz(servers[via].port, key);
      const othersAt = seen.some((s) => s.at === null) ? Number.POSITIVE_INFINITY : Math.max(...seen.map((s) => s.at));
      revocations.push({
        via: via + 1,
        // From the revoke request sent until both others answer 401: the revoke's own time (its
        // request queued behind the load, its writes) is in it.
        lagMs: othersAt - sent,
        // From the revocation first seen committed in PostgreSQL (a client reading the key's row
        // over and over from the moment the revoke is sent) until both others answer 401: the
        // travel to the other instances, within the two polls' resolution.
        propagationMs: committedAt === null ? Number.POSITIVE_INFINITY : othersAt - committedAt,
        revokeMs: acknowledged - sent,
        polls: seen.map((s) => s.polls),
        revokingInstanceAnswer: ownStatus,
        underLoad: loadEnded === null,
      });
      const last = revocations[revocations.length - 1];
      ctx.log(
        `  revocation ${i + 1}/${fix.revocable.length} via instance ${via + 1}: others answered 401 ${last.lagMs.toFixed(1)} ms after the revoke was sent, ` +
          `${last.propagationMs.toFixed(1)} ms after PostgreSQL showed it committed (revoke answered in ${last.revokeMs.toFixed(1)} ms)`,
      );
      await sleep(200);
    }
    const wrk = await load;
    const worst = (values) => values.reduce((a, b) => Math.max(a, b), Number.NEGATIVE_INFINITY);
    const lags = revocations.map((r) => r.lagMs);
    const travel = revocations.map((r) => r.propagationMs);
    return {
      instances: INSTANCES,
      keys: count,
      connections: opts.connections,
      load: {
        seconds: loadSeconds,
        rps: wrk.reduce((n, r) => n + r.rps, 0),
        p99Ms: Math.max(...wrk.map((r) => r.p99Ms)),
        wrongAnswers: wrk.reduce((n, r) => n + r.statusErrors, 0),
        socketErrors: wrk.reduce((n, r) => n + r.socketErrors, 0),
      },
      statements: {
        windowSeconds: windowMs / 1000,
        perInstance,
        maxPerSecond: Math.max(...perInstance.map((p) => p.perSecond)),
        // The engine re-reads each cached key once per safety-net age even with no change: averaged
        // over that age, cached keys / age more a second (not inside a window shorter than it).
        safetyNetPerSecond: count / (SAFETY_NET_MS / 1000),
        safetyNetSeconds: SAFETY_NET_MS / 1000,
      },
      revocation: {
        count: revocations.length,
        medianMs: summarize(lags).median,
        worstMs: worst(lags),
        propagationMedianMs: summarize(travel).median,
        propagationWorstMs: worst(travel),
        revokeMedianMs: summarize(revocations.map((r) => r.revokeMs)).median,
        allUnderLoad: revocations.every((r) => r.underLoad),
        revokingInstanceAnswered401: revocations.every((r) => r.revokingInstanceAnswer === 401),
        runs: revocations,
      },
      sizing: {
        table: fix.table,
        rss: servers.map((_, i) => ({ idleBytes: rssIdle[i], warmBytes: rssWarm[i], loadedBytes: rssLoaded[i] })),
        rssPerCachedKeyBytes: summarize(servers.map((_, i) => (rssLoaded[i] - rssIdle[i]) / (perInstance[i].cachedKeys || count))).median,
        tablesAfter: await tableSizes(ctx.databaseUrl, fix.schema),
      },
    };
  } finally {
    await db?.end();
    for (const server of servers) await server.stop();
  }
}
