import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Keyward } from "../../src/engine/keyward.js";
import type { KeyStore } from "../../src/ports/key-store.js";
import type { UsageCount, UsageStore } from "../../src/ports/usage-recorder.js";
import { storesBeside } from "../../src/service/store-factory.js";
import { MemoryKeyStore } from "../../src/stores/memory/memory-key-store.js";
import { MemoryUsageStore } from "../../src/stores/memory/memory-usage-store.js";
import { PostgresKeyStore } from "../../src/stores/postgres/postgres-key-store.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";
import { BufferedUsageRecorder } from "../../src/usage/buffered-usage-recorder.js";
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
