import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Keyward } from "../../src/engine/keyward.js";
import type { KeyStore } from "../../src/ports/key-store.js";
import type { UsageCount, UsageJournal, UsageStore, UsageWriter } from "../../src/ports/usage-recorder.js";
import { storesBeside } from "../../src/service/store-factory.js";
import { MemoryKeyStore } from "../../src/stores/memory/memory-key-store.js";
import { MemoryUsageStore } from "../../src/stores/memory/memory-usage-store.js";
import { PostgresKeyStore } from "../../src/stores/postgres/postgres-key-store.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";
import { BufferedUsageRecorder } from "../../src/usage/buffered-usage-recorder.js";
import { encodeUsageBatch } from "../../src/usage/usage-merge.js";
import { backendsAvailable, createTestSchema, DATABASE_URL } from "../helpers/backends.js";

const haveBackends = await backendsAvailable();
const MINUTE = 60_000;
const T0 = Date.UTC(2026, 10, 23, 10, 0);

function usageStoreContract(name: string, open: () => Promise<{ keys: KeyStore; usage: UsageStore; close: () => Promise<void> }>) {
  describe(`UsageStore contract: ${name}`, () => {
    let keys: KeyStore;
    let usage: UsageStore;
    let close: () => Promise<void>;
    let keyId: string;
    beforeAll(async () => {
      ({ keys, usage, close } = await open());
      const keyward = new Keyward({ store: keys });
      keyId = (
        await keyward.createKey(
          { owner: { type: "user", id: "alice" }, name: "k", environment: "sandbox", scopes: [] },
          { actor: { type: "cli", id: "t" } },
        )
      ).record.id;
    });
    afterAll(async () => close());

    const count = (minute: number, outcome: UsageCount["outcome"], n: number, id = keyId): UsageCount => ({
      minute,
      keyId: id,
      owner: id ? "user:alice" : "",
      outcome,
      count: n,
    });

    it("adds counts across flushes and sums them into buckets", async () => {
      await usage.writeUsage([count(T0, "VALID", 3), count(T0 + MINUTE, "VALID", 2), count(T0, "RATE_LIMITED", 1)], []);
      await usage.writeUsage([count(T0, "VALID", 4), count(T0 + 61 * MINUTE, "VALID", 1), count(T0, "NOT_FOUND", 9, "")], []);
      const hourly = await usage.queryUsage({ bucket: "hour", since: T0, until: T0 + 2 * 60 * MINUTE, limit: 100, keyId });
      expect(hourly).toEqual([
        { start: T0, keyId, outcome: "RATE_LIMITED", count: 1 },
        { start: T0, keyId, outcome: "VALID", count: 9 },
        { start: T0 + 60 * MINUTE, keyId, outcome: "VALID", count: 1 },
      ]);
      const minutes = await usage.queryUsage({ bucket: "minute", since: T0, until: T0 + 2 * MINUTE, limit: 100, outcome: "VALID", keyId });
      expect(minutes.map((r) => r.count)).toEqual([7, 2]);
      const byOwner = await usage.queryUsage({
        bucket: "day",
        since: T0 - 86_400_000,
        until: T0 + 86_400_000,
        limit: 100,
        owner: "user:alice",
      });
      expect(byOwner.reduce((sum, r) => sum + r.count, 0)).toBe(11);
      const unidentified = await usage.queryUsage({ bucket: "day", since: T0 - 86_400_000, until: T0 + 86_400_000, limit: 100, keyId: "" });
      expect(unidentified).toEqual([{ start: Date.UTC(2026, 10, 23), keyId: "", outcome: "NOT_FOUND", count: 9 }]);
    });

    it("sums over keys by outcome for a whole deployment's chart", async () => {
      const other = "key_grouped_other";
      await usage.writeUsage([count(T0, "VALID", 5), count(T0, "VALID", 6, other), count(T0 + MINUTE, "NOT_FOUND", 2, "")], []);
      const since = T0 - 86_400_000;
      const until = T0 + 86_400_000;
      const byKey = await usage.queryUsage({ bucket: "day", since, until, limit: 1_000 });
      const grouped = await usage.queryUsage({ bucket: "day", since, until, limit: 1_000, groupBy: "outcome" });
      expect(grouped.every((row) => row.keyId === "")).toBe(true);
      expect(new Set(grouped.map((row) => row.outcome)).size).toBe(grouped.length);
      // The same totals per outcome as the per-key rows, in one row each.
      const totals = (rows: typeof byKey) => {
        const sum: Record<string, number> = {};
        for (const row of rows) sum[row.outcome] = (sum[row.outcome] ?? 0) + row.count;
        return sum;
      };
      expect(totals(grouped)).toEqual(totals(byKey));
      expect(byKey.length).toBeGreaterThan(grouped.length);
    });

    it("moves last_used_at and the client address forward, never back", async () => {
      await usage.writeUsage([], [{ keyId, at: T0 + 5_000, ip: "203.0.113.9" }]);
      await usage.writeUsage([], [{ keyId, at: T0 + 1_000, ip: "198.51.100.1" }]);
      const key = await keys.getKey(keyId);
      expect(key?.lastUsedAt).toBe(T0 + 5_000);
      expect(key?.lastUsedIp).toBe("203.0.113.9");
    });

    it("prunes counts older than the retention", async () => {
      await usage.writeUsage([count(T0 - 100 * 86_400_000, "VALID", 1)], []);
      expect(await usage.pruneUsage(T0 - 90 * 86_400_000)).toBe(1);
    });
  });
}

