import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startInProcessService } from "../helpers/in-process-service.js";
import { PrivatePostgres, privatePostgresAvailable } from "../helpers/private-postgres.js";

const available = privatePostgresAvailable();
if (!available && process.env.CI) throw new Error("PostgreSQL server binaries are required under CI");

/**
 * A hung database (a frozen server: connections open, nothing answers) must be no worse than a
 * stopped one: keys already verified are answered from cache within the stale window, without
 * waiting behind the hung re-read; unknown keys get 503 once the store's own timeout passes.
 */
describe.runIf(available)("PostgreSQL frozen (SIGSTOP)", () => {
  let db: PrivatePostgres;
  let service: Awaited<ReturnType<typeof startInProcessService>>;

  beforeAll(async () => {
    db = await PrivatePostgres.start();
    service = await startInProcessService({
      KEYWARD_DATABASE_URL: db.url,
      KEYWARD_CACHE_MAX_AGE_MS: "100",
      KEYWARD_STALE_WINDOW_MS: "60000",
      KEYWARD_STORE_TIMEOUT_MS: "1000",
      KEYWARD_REFRESH_WAIT_MS: "100",
    });
  }, 60_000);
  afterAll(async () => {
    db?.thaw();
    await service?.close();
    await db?.destroy();
  });

  const create = async () => {
    const response = await fetch(`${service.url}/v1/keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${service.adminKey}`, "content-type": "application/json" },
      body: JSON.stringify({ owner: { type: "application", id: "frozen" }, name: "f", environment: "sandbox", scopes: ["read"] }),
    });
    expect(response.status).toBe(201);
    return (await response.json()) as { id: string; key: string };
  };
  // A request that hangs fails the test instead of waiting for the test's own timeout.
  const authz = (key: string) => fetch(`${service.url}/v1/authz`, { headers: { "x-api-key": key }, signal: AbortSignal.timeout(4_000) });

  it("answers verified keys from cache while the store hangs, 503s unknown keys, and recovers", async () => {
    const known = await create();
    const unknown = await create();
    expect((await authz(known.key)).status).toBe(200);
    db.freeze();
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 20; i++) {
        statuses.push((await authz(known.key)).status);
        await new Promise((resolve) => setTimeout(resolve, 30));
      }
      expect(statuses.every((status) => status === 200)).toBe(true);
      const refused = await authz(unknown.key);
      expect(refused.status).toBe(503);
      expect(refused.headers.get("retry-after")).not.toBeNull();
    } finally {
      db.thaw();
    }
    await expect.poll(async () => (await authz(unknown.key)).status, { timeout: 10_000, interval: 100 }).toBe(200);
  });
});
