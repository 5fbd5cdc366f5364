// One "hot quota key" measurement in its own process (bench/scenarios/hot-quota.js):
// `node bench/scenarios/hot-quota-worker.js '<json spec>'`. Prints `RESULT <json>`.
//
// One key with a quota far above what a run can spend, verified in-process (cache hit, then the
// limits stage: the quota spend) by `concurrency` callers at once for `seconds`, on SQLite or
// PostgreSQL, with quota blocks of up to `blockMax` uses (0: one conditional update per request).
// Exactness is checked at the end: once the limiter is closed (so an instance's unspent block is
// given back), the store's count must equal the number of requests admitted.
import { Keyward } from "../../dist/engine/keyward.js";
import { KeyLimitEnforcer } from "../../dist/limits/key-limit-enforcer.js";
import { MemoryRateLimiter } from "../../dist/limits/memory-rate-limiter.js";
import { BlockQuotaCounter } from "../../dist/limits/quota-blocks.js";
import { PostgresKeyStore } from "../../dist/stores/postgres/postgres-key-store.js";
import { PostgresQuotaCounter } from "../../dist/stores/postgres/postgres-quota-counter.js";
import { SqliteKeyStore } from "../../dist/stores/sqlite/sqlite-key-store.js";
import { SqliteQuotaCounter } from "../../dist/stores/sqlite/sqlite-quota-counter.js";

const spec = JSON.parse(process.argv[2]);
const context = { actor: { type: "cli", id: "bench" } };

async function openStore() {
  if (spec.store === "postgres") {
    const store = new PostgresKeyStore({ connectionString: spec.databaseUrl, schema: spec.schema });
    await store.migrate();
    const quotas = new PostgresQuotaCounter(store.pool);
    await quotas.migrate();
    const used = async (lineage) =>
      Number(
        (await store.pool.query("SELECT COALESCE(SUM(used), 0) AS used FROM quota_counters WHERE lineage_id = $1", [lineage])).rows[0].used,
      );
    return { store, quotas, used };
  }
  const store = new SqliteKeyStore({ filename: spec.db });
  await store.migrate();
  const quotas = new SqliteQuotaCounter(store.db);
  const used = async (lineage) =>
    store.db.prepare("SELECT COALESCE(SUM(used), 0) AS used FROM quota_counters WHERE lineage_id = ?").get(lineage).used;
  return { store, quotas, used };
}

/** `width` callers, each awaiting `step()` one after another, for `seconds`; returns calls per second. */
async function loopConcurrent(seconds, width, step) {
  const end = performance.now() + seconds * 1000;
  let calls = 0;
  const started = performance.now();
  const caller = async () => {
    while (performance.now() < end)
      for (let j = 0; j < 16; j++) {
        await step();
        calls++;
      }
  };
  await Promise.all(Array.from({ length: width }, caller));
  return calls / ((performance.now() - started) / 1000);
}

const { store, quotas, used } = await openStore();
const counter = spec.blockMax > 0 ? new BlockQuotaCounter({ store: quotas, maxBlock: spec.blockMax }) : quotas;
const limits = new KeyLimitEnforcer({ rates: new MemoryRateLimiter(), quotas: counter });
const keyward = new Keyward({ store, limits });
const { key, record } = await keyward.createKey(
  {
    owner: { type: "application", id: "bench-hot-quota" },
    name: "hot quota key",
    environment: "production",
    scopes: ["read"],
    quota: { limit: 1_000_000_000_000, period: "month" },
  },
  context,
);
let admitted = 0;
let refused = 0;
const options = { scopes: ["read"], ip: "127.0.0.1" };
const step = async () => {
  const result = await keyward.verify(key, options);
  if (result.valid) admitted++;
  else if (result.code === "QUOTA_EXCEEDED") refused++;
  else throw new Error(`expected VALID, got ${result.code}`);
};
await loopConcurrent(0.2, spec.concurrency, step);
const takesBefore = counter.stats?.takes ?? 0;
const admittedBefore = admitted;
const opsPerSec = await loopConcurrent(spec.seconds, spec.concurrency, step);
const measured = admitted - admittedBefore;
const takes = counter.stats ? counter.stats.takes - takesBefore : measured;
const heldAtEnd = counter.heldUses ?? 0;
const usedBeforeClose = await used(record.lineageId);
// Closing the limiter gives the unspent block back (then closes the quota counter's connection).
await limits.close();
const storeUsed = await used(record.lineageId);
await keyward.close();
if (refused > 0) throw new Error(`${refused} requests refused by a quota that cannot be spent in a run`);
if (storeUsed !== admitted) throw new Error(`not exact: ${admitted} admitted, the store counts ${storeUsed}`);
process.stdout.write(
  `RESULT ${JSON.stringify({
    opsPerSec,
    nsPerOp: 1e9 / opsPerSec,
    admitted,
    storeUsed,
    exact: storeUsed === admitted ? 1 : 0,
    heldAtEnd,
    usedBeforeClose,
    writesPerRequest: takes / Math.max(1, measured),
  })}\n`,
);
process.exit(0);