usageStoreContract("memory", async () => {
  const keys = new MemoryKeyStore();
  return { keys, usage: new MemoryUsageStore(keys), close: async () => {} };
});

usageStoreContract("sqlite", async () => {
  const dir = mkdtempSync(join(tmpdir(), "keyward-usage-"));
  const keys = new SqliteKeyStore({ filename: join(dir, "k.db") });
  await keys.migrate();
  const { usage } = await storesBeside(keys);
  return {
    keys,
    usage,
    close: async () => {
      await keys.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe.runIf(haveBackends)("postgres", () => {
  usageStoreContract("postgres", async () => {
    const { schema, drop } = await createTestSchema();
    const keys = new PostgresKeyStore({ connectionString: DATABASE_URL, schema });
    await keys.migrate();
    const { usage } = await storesBeside(keys);
    return {
      keys,
      usage,
      close: async () => {
        await keys.close();
        await drop();
      },
    };
  });
});

describe("BufferedUsageRecorder", () => {
  const event = (keyId: string | null, at = T0) => ({ keyId, code: "VALID" as const, at, ip: "192.0.2.1", owner: undefined });

  it("aggregates in memory and writes nothing until a flush", async () => {
    const keys = new MemoryKeyStore();
    const store = new MemoryUsageStore(keys);
    const recorder = new BufferedUsageRecorder({ store, flushIntervalMs: 60_000 });
    for (let i = 0; i < 1_000; i++) recorder.record(event(null));
    expect(await store.queryUsage({ bucket: "minute", since: 0, until: T0 + MINUTE, limit: 10 })).toEqual([]);
    expect(recorder.stats.entries).toBe(1);
    await recorder.close();
    expect(await store.queryUsage({ bucket: "minute", since: 0, until: T0 + MINUTE, limit: 10 })).toEqual([
      { start: T0, keyId: "", outcome: "VALID", count: 1_000 },
    ]);
  });

  it("flushes on its interval", async () => {
    const store = new MemoryUsageStore(new MemoryKeyStore());
    const recorder = new BufferedUsageRecorder({ store, flushIntervalMs: 50 });
    recorder.record(event(null));
    await expect.poll(() => recorder.stats.flushes, { timeout: 2_000 }).toBe(1);
    await recorder.close();
  });

  it("is bounded: past maxEntries rows, new events are dropped and counted", async () => {
    const store = new MemoryUsageStore(new MemoryKeyStore());
    const recorder = new BufferedUsageRecorder({ store, flushIntervalMs: 60_000, maxEntries: 100, flushAtEntries: 1_000 });
    for (let i = 0; i < 150; i++) recorder.record(event(`key_${i}`));
    expect(recorder.stats.entries).toBe(100);
    expect(recorder.stats.dropped).toBe(50);
    await recorder.close();
  });

  it("loses no event across early flushes and failed writes (every event counted once)", async () => {
    const real = new MemoryUsageStore(new MemoryKeyStore());
    let writes = 0;
    const flaky: UsageStore = {
      writeUsage: async (counts, lastUses) => {
        // Every third write fails, and the buffer swaps out early every 10 rows.
        if (++writes % 3 === 0) throw new Error("database is down");
        await real.writeUsage(counts, lastUses);
      },
      queryUsage: (q) => real.queryUsage(q),
      pruneUsage: (b) => real.pruneUsage(b),
    };
    const recorder = new BufferedUsageRecorder({ store: flaky, flushIntervalMs: 60_000, flushAtEntries: 10 });
    for (let i = 0; i < 10_000; i++) {
      recorder.record({ ...event(`key_${i % 37}`, T0 + Math.floor(i / 3_000) * MINUTE), code: i % 50 === 0 ? "RATE_LIMITED" : "VALID" });
      if (i % 97 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    while (recorder.stats.entries > 0) await recorder.flush();
    await recorder.close();
    const rows = await real.queryUsage({ bucket: "day", since: 0, until: T0 + 86_400_000, limit: 1_000 });
    expect(rows.reduce((sum, r) => sum + r.count, 0)).toBe(10_000);
    expect(recorder.stats.dropped).toBe(0);
  });

  it("keeps a failed batch for the next flush", async () => {
    const real = new MemoryUsageStore(new MemoryKeyStore());
    let failing = true;
    const errors: unknown[] = [];
    const flaky: UsageStore = {
      writeUsage: async (counts, lastUses) => {
        if (failing) throw new Error("database is down");
        await real.writeUsage(counts, lastUses);
      },
      queryUsage: (q) => real.queryUsage(q),
      pruneUsage: (b) => real.pruneUsage(b),
    };
    const recorder = new BufferedUsageRecorder({ store: flaky, flushIntervalMs: 60_000, onFlushError: (e) => errors.push(e) });
    recorder.record(event(null));
    await recorder.flush();
    expect(errors).toHaveLength(1);
    recorder.record(event(null));
    failing = false;
    await recorder.close();
    expect((await real.queryUsage({ bucket: "minute", since: 0, until: T0 + MINUTE, limit: 10 }))[0]?.count).toBe(2);
  });
});

describe("usage journal (SQLite)", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "keyward-journal-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function openFile(name: string) {
    const keys = new SqliteKeyStore({ filename: join(dir, name) });
    await keys.migrate();
    const { usage } = await storesBeside(keys);
    const journal = usage.journal as UsageJournal;
    return { keys, usage, journal };
  }

  async function createKey(keys: KeyStore) {
    const keyward = new Keyward({ store: keys });
    const created = await keyward.createKey(
      { owner: { type: "user", id: "alice" }, name: "k", environment: "sandbox", scopes: [] },
      { actor: { type: "cli", id: "t" } },
    );
    return created.record.id;
  }

  /** A writer whose process has ended: a child that already exited. */
  const deadWriter = (id: string): UsageWriter => ({ id, host: hostname(), pid: spawnSync(process.execPath, ["-e", ""]).pid as number });
  const liveWriter = (id: string): UsageWriter => ({ id, host: hostname(), pid: process.pid });
  const valid = (keyId: string, n: number): UsageCount => ({ minute: T0, keyId, owner: "user:alice", outcome: "VALID", count: n });
  const journalRows = (keys: SqliteKeyStore) => (keys.db.prepare("SELECT count(*) AS n FROM usage_journal").get() as { n: number }).n;
  const minuteCount = async (usage: UsageStore, keyId: string) =>
    (await usage.queryUsage({ bucket: "minute", since: T0, until: T0 + MINUTE, limit: 10, keyId }))[0]?.count ?? 0;

  it("a flush is one journal row; a fold adds the sum once and empties the writer's journal", async () => {
    const { keys, usage } = await openFile("fold.db");
    const keyId = await createKey(keys);
    const recorder = new BufferedUsageRecorder({ store: usage, flushIntervalMs: 60_000, writer: liveWriter("w1") });
    const use = (at: number, ip: string) => recorder.record({ keyId, code: "VALID", at, ip, owner: { type: "user", id: "alice" } });
    use(T0 + 9_000, "203.0.113.9");
    await (recorder as unknown as { writeBuffer(): Promise<void> }).writeBuffer();
    use(T0 + 1_000, "198.51.100.1");
    use(T0 + 2_000, "198.51.100.1");
    await (recorder as unknown as { writeBuffer(): Promise<void> }).writeBuffer();
    expect(journalRows(keys)).toBe(2);
    expect(await minuteCount(usage, keyId)).toBe(0);
    await recorder.flush();
    expect(recorder.stats.folds).toBe(1);
    expect(journalRows(keys)).toBe(0);
    expect(await minuteCount(usage, keyId)).toBe(3);
    const key = await keys.getKey(keyId);
    expect(key?.lastUsedAt).toBe(T0 + 9_000);
    expect(key?.lastUsedIp).toBe("203.0.113.9");
    await recorder.close();
    await keys.close();
  });

  it("flush() shows every use recorded before it, even with a write and a fold already under way", async () => {
    // The race a CI run caught (`GET /v1/usage` right after a request): the flush joined a
    // write and a fold that had taken their rows before the last use was recorded.
    const { keys, usage } = await openFile("joined.db");
    const keyId = await createKey(keys);
    const recorder = new BufferedUsageRecorder({ store: usage, flushIntervalMs: 60_000, writer: liveWriter("joined") });
    const use = (at: number, ip: string) => recorder.record({ keyId, code: "VALID", at, ip, owner: { type: "user", id: "alice" } });
    use(T0 + 1_000, "198.51.100.1");
    const first = recorder.flush();
    use(T0 + 2_000, "203.0.113.9");
    await recorder.flush();
    expect(await minuteCount(usage, keyId)).toBe(2);
    expect(await keys.getKey(keyId)).toMatchObject({ lastUsedAt: T0 + 2_000, lastUsedIp: "203.0.113.9" });
    await first;
    // A flush while a fold is between its slices: the use recorded meanwhile is folded too.
    use(T0 + 3_000, "192.0.2.7");
    const folding = recorder.flush();
    await new Promise((resolve) => setImmediate(resolve));
    use(T0 + 4_000, "192.0.2.8");
    await recorder.flush();
    await folding;
    expect(await minuteCount(usage, keyId)).toBe(4);
    expect(await keys.getKey(keyId)).toMatchObject({ lastUsedAt: T0 + 4_000, lastUsedIp: "192.0.2.8" });
    await recorder.close();
    await keys.close();
  });

  it("a fold stopped after some slices leaves counts plus journal exact, and a recovery finishes it", async () => {
    const { keys, usage, journal } = await openFile("slices.db");
    const keyIds = [await createKey(keys), await createKey(keys), await createKey(keys)];
    const writer = deadWriter("dead-mid-fold");
    const upTo = await journal.append(
      writer,
      encodeUsageBatch(
        keyIds.map((id) => valid(id, 4)),
        [],
      ),
    );
    expect(upTo).toBeGreaterThan(0);
    // The first slice (one key) is added, then the process dies before the rest and before endFold.
    expect(await journal.applySlice(writer.id, 1, [valid(keyIds[0] as string, 4)], [])).toBe(true);
    expect(await minuteCount(usage, keyIds[0] as string)).toBe(4);
    expect(await journal.recoverOrphans()).toBe(1);
    expect(journalRows(keys)).toBe(0);
    for (const id of keyIds) expect(await minuteCount(usage, id)).toBe(4);
    // A writer that is gone cannot add slices any more: its journal was folded for it.
    expect(await journal.applySlice(writer.id, 2, [valid(keyIds[0] as string, 4)], [])).toBe(false);
    expect(await minuteCount(usage, keyIds[0] as string)).toBe(4);
    await keys.close();
  });

  it("a fold ended but not yet purged: its dead rows are never counted again, and a flush after it is", async () => {
    const { keys, usage, journal } = await openFile("watermark.db");
    const keyId = await createKey(keys);
    const writer = deadWriter("dead-after-fold");
    const upTo = await journal.append(writer, encodeUsageBatch([valid(keyId, 3)], []));
    expect(await journal.applySlice(writer.id, 1, [valid(keyId, 3)], [])).toBe(true);
    await journal.endFold(writer.id, 1, upTo);
    // A flush after the fold's watermark: alive, not yet folded.
    await journal.append(writer, encodeUsageBatch([valid(keyId, 2)], []));
    expect(journalRows(keys)).toBe(3);
    // Purged in chunks: only the two dead rows (the folded flush and its cancelling row) go.
    expect(await journal.purgeFolded(writer.id, 1)).toBe(1);
    expect(journalRows(keys)).toBe(2);
    // The process dies mid-purge; the recovery adds the live flush only.
    expect(await journal.recoverOrphans()).toBe(1);
    expect(await minuteCount(usage, keyId)).toBe(5);
    expect(journalRows(keys)).toBe(0);
    await keys.close();
  });

  it("a live writer's journal is left alone; a killed process's flushes are recovered by the next one", async () => {
    const { keys, usage, journal } = await openFile("orphans.db");
    const keyId = await createKey(keys);
    await journal.append(liveWriter("alive"), encodeUsageBatch([valid(keyId, 2)], []));
    await journal.append(deadWriter("killed"), encodeUsageBatch([valid(keyId, 5)], [{ keyId, at: T0 + 3_000, ip: "192.0.2.7" }]));
    const next = new BufferedUsageRecorder({ store: usage, flushIntervalMs: 60_000 });
    await next.flush();
    expect(await minuteCount(usage, keyId)).toBe(5);
    expect((await keys.getKey(keyId))?.lastUsedIp).toBe("192.0.2.7");
    expect(journalRows(keys)).toBe(1);
    await next.close();
    await keys.close();
  });

  it("every use counted exactly once through early flushes, folds under way, and failed appends and slices", async () => {
    const { keys, usage, journal } = await openFile("exact.db");
    const keyIds = await Promise.all(Array.from({ length: 5 }, () => createKey(keys)));
    let failing = true;
    let calls = 0;
    const flakyJournal: UsageJournal = {
      append: (writer, batch) => {
        if (failing && ++calls % 4 === 0) return Promise.reject(new Error("disk full"));
        return journal.append(writer, batch);
      },
      applySlice: (writer, fold, counts, lastUses) => {
        if (failing && ++calls % 3 === 0) return Promise.reject(new Error("database is locked"));
        return journal.applySlice(writer, fold, counts, lastUses);
      },
      endFold: (writer, fold, upTo) => journal.endFold(writer, fold, upTo),
      purgeFolded: (writer, limit) => journal.purgeFolded(writer, limit),
      recoverOrphans: () => journal.recoverOrphans(),
      retire: (writer) => journal.retire(writer),
    };
    const store: UsageStore = {
      ...usage,
      queryUsage: (q) => usage.queryUsage(q),
      pruneUsage: (b) => usage.pruneUsage(b),
      journal: flakyJournal,
    };
    const errors: unknown[] = [];
    const recorder = new BufferedUsageRecorder({
      store,
      flushIntervalMs: 2,
      flushAtEntries: 3,
      foldIntervalMs: 5,
      writer: liveWriter("exact"),
      onFlushError: (e) => errors.push(e),
    });
    const total = 6_000;
    for (let i = 0; i < total; i++) {
      const keyId = keyIds[i % keyIds.length] as string;
      recorder.record({
        keyId,
        code: i % 7 === 0 ? "RATE_LIMITED" : "VALID",
        at: T0 + (i % 3) * 1_000,
        ip: `192.0.2.${i % 3}`,
        owner: { type: "user", id: "alice" },
      });
      if (i % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(errors.length).toBeGreaterThan(0);
    failing = false;
    await recorder.close();
    const rows = await usage.queryUsage({ bucket: "day", since: T0 - 86_400_000, until: T0 + 86_400_000, limit: 100 });
    expect(rows.reduce((sum, r) => sum + r.count, 0)).toBe(total);
    expect(recorder.stats.dropped).toBe(0);
    expect(journalRows(keys)).toBe(0);
    // Each key's last use is its latest valid one, with that use's address, through the same failures.
    for (const keyId of keyIds) expect(await keys.getKey(keyId)).toMatchObject({ lastUsedAt: T0 + 2_000, lastUsedIp: "192.0.2.2" });
    await keys.close();
  });

  it("two processes on one file: each folds its own flushes, every use counted once", async () => {
    const a = await openFile("shared.db");
    const keyId = await createKey(a.keys);
    const b = await openFile("shared.db");
    const ra = new BufferedUsageRecorder({ store: a.usage, flushIntervalMs: 5, foldIntervalMs: 30, writer: liveWriter("a") });
    const rb = new BufferedUsageRecorder({ store: b.usage, flushIntervalMs: 5, foldIntervalMs: 30, writer: liveWriter("b") });
    for (let i = 0; i < 200; i++) {
      (i % 2 ? ra : rb).record({ keyId, code: "VALID", at: T0, ip: "192.0.2.1", owner: { type: "user", id: "alice" } });
      if (i % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 3));
    }
    await ra.close();
    await rb.close();
    expect(await minuteCount(a.usage, keyId)).toBe(200);
    expect(journalRows(a.keys)).toBe(0);
    await a.keys.close();
    await b.keys.close();
  });
});
