import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import type { RequestContext } from "../../src/core/model.js";
import { loadConfig } from "../../src/service/config.js";
import { assembleKeyward } from "../../src/service/open-keyward.js";
import { storesBeside } from "../../src/service/store-factory.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";

const context: RequestContext = { actor: { type: "cli", id: "test" } };

describe("KEYWARD_QUOTA_BLOCK_MAX", () => {
  it("is 64 by default, 0 turns blocks off, and it must be an integer from 0 to 1,000,000", () => {
    expect(loadConfig({}).quotaBlockMax).toBe(64);
    expect(loadConfig({ KEYWARD_QUOTA_BLOCK_MAX: "0" }).quotaBlockMax).toBe(0);
    expect(loadConfig({ KEYWARD_QUOTA_BLOCK_MAX: "256" }).quotaBlockMax).toBe(256);
    expect(() => loadConfig({ KEYWARD_QUOTA_BLOCK_MAX: "-1" })).toThrow(/KEYWARD_QUOTA_BLOCK_MAX/);
    expect(() => loadConfig({ KEYWARD_QUOTA_BLOCK_MAX: "1.5" })).toThrow(/KEYWARD_QUOTA_BLOCK_MAX/);
  });

  for (const [setting, blocks] of [
    ["64", true],
    ["0", false],
  ] as const) {
    it(`the serving engine ${blocks ? "spends a busy key's quota in blocks" : "spends per request"} (KEYWARD_QUOTA_BLOCK_MAX=${setting}); exact after close`, async () => {
      const dir = mkdtempSync(join(tmpdir(), "keyward-quota-blocks-"));
      const filename = join(dir, "k.db");
      try {
        const store = new SqliteKeyStore({ filename });
        await store.migrate();
        const config = loadConfig({ KEYWARD_DATABASE_URL: `sqlite:${filename}`, KEYWARD_QUOTA_BLOCK_MAX: setting });
        const keyward = assembleKeyward(config, await storesBeside(store));
        const { key, record } = await keyward.createKey(
          {
            owner: { type: "user", id: "alice" },
            name: "hot",
            environment: "sandbox",
            scopes: ["read"],
            quota: { limit: 10_000, period: "month" },
          },
          context,
        );
        const reader = new Database(filename, { readonly: true });
        const stored = () =>
          (
            reader.prepare("SELECT COALESCE(SUM(used), 0) AS used FROM quota_counters WHERE lineage_id = ?").get(record.lineageId) as {
              used: number;
            }
          ).used;
        let admitted = 0;
        // What the store counts beyond the requests admitted: the block this instance holds unspent.
        let mostHeld = 0;
        for (let wave = 0; wave < 6; wave++) {
          const results = await Promise.all(Array.from({ length: 40 }, () => keyward.verify(key, { scopes: ["read"] })));
          admitted += results.filter((r) => r.valid).length;
          const held = stored() - admitted;
          expect(held).toBeGreaterThanOrEqual(0);
          expect(held).toBeLessThanOrEqual(63);
          mostHeld = Math.max(mostHeld, held);
        }
        expect(admitted).toBe(240);
        // Introspection counts only what was admitted, not the unspent block.
        expect((await keyward.inspectLimits(await keyward.getKey(record.id))).quota).toMatchObject({ used: 240, remaining: 9_760 });
        if (blocks) expect(mostHeld).toBeGreaterThan(0);
        else expect(mostHeld).toBe(0);
        await keyward.close();
        expect(stored()).toBe(240);
        reader.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
