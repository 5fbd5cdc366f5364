// Issue 24, HTTP rows of the limits: `keyward serve` GET /v1/authz with 100,000 rotating keys that
// each carry a rate limit (1,000 requests/s: never reached by a run, always decided), with the
// limiter in the process (memory) and shared through Redis (KEYWARD_REDIS_URL), against the same
// number of keys without limits in the same run. Server alone on core 0, wrk on core 1, 64
// connections, as in the http group (docs/benchmarks.md, Method).
//
// Exactness, checked in every run of a limited target:
//   - the rotating pass must admit every request (no 429: no key comes near 1,000/s), and
//   - a hammer pass sends one key with a limit of HAMMER_LIMIT requests an hour from all 64
//     connections: exactly HAMMER_LIMIT answers must be 200 and every other one 429 (the GCRA
//     burst is the limit; the next request fits 3.6 s later at the earliest, after the pass).

import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { SqliteKeyStore } from "../../dist/stores/sqlite/sqlite-key-store.js";
import { Fixtures } from "../lib/fixtures.js";
import { startServer } from "../lib/proc.js";
import { buildKeys, insertSqlite, writeKeyFile } from "../lib/seed.js";
import { summarize } from "../lib/stats.js";
import { runWrk, warmUp } from "../lib/wrk.js";

const KEYWARD_BIN = fileURLToPath(new URL("../../bin/keyward.js", import.meta.url));
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/** The limit every rotating key carries. */
export const ROTATING_RATE = { requests: 1_000, per_seconds: 1 };
/** The hammered key's limit: its burst is all a pass can get. */
export const HAMMER_LIMIT = 500;
const HAMMER_RATE = { requests: HAMMER_LIMIT, per_seconds: 3_600 };

const TARGETS = [
  { name: "serve /v1/authz, keys without limits", limited: false },
  { name: "serve /v1/authz, memory limiter", limited: true, limiter: "memory" },
  { name: "serve /v1/authz, Redis limiter", limited: true, limiter: "redis" },
];

