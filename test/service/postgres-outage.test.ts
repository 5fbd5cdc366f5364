import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateApiKey } from "../../src/core/key-format.js";
import type { Keyward } from "../../src/engine/keyward.js";
import { startInProcessService } from "../helpers/in-process-service.js";
import { PrivatePostgres, privatePostgresAvailable } from "../helpers/private-postgres.js";

// The machine's PostgreSQL packages provide the server binaries; under CI they must be there.
const available = privatePostgresAvailable();
if (!available && process.env.CI) throw new Error("PostgreSQL server binaries are required under CI");

/** SECURITY.md "Database down": served from cache within the stale window, 503 for the rest, nothing half-applied. */
describe.runIf(available)("PostgreSQL down and back", () => {
  let db: PrivatePostgres;
  let keyward: Keyward;
  let url: string;
  let close: () => Promise<void>;
  let admin: string;

  beforeAll(async () => {
    db = await PrivatePostgres.start();
    // A short cache age, so the outage is seen at once; a long stale window, so verified keys keep working.
    ({
      keyward,
      url,
      adminKey: admin,
      close,
    } = await startInProcessService({
      KEYWARD_DATABASE_URL: db.url,
      KEYWARD_CACHE_MAX_AGE_MS: "50",
      KEYWARD_STALE_WINDOW_MS: "60000",
    }));
  }, 60_000);
  afterAll(async () => {
    await close?.();
    await db?.destroy();
  });

  const introspect = (key: string) => fetch(`${url}/v1/introspect`, { headers: { "x-api-key": key } });
  const create = (body: Record<string, unknown> = {}) =>
    fetch(`${url}/v1/keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify({ owner: { type: "user", id: "o" }, name: "o", environment: "sandbox", scopes: ["read"], ...body }),
    });

  it("verified keys keep working, unknown keys and writes get 503 with Retry-After, quotas never fail open; all recovers", async () => {
    const known = (await (await create()).json()) as { id: string; key: string };
    const quota = (await (await create({ quota: { remaining: 100 } })).json()) as { key: string };
    expect((await introspect(known.key)).status).toBe(200);
    expect((await introspect(quota.key)).status).toBe(200);
    const keysBefore = await keyward.store.countKeys();

    await db.stop();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await introspect(known.key)).status).toBe(200);
    const unknown = await introspect(generateApiKey({ prefix: "kw", environment: "sandbox" }));
    expect(unknown.status).toBe(503);
    expect(unknown.headers.get("retry-after")).toBeTruthy();
    expect(((await unknown.json()) as { code: string }).code).toBe("STORE_UNAVAILABLE");
    const spend = await fetch(`${url}/v1/authz`, { headers: { "x-api-key": quota.key } });
    expect(spend.status).toBe(503);
    const write = await create();
    expect(write.status).toBe(503);
    const revoke = await fetch(`${url}/v1/keys/${known.id}/revoke`, {
      method: "POST",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: "{}",
    });
    expect(revoke.status).toBe(503);

    await db.start();
    await expect.poll(async () => (await create()).status, { timeout: 10_000, interval: 200 }).toBe(201);
    // Only the write made after recovery landed; the failed ones left nothing behind.
    expect(await keyward.store.countKeys()).toBe(keysBefore + 1);
    expect((await introspect(known.key)).status).toBe(200);
    expect((await fetch(`${url}/v1/authz`, { headers: { "x-api-key": quota.key } })).status).toBe(200);
  }, 60_000);
});
