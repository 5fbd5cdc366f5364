// Issue 24, "a quota is spent from the database in reserved blocks": one hot key with a large
// quota, verified in-process with 64 calls in flight, on SQLite and on PostgreSQL, spending one
// conditional update per request (blocks off) and in blocks of up to 64 (the default of
// KEYWARD_QUOTA_BLOCK_MAX). Each row checks exactness: the store's count at the end (after the
// limiter gave back its unspent block) equals the requests admitted. Part of the limits group.
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { runProcess } from "../lib/proc.js";

const WORKER = fileURLToPath(new URL("./hot-quota-worker.js", import.meta.url));

/** Calls in flight at once: a server's requests for one key. */
export const HOT_QUOTA_CONCURRENCY = 64;
/** The block size of the "with blocks" rows: KEYWARD_QUOTA_BLOCK_MAX's default. */
export const HOT_QUOTA_BLOCK_MAX = 64;

async function runWorker(spec) {
  const stdout = await runProcess({ command: process.execPath, args: [WORKER, JSON.stringify(spec)], cores: "0" });
  const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
  if (!line) throw new Error(`hot quota worker printed no result: ${stdout.slice(-1000)}`);
  return JSON.parse(line.slice("RESULT ".length));
}

export async function runHotQuota(ctx) {
  const { opts, fixtures, databaseUrl } = ctx;
  const stores = [{ store: "sqlite", db: fixtures.path("hot-quota.db") }];
  if (databaseUrl) {
    const schema = `kw_bench_${randomBytes(5).toString("hex")}`;
    // Dropped with the fixtures' own schemas at the end of the run.
    fixtures.schemas.push(schema);
    stores.push({ store: "postgres", databaseUrl, schema });
  }
  const items = stores.flatMap((base) =>
    [0, HOT_QUOTA_BLOCK_MAX].map((blockMax) => ({
      id: `hot quota key, ${base.store}, ${blockMax > 0 ? `blocks of up to ${blockMax}` : "one update per request"}`,
      store: base.store,
      blockMax,
      spec: { ...base, blockMax, concurrency: HOT_QUOTA_CONCURRENCY },
    })),
  );
  const results = await ctx.interleave(items, (item) => runWorker({ ...item.spec, seconds: opts.inprocSeconds }));
  return results.map((r) => ({
    name: r.id,
    store: r.store,
    blockMax: r.blockMax,
    concurrency: HOT_QUOTA_CONCURRENCY,
    opsPerSec: r.stats.opsPerSec,
    nsPerOp: r.stats.nsPerOp,
    writesPerRequest: r.stats.writesPerRequest,
    // Every run's store count equalled its admitted requests (the worker fails otherwise).
    exact: r.samples.every((s) => s.exact === 1),
    admitted: r.samples.map((s) => s.admitted),
  }));
}
