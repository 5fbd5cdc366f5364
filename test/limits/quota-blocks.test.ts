import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BlockQuotaCounter, type BlockQuotaCounterOptions } from "../../src/limits/quota-blocks.js";
import type { QuotaCounter } from "../../src/ports/limits.js";
import { MemoryQuotaCounter } from "../../src/stores/memory/memory-quota-counter.js";
import { PostgresKeyStore } from "../../src/stores/postgres/postgres-key-store.js";
import { PostgresQuotaCounter } from "../../src/stores/postgres/postgres-quota-counter.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";
import { SqliteQuotaCounter } from "../../src/stores/sqlite/sqlite-quota-counter.js";
import { backendsAvailable, createTestSchema, DATABASE_URL } from "../helpers/backends.js";
import { fuzzAsync } from "../helpers/fuzz.js";

const haveBackends = await backendsAvailable();

/** A window that ends in an hour (blocks are taken only for windows that end). */
const ENDS = Date.now() + 3_600_000;

/**
 * One store, and `open()` giving another instance's counter on it (SQLite: a connection of its
 * own; PostgreSQL: a pool of its own), as separate processes would have.
 */
interface Backend {
  /** Reads the store's count directly. */
  store: QuotaCounter;
  instance: () => Promise<QuotaCounter>;
  close: () => Promise<void>;
}

let lineages = 0;
const lineage = () => `lin_${process.pid}_${++lineages}`;

/** `n` spends of `cost` at once; how many were admitted. */
async function burst(counter: QuotaCounter, id: string, allowance: number, n: number, cost = 1, window = "d:x"): Promise<number> {
  const results = await Promise.all(Array.from({ length: n }, () => counter.spend(id, window, allowance, cost, ENDS)));
  return results.filter((r) => r !== null).length;
}

