import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { QuotaCounter } from "../../src/ports/limits.js";
import { MemoryQuotaCounter } from "../../src/stores/memory/memory-quota-counter.js";
import { PostgresKeyStore } from "../../src/stores/postgres/postgres-key-store.js";
import { PostgresQuotaCounter } from "../../src/stores/postgres/postgres-quota-counter.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";
import { SqliteQuotaCounter } from "../../src/stores/sqlite/sqlite-quota-counter.js";
import { backendsAvailable, createTestSchema, DATABASE_URL } from "../helpers/backends.js";

const haveBackends = await backendsAvailable();

/** Every QuotaCounter adapter: exact under concurrency, nothing spent on a denial. */
function quotaCounterContract(name: string, open: () => Promise<{ counter: QuotaCounter; close: () => Promise<void> }>): void {
  describe(`QuotaCounter contract: ${name}`, () => {
    let counter: QuotaCounter;
    let close: () => Promise<void>;
    beforeAll(async () => {
      ({ counter, close } = await open());
    });
    afterAll(async () => close());

    it("20 simultaneous spends against 7 admit exactly 7", async () => {
      const results = await Promise.all(Array.from({ length: 20 }, () => counter.spend("lin_a", "total", 7, 1, null)));
      expect(results.filter((r) => r !== null)).toHaveLength(7);
      expect(await counter.used("lin_a", "total")).toBe(7);
    });

    it("a spend that does not fit changes nothing; a smaller one still fits", async () => {
      expect(await counter.spend("lin_b", "d:2026-11-23", 10, 8, 1)).toBe(8);
      expect(await counter.spend("lin_b", "d:2026-11-23", 10, 3, 1)).toBeNull();
      expect(await counter.used("lin_b", "d:2026-11-23")).toBe(8);
      expect(await counter.spend("lin_b", "d:2026-11-23", 10, 2, 1)).toBe(10);
    });

    it("windows and lineages are counted apart", async () => {
      await counter.spend("lin_c", "d:2026-11-23", 1, 1, 1);
      expect(await counter.spend("lin_c", "d:2026-11-24", 1, 1, 1)).toBe(1);
      expect(await counter.spend("lin_d", "d:2026-11-23", 1, 1, 1)).toBe(1);
      expect(await counter.used("lin_e", "total")).toBe(0);
    });
  });
}

quotaCounterContract("memory", async () => ({ counter: new MemoryQuotaCounter(), close: async () => {} }));

quotaCounterContract("sqlite", async () => {
  const dir = mkdtempSync(join(tmpdir(), "keyward-quota-"));
  const store = new SqliteKeyStore({ filename: join(dir, "k.db") });
  await store.migrate();
  return {
    counter: new SqliteQuotaCounter(store.db),
    close: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe.runIf(haveBackends)("postgres", () => {
  quotaCounterContract("postgres", async () => {
    const { schema, drop } = await createTestSchema();
    const store = new PostgresKeyStore({ connectionString: DATABASE_URL, schema });
    await store.migrate();
    const counter = new PostgresQuotaCounter(store.pool);
    await counter.migrate();
    return {
      counter,
      close: async () => {
        await store.close();
        await drop();
      },
    };
  });
});
