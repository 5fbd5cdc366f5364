// Item 4: verify latency (store read, cache bypassed) at 1k, 100k and 1M keys in SQLite and
// PostgreSQL; heap per cached key; RSS under a flood of distinct random keys.
import { runInprocWorker } from "../lib/measure.js";

export async function runScale(ctx) {
  const { opts, fixtures } = ctx;
  const items = [];
  for (const count of opts.scaleCounts) {
    const fix = await fixtures.sqlite(count);
    items.push({
      id: `SQLite, ${count.toLocaleString("en-US")} keys`,
      store: "sqlite",
      count,
      spec: { kind: "verifyMiss", store: "sqlite", db: fix.db, keysFile: fix.keysFile, keysInStore: count },
    });
  }
  if (ctx.databaseUrl) {
    for (const count of opts.scaleCounts) {
      const fix = await fixtures.postgres(count);
      items.push({
        id: `PostgreSQL, ${count.toLocaleString("en-US")} keys`,
        store: "postgres",
        count,
        spec: {
          kind: "verifyMiss",
          store: "postgres",
          databaseUrl: fix.databaseUrl,
          schema: fix.schema,
          keysFile: fix.keysFile,
          keysInStore: count,
        },
      });
    }
  }
  const latency = await ctx.interleave(items, (item) => runInprocWorker({ ...item.spec, seconds: opts.inprocSeconds }));
  const rows = latency.map((r) => {
    const smallest = latency.find((x) => x.store === r.store && x.count === Math.min(...opts.scaleCounts));
    return {
      name: r.id,
      store: r.store,
      keys: r.count,
      meanUs: r.stats.meanUs,
      p50Us: r.stats.p50Us,
      p99Us: r.stats.p99Us,
      // Medians (p50) compared: on a shared machine the mean carries other processes' preemptions.
      ratioToSmallest: r.stats.p50Us.median / smallest.stats.p50Us.median,
    };
  });

  const memFix = await fixtures.sqlite(opts.memoryKeys);
  ctx.log(`  memory per cached key (${opts.memoryKeys} keys)`);
  const memory = await runInprocWorker({
    kind: "memoryPerKey",
    store: "sqlite",
    db: memFix.db,
    keysFile: memFix.keysFile,
    keys: opts.memoryKeys,
  });
  ctx.log(`  flood of ${opts.floodKeys} random keys`);
  const flood = await runInprocWorker({ kind: "flood", store: "sqlite", db: memFix.db, keys: opts.floodKeys });
  return { latency: rows, memory, flood };
}