function blockSuite(name: string, openBackend: () => Promise<Backend>): void {
  describe(`quota blocks on ${name}`, () => {
    let backend: Backend;
    const opened: BlockQuotaCounter[] = [];
    const blocks = async (options: Omit<BlockQuotaCounterOptions, "store">) => {
      const counter = new BlockQuotaCounter({ store: await backend.instance(), ...options });
      opened.push(counter);
      return counter;
    };
    beforeAll(async () => {
      backend = await openBackend();
    });
    afterAll(async () => {
      for (const counter of opened) await counter.close();
      await backend.close();
    });

    it("the store's refund gives uses back, never below zero", async () => {
      const id = lineage();
      expect(await backend.store.refund?.(id, "d:x", 3)).toBe(0);
      expect(await backend.store.spend(id, "d:x", 10, 4, ENDS)).toBe(4);
      expect(await backend.store.refund?.(id, "d:x", 3)).toBe(1);
      expect(await backend.store.refund?.(id, "d:x", 3)).toBe(0);
      expect(await backend.store.used(id, "d:x")).toBe(0);
    });

    it("the store's takeBlock takes up to max, at most 1/share of the rest, at least min, never past the allowance", async () => {
      const id = lineage();
      const take = (min: number, max: number, share = 4) => backend.store.takeBlock?.(id, "d:x", 100, { min, max, share }, ENDS);
      expect(await take(1, 64)).toEqual({ taken: 25, used: 25 });
      expect(await take(1, 10)).toEqual({ taken: 10, used: 35 });
      expect(await take(1, 64)).toEqual({ taken: 16, used: 51 });
      expect(await take(40, 64)).toEqual({ taken: 40, used: 91 });
      expect(await take(10, 64)).toBeNull();
      expect(await take(1, 64)).toEqual({ taken: 2, used: 93 });
      expect(await take(7, 7)).toEqual({ taken: 7, used: 100 });
      expect(await take(1, 64)).toBeNull();
      expect(await backend.store.used(id, "d:x")).toBe(100);
      // A first take of a window larger than its allowance takes nothing.
      expect(await backend.store.takeBlock?.(lineage(), "d:x", 3, { min: 4, max: 8, share: 1 }, ENDS)).toBeNull();
    });

    it("simultaneous takes never pass the allowance", async () => {
      const id = lineage();
      const counters = await Promise.all([backend.instance(), backend.instance(), backend.instance()]);
      const takes = await Promise.all(
        Array.from({ length: 60 }, (_, i) => counters[i % 3]?.takeBlock?.(id, "d:x", 500, { min: 1, max: 64, share: 2 }, ENDS)),
      );
      const taken = takes.reduce((sum, t) => sum + (t?.taken ?? 0), 0);
      expect(taken).toBe(500);
      expect(await backend.store.used(id, "d:x")).toBe(500);
    });

    it("three instances under demand beyond the allowance admit exactly the allowance", async () => {
      const id = lineage();
      const instances = await Promise.all([0, 1, 2].map(() => blocks({ maxBlock: 64 })));
      const allowance = 2_000;
      let admitted = 0;
      // Waves of simultaneous requests on every instance, until a wave admits nothing anywhere.
      for (;;) {
        const wave = await Promise.all(instances.map((counter) => burst(counter, id, allowance, 50)));
        const sum = wave.reduce((a, b) => a + b, 0);
        admitted += sum;
        if (sum === 0) break;
      }
      expect(admitted).toBe(allowance);
      expect(await backend.store.used(id, "d:x")).toBe(allowance);
      for (const counter of instances) expect(counter.heldUses).toBe(0);
      // Blocks did their job: far fewer conditional updates than requests.
      const takes = instances.reduce((sum, c) => sum + c.stats.takes - c.stats.refusedTakes, 0);
      expect(takes).toBeLessThan(allowance / 4);
    });

    it("close() gives back what an instance holds unspent; used() never counts it", async () => {
      const id = lineage();
      const counter = await blocks({ maxBlock: 64 });
      let admitted = 0;
      for (let i = 0; i < 10; i++) admitted += await burst(counter, id, 100_000, 20);
      expect(admitted).toBe(200);
      expect(counter.heldUses).toBeGreaterThan(0);
      expect(counter.heldUses).toBeLessThanOrEqual(63);
      expect(await backend.store.used(id, "d:x")).toBe(admitted + counter.heldUses);
      expect(await counter.used(id, "d:x")).toBe(admitted);
      await counter.close();
      expect(await backend.store.used(id, "d:x")).toBe(admitted);
    });

    it("a quota of 3 stays exact per request: nothing is ever held", async () => {
      const id = lineage();
      const counter = await blocks({ maxBlock: 64 });
      for (let i = 1; i <= 3; i++) {
        expect(await counter.spend(id, "d:x", 3, 1, ENDS)).not.toBeNull();
        expect(await backend.store.used(id, "d:x")).toBe(i);
        expect(counter.heldUses).toBe(0);
      }
      expect(await counter.spend(id, "d:x", 3, 1, ENDS)).toBeNull();
      expect(await burst(counter, id, 3, 10)).toBe(0);
      // Another instance's view is the same.
      expect(await (await blocks({ maxBlock: 64 })).used(id, "d:x")).toBe(3);
    });

    it("refund gives uses back: into the block when it fits, else to the store, never below zero", async () => {
      const id = lineage();
      const counter = await blocks({ maxBlock: 64 });
      expect(await burst(counter, id, 1_000, 30)).toBe(30);
      const held = counter.heldUses;
      await counter.refund(id, "d:x", 2);
      expect(await counter.used(id, "d:x")).toBe(28);
      // A refund that does not fit in the block goes to the store.
      await counter.refund(id, "d:x", 64);
      expect(await counter.used(id, "d:x")).toBe(0);
      expect(await backend.store.used(id, "d:x")).toBe(Math.max(0, 30 + held - 64));
      expect(await counter.refund(lineage(), "d:x", 5)).toBe(0);
    });

    it("windows and lineages are counted apart; a window that never ends is spent per request", async () => {
      const id = lineage();
      const counter = await blocks({ maxBlock: 64 });
      expect(await burst(counter, id, 5, 10, 1, "d:a")).toBe(5);
      expect(await burst(counter, id, 5, 10, 1, "d:b")).toBe(5);
      expect(await burst(counter, lineage(), 5, 10, 1, "d:a")).toBe(5);
      const lifetime = lineage();
      const results = await Promise.all(Array.from({ length: 40 }, () => counter.spend(lifetime, "total", 1_000, 1, null)));
      expect(results.every((r) => r !== null)).toBe(true);
      expect(await backend.store.used(lifetime, "total")).toBe(40);
    });

    it("a lowered allowance applies at once: the block taken under the old one goes back", async () => {
      const id = lineage();
      const counter = await blocks({ maxBlock: 64 });
      expect(await burst(counter, id, 10_000, 100)).toBe(100);
      expect(counter.heldUses).toBeGreaterThan(0);
      expect(await burst(counter, id, 104, 20)).toBe(4);
      expect(await backend.store.used(id, "d:x")).toBe(104);
    });

    it("an idle counter's unspent uses go back to the store", async () => {
      let now = Date.now();
      const id = lineage();
      const counter = await blocks({ maxBlock: 64, idleReturnMs: 1_000, now: () => now });
      expect(await burst(counter, id, 10_000, 100)).toBe(100);
      const held = counter.heldUses;
      expect(held).toBeGreaterThan(0);
      counter.returnIdle();
      expect(counter.heldUses).toBe(held);
      now += 1_000;
      counter.returnIdle();
      expect(counter.heldUses).toBe(0);
      await counter.spend(id, "d:y", 1, 1, ENDS); // another counter: waits for nothing
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(await backend.store.used(id, "d:x")).toBe(100);
      expect(counter.stats.returnedUses).toBe(held);
    });
  });
}