/** A SQLite store of `count` keys (with `rateLimit` or without) and, with limits, the hammered key. */
function seed(fixtures, count, limited) {
  const name = `http-limits-${count}-${limited ? "limited" : "plain"}`;
  return fixtures.memo(name, async () => {
    const started = performance.now();
    const keys = buildKeys(count, limited ? { rateLimit: ROTATING_RATE } : {});
    const [hammer] = limited ? buildKeys(1, { rateLimit: HAMMER_RATE }) : [];
    const db = fixtures.path(`${name}.db`);
    const store = new SqliteKeyStore({ filename: db });
    await store.migrate();
    insertSqlite(store.db, [...keys.map((k) => k.record), ...(hammer ? [hammer.record] : [])]);
    store.db.pragma("wal_checkpoint(TRUNCATE)");
    await store.close();
    const keysFile = fixtures.path(`${name}-keys.txt`);
    writeKeyFile(
      keysFile,
      keys.map((k) => k.plaintext),
    );
    let hammerFile;
    if (hammer) {
      hammerFile = fixtures.path(`${name}-hammer.txt`);
      writeKeyFile(hammerFile, [hammer.plaintext]);
    }
    fixtures.log(`fixtures: ${name} seeded in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return { db, keysFile, hammerFile, count };
  });
}

function start(target, db, redisPrefix) {
  return startServer({
    command: process.execPath,
    args: [KEYWARD_BIN, "serve", "--port", "0", "--host", "127.0.0.1"],
    cores: "0",
    env: {
      KEYWARD_DATABASE_URL: `sqlite:${db}`,
      KEYWARD_LOG_LEVEL: "warn",
      KEYWARD_REDIS_URL: target.limiter === "redis" ? REDIS_URL : "",
      KEYWARD_REDIS_PREFIX: redisPrefix,
      KEYWARD_FAILED_ATTEMPTS_LIMIT: "0",
    },
  });
}

/** The limiter's own view from /metrics: its decisions so far and whether it runs degraded (Redis not answering in time). */
async function limiterMetrics(port) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const value = (sample) => {
    const line = text.split("\n").find((l) => l.startsWith(`${sample} `));
    return line ? Number(line.slice(sample.length + 1)) : 0;
  };
  return {
    allowed: value('keyward_limiter_decisions_total{decision="allowed"}'),
    rateLimited: value('keyward_limiter_decisions_total{decision="rate_limited"}'),
    degraded: value("keyward_limiter_degraded"),
  };
}

/** Deletes what the Redis limiter left under the bench's prefixes. */
async function cleanRedis(prefix, log) {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = "0";
    let deleted = 0;
    do {
      const [next, found] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 10_000);
      cursor = next;
      if (found.length > 0) deleted += await redis.del(...found);
    } while (cursor !== "0");
    log(`  redis: removed ${deleted} keys under ${prefix}`);
  } catch (error) {
    log(`  redis: could not clean ${prefix}*: ${error.message}`);
  } finally {
    redis.disconnect();
  }
}

export async function runHttpLimits(ctx) {
  const { opts, fixtures } = ctx;
  const count = opts.keys;
  const plain = await seed(fixtures, count, false);
  const limited = await seed(fixtures, count, true);
  const hammerSeconds = opts.smoke ? 1 : 2;
  const prefixRoot = `keyward-bench-http-limits:${process.pid}:`;
  const samples = new Map(TARGETS.map((t) => [t.name, { target: t, runs: [], hammers: [] }]));
  try {
    for (let run = 1; run <= opts.runs; run++) {
      for (const target of TARGETS) {
        const fix = target.limited ? limited : plain;
        const server = await start(target, Fixtures.freshCopy(fix.db, "run"), `${prefixRoot}${run}:`);
        try {
          const base = { url: `http://127.0.0.1:${server.port}/v1/authz`, connections: opts.connections, cores: "1" };
          const warm = await warmUp({ ...base, keysFile: fix.keysFile }, fix.count, { stepSeconds: opts.warmup, maxSeconds: 120 });
          ctx.log(`  ${target.name}: warmed with ${warm.sent} requests in ${warm.seconds} s`);
          const result = await runWrk({ ...base, seconds: opts.duration, keysFile: fix.keysFile });
          if (target.limited) result.limiter = await limiterMetrics(server.port);
          samples.get(target.name).runs.push(result);
          ctx.log(
            `  ${target.name} run ${run}/${opts.runs}: ${Math.round(result.rps)} req/s p50 ${result.p50Ms.toFixed(2)} ms p99 ${result.p99Ms.toFixed(2)} ms` +
              (result.statusErrors ? ` (${result.statusErrors} 4xx/5xx)` : ""),
          );
          if (target.limited) {
            const hammer = await runWrk({ ...base, seconds: hammerSeconds, keysFile: fix.hammerFile, expectStatus: "200,429" });
            const admitted = hammer.requests - hammer.statusErrors;
            const limiter = await limiterMetrics(server.port);
            samples.get(target.name).hammers.push({
              requests: hammer.requests,
              admitted,
              unexpected: hammer.unexpected,
              socketErrors: hammer.socketErrors,
              limiterAfter: limiter,
            });
            ctx.log(
              `  ${target.name} hammer: ${admitted} of ${hammer.requests} admitted (limit ${HAMMER_LIMIT} an hour), ${hammer.unexpected} neither 200 nor 429; ` +
                `limiter after it: ${JSON.stringify(limiter)}`,
            );
          }
        } finally {
          await server.stop();
        }
      }
    }
  } finally {
    await cleanRedis(prefixRoot, ctx.log);
  }
  const rows = [...samples.values()].map(({ target, runs, hammers }) => ({
    name: target.name,
    limiter: target.limiter ?? null,
    keys: count,
    rateLimit: target.limited ? ROTATING_RATE : null,
    rps: summarize(runs.map((r) => r.rps)),
    // The limiter's decisions and degraded flag (/metrics) after each rotating pass.
    limiterAfterRotating: runs.map((r) => r.limiter ?? null),
    p50Ms: summarize(runs.map((r) => r.p50Ms)),
    p99Ms: summarize(runs.map((r) => r.p99Ms)),
    socketErrors: runs.reduce((n, r) => n + r.socketErrors, 0),
    // Every rotating request must be admitted: any 4xx/5xx (a 429 above all) is a wrong answer.
    wrongAnswers: runs.reduce((n, r) => n + r.statusErrors, 0),
    hammer: target.limited
      ? {
          limit: HAMMER_LIMIT,
          seconds: hammerSeconds,
          runs: hammers,
          exact: hammers.length > 0 && hammers.every((h) => h.admitted === HAMMER_LIMIT && h.unexpected === 0 && h.socketErrors === 0),
        }
      : null,
  }));
  const none = rows.find((r) => !r.limiter);
  for (const row of rows) row.ratioToUnlimited = row.rps.median / none.rps.median;
  return { rows, connections: opts.connections };
}
