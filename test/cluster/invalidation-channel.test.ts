import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisInvalidationChannel } from "../../src/cluster/redis-invalidation.js";
import { Keyward } from "../../src/engine/keyward.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";
import { PrivateRedis, privateRedisAvailable } from "../helpers/private-redis.js";

// SQLite and a private redis-server: the machine's PostgreSQL and Redis are not used.
const available = privateRedisAvailable();
const MAX_AGE_MS = 400;
const ctx = { actor: { type: "cli" as const, id: "test" } };

/**
 * Issue #5: when the invalidation channel is down, the cache's maximum age still bounds
 * staleness; when it comes back, instances resynchronise (drop what they cached meanwhile).
 * Two engines on one SQLite file stand for two instances; the Redis is a private server.
 */
describe.runIf(available)("the invalidation channel down and back", () => {
  let dir: string;
  let redis: PrivateRedis;
  let a: Keyward;
  let b: Keyward;
  let channels: RedisInvalidationChannel[] = [];
  let statuses: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "keyward-channel-"));
    redis = await PrivateRedis.start();
    const open = async () => {
      const store = new SqliteKeyStore({ filename: join(dir, "k.db") });
      await store.migrate();
      return new Keyward({ store, cache: { maxAgeMs: MAX_AGE_MS } });
    };
    a = await open();
    b = await open();
    channels = [
      new RedisInvalidationChannel(a, redis.url, { channel: "t:invalidate" }),
      new RedisInvalidationChannel(b, redis.url, { channel: "t:invalidate", onStatus: (s) => statuses.push(s) }),
    ];
    await Promise.all(channels.map((c) => c.start()));
  });
  afterAll(async () => {
    await Promise.all(channels.map((c) => c.close()));
    await a.close();
    await b.close();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("with the channel up, a revocation on A reaches B at once", async () => {
    const created = await a.createKey({ owner: { type: "user", id: "u" }, name: "k", environment: "sandbox", scopes: [] }, ctx);
    expect((await b.verify(created.key)).code).toBe("VALID");
    await a.revokeKey(created.record.id, null, ctx);
    await expect.poll(async () => (await b.verify(created.key)).code, { timeout: 100, interval: 5 }).toBe("REVOKED");
  });

  it("with the channel down, B sees the revocation within the cache's maximum age", async () => {
    const created = await a.createKey({ owner: { type: "user", id: "u" }, name: "k", environment: "sandbox", scopes: [] }, ctx);
    expect((await b.verify(created.key)).code).toBe("VALID");
    statuses = [];
    await redis.stop();
    await expect.poll(() => statuses.includes("disconnected"), { timeout: 3_000 }).toBe(true);
    const revokedAt = Date.now();
    await a.revokeKey(created.record.id, null, ctx);
    await expect.poll(async () => (await b.verify(created.key)).code, { timeout: MAX_AGE_MS * 3, interval: 10 }).toBe("REVOKED");
    expect(Date.now() - revokedAt).toBeLessThanOrEqual(MAX_AGE_MS + 250);
  });

  it("after a reconnect, B drops what it cached while the channel was down", async () => {
    const created = await a.createKey({ owner: { type: "user", id: "u" }, name: "k", environment: "sandbox", scopes: [] }, ctx);
    expect((await b.verify(created.key)).code).toBe("VALID");
    expect(b.cache.size.positive).toBeGreaterThan(0);
    await redis.start();
    await expect.poll(() => statuses.includes("connected"), { timeout: 5_000 }).toBe(true);
    expect(b.cache.size).toEqual({ positive: 0, negative: 0 });
  });
});
