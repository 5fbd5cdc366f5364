// Item 1: in-process verify() against the floor of one crypto.hash + one Map.get.
import { Fixtures } from "../lib/fixtures.js";
import { runInprocWorker } from "../lib/measure.js";

export async function runInproc(ctx) {
  const { opts, fixtures } = ctx;
  const hit = await fixtures.sqlite(opts.hitKeys);
  const big = await fixtures.sqlite(opts.keys, { admin: true });
  const items = [
    { id: "floor: crypto.hash + Map.get", spec: { kind: "floor", keysFile: hit.keysFile, keys: opts.hitKeys } },
    { id: "verify() cache hit", spec: { kind: "verifyHit", store: "sqlite", db: hit.db, keysFile: hit.keysFile, keys: opts.hitKeys } },
    // Usage tracking on the same hits: every key of the set is used in turn (the worst case for
    // the recorder: nearly every use a journal line), each run on a fresh copy of the file.
    {
      id: "verify() cache hit, usage tracked",
      spec: { kind: "verifyHit", store: "sqlite", db: hit.db, keysFile: hit.keysFile, keys: opts.hitKeys, usage: true },
      freshCopy: "usage",
    },
    { id: "verify() cache miss, SQLite", spec: { kind: "verifyMiss", store: "sqlite", db: big.db, keysFile: big.keysFile } },
  ];
  if (ctx.databaseUrl) {
    const pgFix = await fixtures.postgres(opts.keys);
    items.push({
      id: "verify() cache miss, PostgreSQL",
      spec: { kind: "verifyMiss", store: "postgres", databaseUrl: pgFix.databaseUrl, schema: pgFix.schema, keysFile: pgFix.keysFile },
    });
  }
  const results = await ctx.interleave(items, (item) =>
    runInprocWorker({
      ...item.spec,
      ...(item.freshCopy ? { db: Fixtures.freshCopy(item.spec.db, item.freshCopy) } : {}),
      seconds: opts.inprocSeconds,
    }),
  );
  const floor = results[0].stats.opsPerSec.median;
  return results.map((r) => ({
    name: r.id,
    opsPerSec: r.stats.opsPerSec,
    nsPerOp: r.stats.nsPerOp,
    ...(r.stats.p99Us ? { p50Us: r.stats.p50Us, p99Us: r.stats.p99Us } : {}),
    ...(r.stats.foldCpuMs ? { foldCpuMs: r.stats.foldCpuMs, foldKeyMinutes: r.stats.foldKeyMinutes.median } : {}),
    ratioToFloor: r.stats.opsPerSec.median / floor,
    samples: r.samples,
  }));
}
