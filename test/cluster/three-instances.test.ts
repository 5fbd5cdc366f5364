import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backendsAvailable, createTestSchema, DATABASE_URL, REDIS_URL, uniqueRedisPrefix } from "../helpers/backends.js";
import { type ServeProcess, startServeProcess, waitForExit } from "../helpers/process.js";

const available = await backendsAvailable();

/**
 * PRODUCT.md "past one machine": three stateless `keyward serve` processes on one PostgreSQL
 * database and one Redis. The cache maximum age is set to a minute, so only the invalidation
 * channel can explain a revocation seen quickly elsewhere.
 */
describe.skipIf(!available)("three instances on PostgreSQL and Redis", () => {
  let instances: ServeProcess[] = [];
  let dropSchema: () => Promise<void> = async () => {};
  let admin = "";

  beforeAll(async () => {
    const { schema, drop } = await createTestSchema();
    dropSchema = drop;
    const env = {
      KEYWARD_DATABASE_URL: DATABASE_URL,
      KEYWARD_DATABASE_SCHEMA: schema,
      KEYWARD_REDIS_URL: REDIS_URL,
      KEYWARD_REDIS_PREFIX: uniqueRedisPrefix(),
      KEYWARD_CACHE_MAX_AGE_MS: "60000",
      KEYWARD_LOG_LEVEL: "warn",
    };
    const first = await startServeProcess(env);
    admin = /(kw_live_[0-9A-Za-z]{38})/.exec(first.stdout())?.[1] as string;
    instances = [first, ...(await Promise.all([startServeProcess(env), startServeProcess(env)]))];
  }, 60_000);

  afterAll(async () => {
    for (const instance of instances) instance.child.kill("SIGTERM");
    await Promise.all(instances.map((i) => waitForExit(i.child)));
    await dropSchema();
  });

  const createKey = async (on: ServeProcess) => {
    const response = await fetch(`${on.url}/v1/keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify({ owner: { type: "application", id: "cluster" }, name: "c", environment: "production", scopes: ["read"] }),
    });
    expect(response.status).toBe(201);
    return (await response.json()) as { id: string; key: string };
  };
  const introspect = async (on: ServeProcess, key: string) =>
    (await fetch(`${on.url}/v1/introspect`, { headers: { "x-api-key": key } })).status;

  it("prints one bootstrap admin key for the whole cluster", () => {
    expect(admin).toMatch(/^kw_live_/);
    for (const later of instances.slice(1)) expect(later.stdout()).not.toMatch(/kw_live_/);
  });

  it("a key created on one instance works on all", async () => {
    const created = await createKey(instances[0] as ServeProcess);
    for (const instance of instances) expect(await introspect(instance, created.key)).toBe(200);
  });

  it("a revocation on one instance is enforced on the others within 100 ms", async () => {
    const trials = 10;
    let worst = 0;
    for (let trial = 0; trial < trials; trial++) {
      const [origin, ...others] = trial % 2 ? [instances[1], instances[0], instances[2]] : [instances[0], instances[1], instances[2]];
      const created = await createKey(origin as ServeProcess);
      for (const other of others) expect(await introspect(other as ServeProcess, created.key)).toBe(200);
      const revoke = await fetch(`${(origin as ServeProcess).url}/v1/keys/${created.id}/revoke`, {
        method: "POST",
        headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
        body: "{}",
      });
      expect(revoke.status).toBe(200);
      const revokedAt = performance.now();
      for (const other of others) {
        while ((await introspect(other as ServeProcess, created.key)) !== 401) {
          expect(performance.now() - revokedAt, "revocation not seen within the cache age").toBeLessThan(5_000);
        }
        worst = Math.max(worst, performance.now() - revokedAt);
      }
    }
    console.log(`cross-instance revocation: worst of ${trials} trials ${worst.toFixed(1)} ms`);
    expect(worst).toBeLessThan(100);
  });

  it("disabling an owner on one instance disables its keys on the others", async () => {
    const created = await createKey(instances[2] as ServeProcess);
    for (const instance of instances) expect(await introspect(instance, created.key)).toBe(200);
    const response = await fetch(`${(instances[0] as ServeProcess).url}/v1/owners/application/cluster`, {
      method: "PATCH",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify({ disabled: true }),
    });
    expect(response.status).toBe(200);
    await expect
      .poll(async () => Promise.all(instances.map((i) => introspect(i, created.key))), { timeout: 1_000, interval: 10 })
      .toEqual([401, 401, 401]);
  });

  it("a leak report on one instance revokes the key on the others", async () => {
    // The test before disabled the shared owner: enable it again.
    await fetch(`${(instances[0] as ServeProcess).url}/v1/owners/application/cluster`, {
      method: "PATCH",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify({ disabled: false }),
    });
    const created = await createKey(instances[1] as ServeProcess);
    for (const instance of instances) expect(await introspect(instance, created.key)).toBe(200);
    const response = await fetch(`${(instances[0] as ServeProcess).url}/v1/leaks`, {
      method: "POST",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify({ keys: [created.key], source: "cluster test" }),
    });
    expect(((await response.json()) as { revoked: number }).revoked).toBe(1);
    await expect
      .poll(async () => Promise.all(instances.map((i) => introspect(i, created.key))), { timeout: 1_000, interval: 10 })
      .toEqual([401, 401, 401]);
  });
});
