import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseKeySearch } from "../../src/core/key-search.js";
import { computeKeyStatus, type KeyRecord, type KeyStatus } from "../../src/core/model.js";
import type { KeyListFilter, KeyStore } from "../../src/ports/key-store.js";
import { MemoryKeyStore } from "../../src/stores/memory/memory-key-store.js";
import { PostgresKeyStore } from "../../src/stores/postgres/postgres-key-store.js";
import { bindQuestionMark, buildKeyListWhere } from "../../src/stores/sql-filters.js";
import { SELECT_KEY_ROWS } from "../../src/stores/sqlite/sqlite-key-rows.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";
import { SqliteWebhookStore } from "../../src/stores/sqlite/sqlite-webhook-store.js";
import { backendsAvailable, createTestSchema, DATABASE_URL } from "../helpers/backends.js";
import { makeAudit, makeKey } from "./key-store.contract.js";

const NOW = Date.UTC(2026, 5, 1);
const DAY = 86_400_000;
const available = await backendsAvailable();

/** A spread of keys: names, refs, owners, environments, expiries and every status. */
function fixtureKeys(): KeyRecord[] {
  let n = 0;
  const key = (overrides: Partial<KeyRecord>) =>
    makeKey({ createdAt: NOW - 1_000_000 + n++ * 1000, owner: { type: "user", id: "carol" }, ...overrides });
  return [
    key({ name: "Billing worker", ref: "kw_live_…Ab3x", environment: "production", owner: { type: "application", id: "billing" } }),
    key({ name: "billing backup", ref: "kw_test_…zz01", owner: { type: "user", id: "alice" } }),
    key({ name: "Search INDEXER", ref: "kw_live_…Q9rt", environment: "production", owner: { type: "user", id: "bob" } }),
    key({ name: "50%_off promo", ref: "kw_test_…pr0m", owner: { type: "user", id: "bob" } }),
    key({ name: "500 off", ref: "kw_test_…aaaa" }),
    key({ name: "named Ab3x too", ref: "kw_test_…bbbb", owner: { type: "application", id: "alice" } }),
    key({ name: "soon", ref: "kw_test_…s00n", expiresAt: NOW + 2 * DAY }),
    key({ name: "later", ref: "kw_test_…l8tr", expiresAt: NOW + 30 * DAY }),
    key({ name: "gone", ref: "kw_test_…g0ne", expiresAt: NOW - DAY }),
    key({ name: "revoked soon", ref: "kw_test_…r3vk", expiresAt: NOW + DAY, revokedAt: NOW - 5 }),
    key({ name: "off", ref: "kw_test_…d1sa", enabled: false }),
    key({ name: "waiting", ref: "kw_live_…w41t", environment: "production", awaitingPickup: true }),
    key({ name: "grace over", ref: "kw_test_…gr4c", replacedBy: "key_AAAAAAAAAAAAAAAAAAAA", graceEndsAt: NOW - 1 }),
    key({ name: "in grace", ref: "kw_test_…gr4d", replacedBy: "key_BBBBBBBBBBBBBBBBBBBB", graceEndsAt: NOW + DAY }),
  ];
}

type Opened = { store: KeyStore; cleanup: () => Promise<void> };

const stores: [string, boolean, () => Promise<Opened>][] = [
  ["memory", true, async () => ({ store: new MemoryKeyStore(), cleanup: async () => {} })],
  [
    "sqlite",
    true,
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "keyward-search-"));
      const store = new SqliteKeyStore({ filename: join(dir, "k.db") });
      return {
        store,
        cleanup: async () => {
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  ],
  [
    "postgres",
    available,
    async () => {
      const { schema, drop } = await createTestSchema();
      const store = new PostgresKeyStore({ connectionString: DATABASE_URL, schema });
      return {
        store,
        cleanup: async () => {
          await store.close();
          await drop();
        },
      };
    },
  ],
];