blockSuite("memory", async () => {
  const store = new MemoryQuotaCounter();
  return { store, instance: async () => store, close: async () => {} };
});

blockSuite("sqlite", async () => {
  const dir = mkdtempSync(join(tmpdir(), "keyward-quota-blocks-"));
  const keys = new SqliteKeyStore({ filename: join(dir, "k.db") });
  await keys.migrate();
  const counters = [new SqliteQuotaCounter(keys.db)];
  return {
    store: counters[0] as SqliteQuotaCounter,
    instance: async () => {
      const counter = new SqliteQuotaCounter(keys.db);
      counters.push(counter);
      return counter;
    },
    close: async () => {
      for (const counter of counters) counter.close();
      await keys.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe.runIf(haveBackends)("postgres", () => {
  blockSuite("postgres", async () => {
    const { schema, drop } = await createTestSchema();
    const open = async () => {
      const keys = new PostgresKeyStore({ connectionString: DATABASE_URL, schema });
      await keys.migrate();
      const counter = new PostgresQuotaCounter(keys.pool);
      await counter.migrate();
      return { keys, counter };
    };
    const first = await open();
    const stores = [first.keys];
    return {
      store: first.counter,
      instance: async () => {
        const next = await open();
        stores.push(next.keys);
        return next.counter;
      },
      close: async () => {
        for (const keys of stores) await keys.close();
        await drop();
      },
    };
  });
});

describe("quota blocks: one take at a time", () => {
  it("spends that arrive while a block is being taken wait for that take (no thundering herd)", async () => {
    const memory = new MemoryQuotaCounter();
    let inFlight = 0;
    let most = 0;
    let calls = 0;
    const slow: QuotaCounter = {
      spend: (...args) => memory.spend(...args),
      used: (...args) => memory.used(...args),
      refund: (...args) => memory.refund(...args),
      takeBlock: async (...args) => {
        calls++;
        most = Math.max(most, ++inFlight);
        await new Promise((resolve) => setTimeout(resolve, 5));
        inFlight--;
        return memory.takeBlock(...args);
      },
    };
    const counter = new BlockQuotaCounter({ store: slow, maxBlock: 64 });
    // Warm up so the block is past size 1 (size-1 takes are plain spends).
    for (let i = 0; i < 4; i++) await counter.spend("hot", "d:x", 1_000_000, 1, ENDS);
    calls = 0;
    expect(await burst(counter, "hot", 1_000_000, 500)).toBe(500);
    expect(most).toBe(1);
    expect(calls).toBeLessThan(20);
    await counter.close();
    expect(await memory.used("hot", "d:x")).toBe(504);
  });

  it("the spends that waited for a take the store refused are refused with it", async () => {
    const memory = new MemoryQuotaCounter();
    let spends = 0;
    const counting: QuotaCounter = {
      spend: async (...args) => {
        spends++;
        await new Promise((resolve) => setTimeout(resolve, 2));
        return memory.spend(...args);
      },
      used: (...args) => memory.used(...args),
      refund: (...args) => memory.refund(...args),
    };
    const counter = new BlockQuotaCounter({ store: counting, maxBlock: 64 });
    expect(await burst(counter, "k", 1, 100)).toBe(1);
    // The first take admitted one; the second was refused, with every spend that waited for it.
    expect(spends).toBe(2);
    await counter.close();
  });

  it("a cold key takes blocks of one: each spend is one conditional update and nothing is held", async () => {
    let now = 0;
    const memory = new MemoryQuotaCounter();
    const counter = new BlockQuotaCounter({ store: memory, maxBlock: 64, now: () => now });
    for (let i = 0; i < 10; i++) {
      now += 5_000;
      expect(await counter.spend("cold", "d:x", 1_000_000, 1, Number.MAX_SAFE_INTEGER)).not.toBeNull();
      expect(counter.heldUses).toBe(0);
    }
    expect(counter.stats.takes).toBe(10);
    await counter.close();
  });

  it("a store error fails the spends that waited for the take, and the next take is tried afresh", async () => {
    const memory = new MemoryQuotaCounter();
    let failing = true;
    const flaky: QuotaCounter = {
      spend: async (...args) => {
        await new Promise((resolve) => setTimeout(resolve, 2));
        if (failing) throw new Error("store down");
        return memory.spend(...args);
      },
      used: (...args) => memory.used(...args),
    };
    const counter = new BlockQuotaCounter({ store: flaky, maxBlock: 64 });
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => counter.spend("k", "d:x", 100, 1, ENDS)));
    expect(results.every((r) => r.status === "rejected")).toBe(true);
    failing = false;
    expect(await counter.spend("k", "d:x", 100, 1, ENDS)).toBe(1);
    await counter.close();
  });
});

describe("quota blocks: property", () => {
  it("over any instances, costs, block sizes and allowances: never over-spent, exact once every instance is refused, nothing held after close", async () => {
    await fuzzAsync(
      fc.asyncProperty(
        fc.record({
          allowance: fc.integer({ min: 1, max: 400 }),
          maxBlock: fc.integer({ min: 1, max: 64 }),
          share: fc.integer({ min: 1, max: 16 }),
          instances: fc.integer({ min: 1, max: 4 }),
          waves: fc.array(fc.array(fc.record({ instance: fc.nat(3), cost: fc.integer({ min: 1, max: 5 }) }), { maxLength: 30 }), {
            maxLength: 8,
          }),
          refunds: fc.array(fc.record({ instance: fc.nat(3), cost: fc.integer({ min: 1, max: 5 }) }), { maxLength: 5 }),
        }),
        async ({ allowance, maxBlock, share, instances, waves, refunds }) => {
          const store = new MemoryQuotaCounter();
          const counters = Array.from({ length: instances }, () => new BlockQuotaCounter({ store, maxBlock, share }));
          const at = (i: number) => counters[i % instances] as BlockQuotaCounter;
          let admitted = 0;
          const spend = async (i: number, cost: number) => {
            if ((await at(i).spend("k", "d:x", allowance, cost, ENDS)) !== null) admitted += cost;
          };
          for (const wave of waves) {
            await Promise.all(wave.map(({ instance, cost }) => spend(instance, cost)));
            expect(admitted).toBeLessThanOrEqual(allowance);
            const held = counters.reduce((sum, c) => sum + c.heldUses, 0);
            expect(await store.used("k", "d:x")).toBe(admitted + held);
            for (const c of counters) expect(c.heldUses).toBeLessThanOrEqual(Math.max(0, maxBlock - 1));
          }
          for (const { instance, cost } of refunds) {
            const give = Math.min(cost, admitted);
            if (give === 0) continue;
            await at(instance).refund("k", "d:x", give);
            admitted -= give;
          }
          // Every instance spends single uses until it is refused: then the allowance is spent exactly.
          for (const counter of counters) while ((await counter.spend("k", "d:x", allowance, 1, ENDS)) !== null) admitted++;
          expect(admitted).toBe(allowance);
          for (const counter of counters) await counter.close();
          expect(await store.used("k", "d:x")).toBe(admitted);
        },
      ),
      { numRuns: 200 },
    );
  });
});
