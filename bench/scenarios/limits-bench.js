// Item 5: the cost of the limits stage (rate limit + quota) on a cache-hit verify(), one row per
// LimitEnforcer adapter in ./limits.js, against verify() with no limiter in the same run.
import { runInprocWorker } from "../lib/measure.js";
import { LIMIT_ENFORCERS, LIMITED_KEY_SETTINGS, PENDING_LIMIT_ENFORCERS } from "./limits.js";

export async function runLimits(ctx) {
  const { opts, fixtures } = ctx;
  const fix = await fixtures.sqlite(opts.hitKeys, { tag: "limited", keyOptions: LIMITED_KEY_SETTINGS });
  // The baseline: the same number of keys without limits, whose verify skips the limits stage.
  const plain = await fixtures.sqlite(opts.hitKeys);
  const base = { kind: "verifyHit", store: "sqlite", db: fix.db, keysFile: fix.keysFile, keys: opts.hitKeys };
  const items = [
    { id: "no limiter", spec: { ...base, db: plain.db, keysFile: plain.keysFile } },
    ...LIMIT_ENFORCERS.map((e) => ({ id: `limiter: ${e.name}`, spec: { ...base, limiter: e.name } })),
  ];
  const results = await ctx.interleave(items, (item) => runInprocWorker({ ...item.spec, seconds: opts.inprocSeconds }));
  const none = results[0].stats.opsPerSec.median;
  return {
    rows: results.map((r) => ({
      name: r.id,
      opsPerSec: r.stats.opsPerSec,
      nsPerOp: r.stats.nsPerOp,
      ratioToNoLimiter: r.stats.opsPerSec.median / none,
    })),
    pending: PENDING_LIMIT_ENFORCERS,
  };
}