for (const [name, runs, open] of stores) {
  describe.skipIf(!runs)(`key search: ${name}`, () => {
    let opened: Opened;
    const keys = fixtureKeys();
    const byName = new Map(keys.map((k) => [k.name, k.id]));
    const names = (list: KeyRecord[]) => list.map((k) => k.name);

    beforeAll(async () => {
      opened = await open();
      await opened.store.migrate();
      for (const k of keys) await opened.store.insertKey(k, makeAudit("key.created", k.id));
    });
    afterAll(async () => {
      await opened.cleanup();
    });

    /** Every match, newest first, paged two at a time through the cursor; checked against the count. */
    async function all(filter: Omit<KeyListFilter, "now">): Promise<KeyRecord[]> {
      const found: KeyRecord[] = [];
      let after = null;
      do {
        const page = await opened.store.listKeys({ ...filter, now: NOW }, 2, after);
        found.push(...page.keys);
        after = page.next;
      } while (after);
      expect(await opened.store.countKeys({ ...filter, now: NOW })).toBe(found.length);
      return found;
    }
    const search = (q: string) => all({ search: parseKeySearch(q) ?? {} });

    it("finds names by a case-insensitive substring, wildcards taken literally", async () => {
      expect(names(await search("BILLING"))).toEqual(["billing backup", "Billing worker"]);
      expect(names(await search("indexer"))).toEqual(["Search INDEXER"]);
      expect(names(await search("%_"))).toEqual(["50%_off promo"]);
      expect(names(await search("0%"))).toEqual(["50%_off promo"]);
      expect(names(await search("nothing like it"))).toEqual([]);
    });

    it("finds a key by its id, its ref or the ref's last four characters", async () => {
      const billing = byName.get("Billing worker") as string;
      expect(names(await search(billing))).toEqual(["Billing worker"]);
      expect(names(await search("kw_live_…Q9rt"))).toEqual(["Search INDEXER"]);
      expect(names(await search("kw_test_…Q9rt"))).toEqual([]);
      expect(names(await search("…pr0m"))).toEqual(["50%_off promo"]);
      expect(names(await search("...pr0m"))).toEqual(["50%_off promo"]);
      // Four characters: the ref's tail (case-sensitive) or the name (case-insensitive).
      expect(names(await search("Ab3x"))).toEqual(["named Ab3x too", "Billing worker"]);
      expect(names(await search("ab3x"))).toEqual(["named Ab3x too"]);
    });

    it("lists keys expiring within a window: not yet expired, whatever else their status", async () => {
      expect(names(await all({ expiresBy: NOW + 7 * DAY }))).toEqual(["revoked soon", "soon"]);
      expect(names(await all({ expiresBy: NOW + 7 * DAY, status: "active" }))).toEqual(["soon"]);
      expect(names(await all({ expiresBy: NOW + 365 * DAY }))).toEqual(["revoked soon", "later", "soon"]);
    });

    it("filters by owner id alone, by owner, and combines the filters with a search", async () => {
      expect(names(await all({ ownerId: "alice" }))).toEqual(["named Ab3x too", "billing backup"]);
      expect(names(await all({ ownerType: "user", ownerId: "alice" }))).toEqual(["billing backup"]);
      expect(names(await all({ ownerType: "user", ownerId: "bob", search: { name: "promo" } }))).toEqual(["50%_off promo"]);
      expect(names(await all({ environment: "production", search: { name: "billing" } }))).toEqual(["Billing worker"]);
    });

    it("filters by every status as computeKeyStatus tells it", async () => {
      for (const status of ["active", "disabled", "revoked", "expired", "awaiting_pickup"] as KeyStatus[]) {
        const expected = keys
          .filter((k) => computeKeyStatus(k, NOW) === status)
          .sort((a, b) => b.createdAt - a.createdAt)
          .map((k) => k.name);
        expect(names(await all({ status })), status).toEqual(expected);
      }
    });

    it("counts every key without a filter", async () => {
      expect(await opened.store.countKeys()).toBe(keys.length);
      expect(await opened.store.countKeys({ now: NOW })).toBe(keys.length);
    });
  });
}

describe("key search: SQLite query plans (docs/benchmarks.md, key search)", () => {
  let dir: string;
  let store: SqliteKeyStore;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "keyward-plans-"));
    store = new SqliteKeyStore({ filename: join(dir, "k.db") });
    await store.migrate();
    // The expiry index comes with the webhooks module, which every service and CLI start migrates.
    await new SqliteWebhookStore(store).migrate();
  });
  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const plan = (filter: Omit<KeyListFilter, "now">): string => {
    const params: unknown[] = [];
    const where = buildKeyListWhere({ ...filter, now: NOW }, null, bindQuestionMark(params), "sqlite");
    const sql = `EXPLAIN QUERY PLAN ${SELECT_KEY_ROWS} ${where} ORDER BY k.created_at DESC, k.id DESC LIMIT ?`;
    return (store.db.prepare(sql).all(...params, 51) as { detail: string }[]).map((row) => row.detail).join(" | ");
  };

  it("uses an index for every kind of query", () => {
    expect(plan({})).toMatch(/SCAN k USING INDEX keys_listing/);
    expect(plan({ search: { id: "key_AAAAAAAAAAAAAAAAAAAA" } })).toMatch(/SEARCH k USING INDEX sqlite_autoindex_keys_1 \(id=\?\)/);
    expect(plan({ search: { last4: "Ab3x" } })).toMatch(/SEARCH k USING INDEX keys_ref_last4/);
    expect(plan({ search: { ref: "kw_live_…Ab3x" } })).toMatch(/SEARCH k USING INDEX keys_ref_last4/);
    // A substring has no index to seek: the narrow listing index is scanned in order, rows read only when they match.
    expect(plan({ search: { name: "bill" } })).toMatch(/SCAN k USING INDEX keys_listing/);
    expect(plan({ search: { last4: "bill", name: "bill" } })).toMatch(/SCAN k USING INDEX keys_listing/);
    expect(plan({ ownerId: "alice" })).toMatch(/SEARCH k USING INDEX keys_owner/);
    expect(plan({ ownerType: "user", ownerId: "alice", search: { name: "x" } })).toMatch(/SEARCH k USING INDEX keys_owner/);
    expect(plan({ environment: "sandbox" })).toMatch(/keys_environment|keys_listing/);
    expect(plan({ status: "disabled" })).toMatch(/keys_disabled/);
    expect(plan({ status: "awaiting_pickup" })).toMatch(/keys_awaiting_pickup/);
    expect(plan({ expiresBy: NOW + DAY })).toMatch(/SEARCH k USING INDEX keys_expires_at/);
  });
});
