import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Keyward } from "../../src/engine/keyward.js";
import { KeyLimitEnforcer } from "../../src/limits/key-limit-enforcer.js";
import { MemoryRateLimiter } from "../../src/limits/memory-rate-limiter.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";
import { SqliteQuotaCounter } from "../../src/stores/sqlite/sqlite-quota-counter.js";
import { rawRequest } from "../helpers/raw-http.js";
import { type RunningApp, SLOW_MS, startExpressApp, startFastifyApp, startHonoApp, startNodeApp } from "./apps.js";

/** The seeds' "synchronous" rule, enforced by the real limiter inside each framework. */
const APPS = { fastify: startFastifyApp, express: startExpressApp, hono: startHonoApp, "node:http": startNodeApp };

let dir: string;
let keyward: Keyward;
let limiter: KeyLimitEnforcer;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "keyward-limits-mw-"));
  const store = new SqliteKeyStore({ filename: join(dir, "k.db") });
  await store.migrate();
  limiter = new KeyLimitEnforcer({ rates: new MemoryRateLimiter(), quotas: new SqliteQuotaCounter(store.db) });
  keyward = new Keyward({ store, limits: limiter });
});
afterAll(async () => {
  await keyward.close();
  rmSync(dir, { recursive: true, force: true });
});

const newKey = async (extra: Record<string, unknown>) =>
  keyward.createKey(
    { owner: { type: "application", id: "integrator" }, name: "k", environment: "sandbox", scopes: ["read"], ...extra },
    { actor: { type: "cli", id: "test" } },
  );

for (const [name, start] of Object.entries(APPS)) {
  describe(`${name} with a concurrency-1 key`, () => {
    let app: RunningApp;
    beforeAll(async () => {
      app = await start(keyward);
    });
    afterAll(async () => app.close());

    const inFlight = async (record: Awaited<ReturnType<typeof newKey>>["record"]) =>
      (await keyward.inspectLimits(record)).concurrency?.in_flight;

    it("exactly one request is in flight at a time", async () => {
      const { key, record } = await newKey({ concurrency: 1 });
      const headers = { "x-api-key": key };
      const responses = await Promise.all(Array.from({ length: 5 }, () => rawRequest(app.url, { path: "/slow", headers })));
      expect(responses.map((r) => r.status).sort()).toEqual([200, 429, 429, 429, 429]);
      expect(responses.filter((r) => r.status === 429).every((r) => JSON.parse(r.body).code === "CONCURRENCY_LIMITED")).toBe(true);
      expect(await inFlight(record)).toBe(0);
      expect((await rawRequest(app.url, { path: "/read", headers })).status).toBe(200);
    });

    it("the slot comes back after a failing handler and after the client aborts", async () => {
      const { key, record } = await newKey({ concurrency: 1 });
      const headers = { "x-api-key": key };
      await rawRequest(app.url, { path: "/boom", headers }).catch(() => undefined);
      expect(await inFlight(record)).toBe(0);
      for (let round = 0; round < 3; round++) {
        const aborted = new AbortController();
        const pending = fetch(`${app.url}/slow`, { headers, signal: aborted.signal }).catch(() => undefined);
        await expect.poll(() => inFlight(record), { timeout: 2_000, interval: 10 }).toBe(1);
        aborted.abort();
        await pending;
        await expect.poll(() => inFlight(record), { timeout: SLOW_MS * 4, interval: 10 }).toBe(0);
      }
      expect((await rawRequest(app.url, { path: "/read", headers })).status).toBe(200);
    });
  });
}
