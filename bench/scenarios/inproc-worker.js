// One in-process measurement in its own process (pinned to one core by the runner), so each runs
// alone: `node --expose-gc bench/scenarios/inproc-worker.js '<json spec>'`. Prints `RESULT <json>`.
import { hash as nodeHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { Keyward } from "../../dist/engine/keyward.js";
import { PostgresKeyStore } from "../../dist/stores/postgres/postgres-key-store.js";
import { SqliteKeyStore } from "../../dist/stores/sqlite/sqlite-key-store.js";
import { SqliteUsageStore } from "../../dist/stores/sqlite/sqlite-usage-store.js";
import { BufferedUsageRecorder } from "../../dist/usage/buffered-usage-recorder.js";
import { percentile } from "../lib/stats.js";
import { LIMIT_ENFORCERS } from "./limits.js";

const spec = JSON.parse(process.argv[2]);
const readLines = (file, limit = Number.POSITIVE_INFINITY) => {
  const lines = readFileSync(file, "utf8").split("\n").filter(Boolean);
  return lines.length > limit ? lines.slice(0, limit) : lines;
};
const gc = () => globalThis.gc?.();

/** A deterministic shuffle, so every measurement walks keys in the same random order. */
function shuffled(items) {
  const out = items.slice();
  let seed = 0x9e3779b9;
  for (let i = out.length - 1; i > 0; i--) {
    seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    const j = seed % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

function openStore() {
  if (spec.store === "postgres") return new PostgresKeyStore({ connectionString: spec.databaseUrl, schema: spec.schema });
  return new SqliteKeyStore({ filename: spec.db });
}

/** Runs `step(i)` for `seconds`; returns calls per second. Time is read every 256 calls. */
async function loopFor(seconds, step) {
  const end = performance.now() + seconds * 1000;
  let i = 0;
  const started = performance.now();
  while (true) {
    for (let j = 0; j < 256; j++, i++) await step(i);
    if (performance.now() >= end) break;
  }
  return i / ((performance.now() - started) / 1000);
}

/**
 * `width` callers, each awaiting `step(i)` one after another, all at once (requests in flight
 * together, as in a server), for `seconds`; returns calls per second in all. Each caller reads
 * the time every 16 calls.
 */
async function loopConcurrent(seconds, width, step) {
  const end = performance.now() + seconds * 1000;
  let i = 0;
  const started = performance.now();
  const caller = async () => {
    while (performance.now() < end) for (let j = 0; j < 16; j++) await step(i++);
  };
  await Promise.all(Array.from({ length: width }, caller));
  return i / ((performance.now() - started) / 1000);
}

function loopForSync(seconds, step) {
  const end = performance.now() + seconds * 1000;
  let i = 0;
  const started = performance.now();
  while (true) {
    for (let j = 0; j < 256; j++, i++) step(i);
    if (performance.now() >= end) break;
  }
  return i / ((performance.now() - started) / 1000);
}

/** CPU time of the whole process (every thread, the WAL checkpointer's included) while `work` runs. */
async function cpuMsOf(work) {
  const before = process.cpuUsage();
  await work();
  const spent = process.cpuUsage(before);
  return (spent.user + spent.system) / 1000;
}

function expectValid(result) {
  if (!result.valid) throw new Error(`expected VALID, got ${result.code}`);
}

const kinds = {
  /** One crypto.hash + one Map.get: the floor any verify must pay. */
  async floor() {
    const keys = shuffled(readLines(spec.keysFile, spec.keys));
    const map = new Map(keys.map((k) => [nodeHash("sha256", k, "base64url"), { id: k.slice(-6) }]));
    let found = 0;
    const warm = loopForSync(0.2, (i) => {
      if (map.get(nodeHash("sha256", keys[i % keys.length], "base64url"))) found++;
    });
    const opsPerSec = loopForSync(spec.seconds, (i) => {
      if (map.get(nodeHash("sha256", keys[i % keys.length], "base64url"))) found++;
    });
    if (found === 0) throw new Error("floor found nothing");
    return { opsPerSec, nsPerOp: 1e9 / opsPerSec, warm };
  },

  /**
   * verify() with every key in the cache: the hot path. `limiter` names an entry of
   * LIMIT_ENFORCERS. With `usage`, every verification is tracked as docs/usage.md wires it (the
   * SQLite usage store and its journal, on the key store's file), and the loop lets the event
   * loop turn every 1,024 calls so the recorder's timer flushes and folds as in a server. With
   * `concurrency` N, N calls are in flight at once instead of one (issue 24: the Redis limiter
   * decides concurrent calls in one script call).
   */
  async verifyHit() {
    const keys = shuffled(readLines(spec.keysFile, spec.keys));
    const entry = spec.limiter ? LIMIT_ENFORCERS.find((e) => e.name === spec.limiter) : undefined;
    if (spec.limiter && !entry) throw new Error(`no limiter ${spec.limiter}`);
    const store = openStore();
    const limits = entry ? await entry.create(store) : undefined;
    const usageStore = spec.usage ? new SqliteUsageStore(store.db) : undefined;
    const usage = usageStore ? new BufferedUsageRecorder({ store: usageStore }) : undefined;
    const keyward = new Keyward({ store, ...(limits ? { limits: limits.enforcer } : {}), ...(usage ? { usage, usageStore } : {}) });
    for (const key of keys) expectValid(await keyward.verify(key, { scopes: ["read"] }));
    // The set-up's uses (one per key) are journaled and folded before the window, as a server
    // folds once a minute: else its first fold, 100,000 key-minutes at once, lands in a window
    // of seconds and is charged to it whole. Its CPU is reported on its own instead.
    const foldCpuMs = usage ? await cpuMsOf(() => usage.flush()) : undefined;
    const options = { scopes: ["read"], ip: "127.0.0.1" };
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    const verifyNext = (i) => keyward.verify(keys[i % keys.length], options);
    const step = usage ? (i) => ((i & 1023) === 0 ? turn().then(() => verifyNext(i)) : verifyNext(i)) : verifyNext;
    const loop = spec.concurrency ? (seconds) => loopConcurrent(seconds, spec.concurrency, step) : (seconds) => loopFor(seconds, step);
    await loop(0.2);
    const opsPerSec = await loop(spec.seconds);
    expectValid(await keyward.verify(keys[0], options));
    const flushes = usage?.stats.flushes;
    await limits?.close();
    // Closes the recorder (a last flush and fold) and the usage store too.
    await keyward.close();
    return { opsPerSec, nsPerOp: 1e9 / opsPerSec, ...(usage ? { flushes, foldCpuMs, foldKeyMinutes: keys.length } : {}) };
  },

  /**
   * verify() that always reads the store (cache maximum age 0): the miss path, one lookup per
   * call, awaited one after another. Also per-call latency percentiles.
   */
  async verifyMiss() {
    const keys = shuffled(readLines(spec.keysFile));
    const keyward = new Keyward({ store: openStore(), cache: { maxAgeMs: 0 } });
    expectValid(await keyward.verify(keys[0]));
    const samples = [];
    await loopFor(0.2, (i) => keyward.verify(keys[i % keys.length]));
    const opsPerSec = await loopFor(spec.seconds, async (i) => {
      const t = performance.now();
      const result = await keyward.verify(keys[i % keys.length]);
      if ((i & 7) === 0) samples.push(performance.now() - t);
      if (!result.valid) throw new Error(`expected VALID, got ${result.code}`);
    });
    await keyward.close();
    return {
      opsPerSec,
      nsPerOp: 1e9 / opsPerSec,
      meanUs: 1e6 / opsPerSec,
      p50Us: percentile(samples, 50) * 1000,
      p99Us: percentile(samples, 99) * 1000,
      keysInStore: spec.keysInStore,
    };
  },

  /** Bytes of heap per cached key: verify `keys` distinct keys once each, heap measured after GC. */
  async memoryPerKey() {
    const keys = readLines(spec.keysFile, spec.keys);
    const keyward = new Keyward({ store: openStore(), cache: { maxEntries: keys.length + 10 } });
    expectValid(await keyward.verify(keys[0]));
    keyward.cache.invalidateAll();
    gc();
    gc();
    const before = process.memoryUsage().heapUsed;
    for (const key of keys) expectValid(await keyward.verify(key));
    gc();
    gc();
    const after = process.memoryUsage().heapUsed;
    const cached = keyward.cache.size.positive;
    await keyward.close();
    return { bytesPerKey: (after - before) / cached, cached };
  },

  /**
   * A flood of distinct random well-formed keys (NOT_FOUND), generated as it goes: RSS must level
   * off once the negative cache is full. RSS is sampled every tenth of the flood.
   */
  async flood() {
    const { buildUnknownKeys } = await import("../lib/seed.js");
    const keyward = new Keyward({ store: openStore() });
    const samples = [];
    const batch = 10_000;
    const started = performance.now();
    for (let done = 0; done < spec.keys; done += batch) {
      const unknown = buildUnknownKeys(Math.min(batch, spec.keys - done));
      for (const key of unknown) {
        const result = await keyward.verify(key);
        if (result.code !== "NOT_FOUND") throw new Error(`expected NOT_FOUND, got ${result.code}`);
      }
      if ((done / batch) % Math.max(1, Math.floor(spec.keys / batch / 10)) === 0) {
        gc();
        samples.push({ verified: done + unknown.length, rssBytes: process.memoryUsage().rss });
      }
    }
    gc();
    const rssBytes = process.memoryUsage().rss;
    const seconds = (performance.now() - started) / 1000;
    const size = keyward.cache.size;
    await keyward.close();
    const firstFull = samples.find((s) => s.verified >= Math.min(spec.keys, 200_000)) ?? samples[0];
    return {
      keys: spec.keys,
      rssBytes,
      maxRssBytes: Math.max(rssBytes, ...samples.map((s) => s.rssBytes)),
      rssGrowthAfterCacheFullBytes: rssBytes - firstFull.rssBytes,
      negativeEntries: size.negative,
      opsPerSec: spec.keys / seconds,
      samples,
    };
  },
};

const run = kinds[spec.kind];
if (!run) throw new Error(`unknown kind ${spec.kind}`);
const result = await run();
process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
process.exit(0);
