// Item 5: the cost of the limits stage (rate limit + quota) on a cache-hit verify(), one row per
// LimitEnforcer adapter in ./limits.js, against verify() with no limiter in the same run. Issue 24:
// the memory and Redis rate limiters again with 64 calls in flight at once (the Redis limiter
// decides concurrent calls in one script call), each row also against the memory limiter under
// the same load in the same run.
import { runInprocWorker } from "../lib/measure.js";
import { runHotQuota } from "./hot-quota.js";
import { LIMIT_ENFORCERS, LIMITED_KEY_SETTINGS, PENDING_LIMIT_ENFORCERS } from "./limits.js";

/** Calls in flight at once in the concurrent rows. */
const CONCURRENCY = 64;
/** The rows every limiter row is also compared with (same load, same run). */
const MEMORY_LIMITER = "memory rate + memory quota";
const CONCURRENT_ROWS = [MEMORY_LIMITER, "redis rate + memory quota"];

export async function runLimits(ctx) {
  const { opts, fixtures } = ctx;
  const fix = await fixtures.sqlite(opts.hitKeys, { tag: "limited", keyOptions: LIMITED_KEY_SETTINGS });
  // The baseline: the same number of keys without limits, whose verify skips the limits stage.
  const plain = await fixtures.sqlite(opts.hitKeys);
  const base = { kind: "verifyHit", store: "sqlite", db: fix.db, keysFile: fix.keysFile, keys: opts.hitKeys };
  const items = [
    { id: "no limiter", spec: { ...base, db: plain.db, keysFile: plain.keysFile } },
    ...LIMIT_ENFORCERS.map((e) => ({ id: `limiter: ${e.name}`, spec: { ...base, limiter: e.name } })),
    ...CONCURRENT_ROWS.map((name) => ({
      id: `limiter: ${name}, ${CONCURRENCY} concurrent decisions`,
      spec: { ...base, limiter: name, concurrency: CONCURRENCY },
      memory: `limiter: ${MEMORY_LIMITER}, ${CONCURRENCY} concurrent decisions`,
    })),
  ];
  const results = await ctx.interleave(items, (item) => runInprocWorker({ ...item.spec, seconds: opts.inprocSeconds }));
  // Issue 24: one hot quota key, with and without quota blocks, on each store (./hot-quota.js).
  const hotQuota = await runHotQuota(ctx);
  const none = results[0].stats.opsPerSec.median;
  const median = (id) => results.find((r) => r.id === id)?.stats.opsPerSec.median;
  return {
    rows: results.map((r) => ({
      name: r.id,
      opsPerSec: r.stats.opsPerSec,
      nsPerOp: r.stats.nsPerOp,
      ratioToNoLimiter: r.stats.opsPerSec.median / none,
      // Serial rows against the serial memory limiter, concurrent ones against the concurrent one.
      ...(r.id.startsWith("limiter: ") && r.id !== "limiter: noop"
        ? { ratioToMemoryLimiter: r.stats.opsPerSec.median / median(r.memory ?? `limiter: ${MEMORY_LIMITER}`) }
        : {}),
    })),
    pending: PENDING_LIMIT_ENFORCERS,
    hotQuota,
  };
}
