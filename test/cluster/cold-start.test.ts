import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisInvalidationChannel } from "../../src/cluster/redis-invalidation.js";
import { Keyward } from "../../src/engine/keyward.js";
import { loadConfig } from "../../src/service/config.js";
import { type RunningService, startService } from "../../src/service/runtime.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";
import { captureLogs } from "../helpers/logs.js";
import { PrivateRedis, privateRedisAvailable } from "../helpers/private-redis.js";

// SQLite and a private redis-server: the machine's PostgreSQL and Redis are not used.
const available = privateRedisAvailable();
const ctx = { actor: { type: "cli" as const, id: "test" } };

/**
 * An instance started while Redis is down subscribes to the invalidation channel once Redis is
 * up, drops its cache then, and says whether it is subscribed (/readyz, a metric, one log line
 * per change). The cache's maximum age is a minute here, so only the channel can deliver a
 * revocation within the test's second.
 */
describe.runIf(available)("a cold start without Redis", () => {
  let dir: string;
  let redis: PrivateRedis;
  let service: RunningService;
  let other: Keyward;
  let otherChannel: RedisInvalidationChannel;
  let logs: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "keyward-cold-"));
    redis = await PrivateRedis.reserve();
    const env = {
      KEYWARD_DATABASE_URL: `sqlite:${join(dir, "k.db")}`,
      KEYWARD_REDIS_URL: redis.url,
      KEYWARD_CACHE_MAX_AGE_MS: "60000",
      KEYWARD_LOG_LEVEL: "info",
    };
    const captured = captureLogs("info");
    logs = captured.lines;
    const config = { ...loadConfig(env), port: 0, host: "127.0.0.1" };
    service = await startService(config, { bootstrap: false, print: () => {}, logger: captured.logger });
  });
  afterAll(async () => {
    await otherChannel?.close();
    await other?.close();
    await service?.close();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("reports the missing subscription, subscribes once Redis is up, and then receives revocations", async () => {
    const ready = async () => (await (await fetch(`${service.url}/readyz`)).json()) as { status: string; checks: Record<string, string> };
    expect(await ready()).toMatchObject({ status: "degraded", checks: { invalidation: "unsubscribed" } });
    expect(await (await fetch(`${service.url}/metrics`)).text()).toMatch(/^keyward_invalidation_subscribed 0$/m);

    const created = await service.keyward.createKey(
      { owner: { type: "application", id: "cold" }, name: "k", environment: "sandbox", scopes: ["read"] },
      ctx,
    );
    expect((await service.keyward.verify(created.key)).code).toBe("VALID");

    await redis.start();
    await expect.poll(async () => (await ready()).status, { timeout: 10_000, interval: 50 }).toBe("ready");
    expect(await (await fetch(`${service.url}/metrics`)).text()).toMatch(/^keyward_invalidation_subscribed 1$/m);

    // Another instance on the same store revokes; only the channel can tell this one in time.
    const store = new SqliteKeyStore({ filename: join(dir, "k.db") });
    await store.migrate();
    other = new Keyward({ store });
    otherChannel = new RedisInvalidationChannel(other, redis.url, { channel: "keyward:invalidate" });
    await otherChannel.start();
    expect((await service.keyward.verify(created.key)).code).toBe("VALID");
    await other.revokeKey(created.record.id, "cold start", ctx);
    await expect.poll(async () => (await service.keyward.verify(created.key)).code, { timeout: 1_000, interval: 5 }).toBe("REVOKED");
  });

  it("logs the loss once per outage, not on every reconnect attempt", async () => {
    await redis.stop();
    await expect
      .poll(async () => ((await (await fetch(`${service.url}/readyz`)).json()) as { status: string }).status, { timeout: 5_000 })
      .toBe("degraded");
    // Several reconnect attempts pass (the back-off tops out at 2 s).
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(logs.filter((line) => line.includes("invalidation channel lost"))).toHaveLength(1);
    await redis.start();
    await expect
      .poll(async () => ((await (await fetch(`${service.url}/readyz`)).json()) as { status: string }).status, { timeout: 10_000 })
      .toBe("ready");
    expect(logs.filter((line) => line.includes("invalidation channel subscribed"))).toHaveLength(2);
  });
});
