import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { gcraParams } from "../../src/core/rate-limit.js";
import { RedisAttemptCounter } from "../../src/limits/redis-attempt-counter.js";
import { RedisRateLimiter } from "../../src/limits/redis-rate-limiter.js";
import { uniqueRedisPrefix } from "../helpers/backends.js";
import { PrivateRedis, privateRedisAvailable } from "../helpers/private-redis.js";
import { createKeyOverHttp, jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

// A private redis-server (a local process) behind a service on SQLite: the machine's Redis is not used.
const available = privateRedisAvailable();

/**
 * Issue 25: a hung Redis (the process frozen with SIGSTOP, its connections open, commands
 * accepted by the kernel and run only when it is let go with SIGCONT), behind a real service on
 * SQLite. What is asserted is behaviour: what is admitted, what Redis was sent, what /readyz says;
 * no latency is measured.
 */
describe.runIf(available)("a hung Redis", () => {
  let redis: PrivateRedis;
  let service: TestService;

  beforeAll(async () => {
    redis = await PrivateRedis.start();
    service = await startTestService({ env: { KEYWARD_REDIS_URL: redis.url, KEYWARD_REDIS_PREFIX: uniqueRedisPrefix() } });
  });
  afterEach(() => {
    // A failed assertion must not leave the server frozen for the next test.
    redis.resume();
  });
  afterAll(async () => {
    redis?.resume();
    await service?.close();
    await redis?.stop();
  });

  const authz = (key: string) => service.call("/v1/authz", { headers: { "x-api-key": key } });
  const code = (response: { text: string }) => (response.text ? (JSON.parse(response.text) as { code?: string }).code : undefined);
  const release = (key: string, leaseId: string | null) =>
    service.call("/v1/leases/release", { method: "POST", headers: jsonHeaders(key), body: JSON.stringify({ lease_id: leaseId }) });
  /** One admitted and released request: Redis has the acquire script loaded, as in any running deployment. */
  async function warmUp(key: string): Promise<void> {
    const first = await authz(key);
    expect(first.status).toBe(200);
    expect((await release(key, first.headers.get("x-keyward-lease"))).status).toBe(204);
  }
  const readyz = async () => {
    const response = await service.call("/readyz");
    return { status: response.status, body: response.json() as { status: string; checks: Record<string, string> } };
  };

  /** Until the limiter decides through Redis again (the gauge every deployment scrapes), driving one rate-limited call at a time. */
  async function untilShared(probeKey: string): Promise<void> {
    await expect
      .poll(
        async () => {
          await authz(probeKey);
          return (await service.call("/metrics")).text.match(/^keyward_limiter_degraded (\d)$/m)?.[1];
        },
        { timeout: 10_000, interval: 50 },
      )
      .toBe("0");
  }

  it("a key with no limits never waits on a hung Redis and sends it nothing", async () => {
    const plain = await createKeyOverHttp(service, {});
    await redis.resetCommandStats();
    redis.suspend();
    // The first use reads the store (the key is not cached yet), the others hit the cache: all
    // are answered while Redis cannot answer anything.
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await authz(plain.key)).status);
    expect(statuses).toEqual(Array(20).fill(200));
    redis.resume();
    // Whatever was sent while it was frozen has run by now: nothing was.
    const calls = await redis.commandCalls();
    expect(Object.keys(calls).filter((name) => name !== "info" && !name.startsWith("config"))).toEqual([]);
  });

  it("a concurrency-1 key is admitted once Redis is back: the acquire that timed out is undone, not left holding the slot", async () => {
    const single = await createKeyOverHttp(service, { concurrency: 1 });
    const rated = await createKeyOverHttp(service, { rate_limit: { requests: 100_000, per_seconds: 1 } });
    await untilShared(rated.key);
    await warmUp(single.key);
    redis.suspend();
    // The acquire times out; this instance's own limiter admits the request. Forward auth never
    // sees the request end and nobody releases the lease, as with nginx in front.
    const during = await authz(single.key);
    expect(during.status).toBe(200);
    expect(during.headers.get("x-keyward-lease")).toMatch(/^lease_/);
    redis.resume();
    // Redis now runs the acquire it was sent while frozen (a 30 s lease), then its removal.
    await untilShared(rated.key);
    const after = await authz(single.key);
    expect([after.status, code(after)]).toEqual([200, undefined]);
  });

  it("a concurrency-1 key whose lease was released while Redis hung is admitted at once after, whichever limiter answers", async () => {
    const single = await createKeyOverHttp(service, { concurrency: 1 });
    const rated = await createKeyOverHttp(service, { rate_limit: { requests: 100_000, per_seconds: 1 } });
    await untilShared(rated.key);
    await warmUp(single.key);
    redis.suspend();
    const during = await authz(single.key);
    expect(during.status).toBe(200);
    expect((await release(single.key, during.headers.get("x-keyward-lease"))).status).toBe(204);
    redis.resume();
    // Right after the wake-up the breaker may still send calls to the fallback; either way the slot is free.
    for (let i = 0; i < 3; i++) {
      const next = await authz(single.key);
      expect([next.status, code(next)]).toEqual([200, undefined]);
      expect((await release(single.key, next.headers.get("x-keyward-lease"))).status).toBe(204);
    }
    await untilShared(rated.key);
    expect((await authz(single.key)).status).toBe(200);
  });

  it("/readyz says the limiter is degraded (200) while Redis hangs under the degrade policy, and ok once it answers", async () => {
    const rated = await createKeyOverHttp(service, { rate_limit: { requests: 100_000, per_seconds: 1 } });
    await untilShared(rated.key);
    expect(await readyz()).toEqual({ status: 200, body: { status: "ready", checks: { store: "ok", limiter: "ok" } } });
    redis.suspend();
    // Answered while Redis is frozen: the probe gives up at the call time limit.
    expect(await readyz()).toEqual({ status: 200, body: { status: "degraded", checks: { store: "ok", limiter: "degraded" } } });
    // The warning names the cause (it used to read `"err": {"message": ""}`).
    const warning = service.logs
      .map((line) => JSON.parse(line) as { msg?: string; err?: { message?: string } })
      .filter((line) => line.msg === "limiter: Redis unreachable, limits are per instance")
      .at(-1);
    expect(warning?.err?.message).toMatch(/\S/);
    redis.resume();
    await expect.poll(async () => (await readyz()).body.checks.limiter, { timeout: 10_000, interval: 100 }).toBe("ok");
  });

  it("/readyz answers 503 while Redis cannot answer under the closed policy, and 200 once it does", async () => {
    const closed = await startTestService({
      env: { KEYWARD_REDIS_URL: redis.url, KEYWARD_REDIS_PREFIX: uniqueRedisPrefix(), KEYWARD_LIMITER_FAILURE: "closed" },
    });
    try {
      const ready = async () => {
        const response = await closed.call("/readyz");
        return { status: response.status, body: response.json() as { status: string; checks: Record<string, string> } };
      };
      await expect.poll(async () => (await ready()).status, { timeout: 10_000, interval: 100 }).toBe(200);
      redis.suspend();
      expect(await ready()).toEqual({ status: 503, body: { status: "unavailable", checks: { store: "ok", limiter: "unreachable" } } });
      redis.resume();
      await expect
        .poll(async () => (await ready()).body, { timeout: 10_000, interval: 100 })
        .toEqual({
          status: "ready",
          checks: { store: "ok", limiter: "ok" },
        });
    } finally {
      redis.resume();
      await closed.close();
    }
  });

  it("after a timeout the limiter skips Redis for the break period: one call waited, the others never reached it", async () => {
    const limiter = new RedisRateLimiter({ redis: redis.url, prefix: uniqueRedisPrefix(), breakMs: 60_000 });
    try {
      await expect
        .poll(async () => (await limiter.countSlots("probe", Date.now())) === 0 && limiter.mode, { timeout: 10_000, interval: 25 })
        .toBe("shared");
      await redis.resetCommandStats();
      redis.suspend();
      const now = Date.now();
      const params = gcraParams({ requests: 5, per_seconds: 60 });
      const outcomes = [];
      for (let i = 0; i < 10; i++) outcomes.push((await limiter.consumeRate("k", params, 1, now)).allowed);
      // Never unlimited: this instance's own bucket answered, 5 of 10.
      expect(outcomes.filter(Boolean)).toHaveLength(5);
      expect(limiter.mode).toBe("degraded");
      redis.resume();
      // What Redis ran after the wake-up is what it was sent while frozen: the one call that timed out.
      const calls = await redis.commandCalls();
      expect((calls.evalsha ?? 0) + (calls.eval ?? 0)).toBe(1);
    } finally {
      await limiter.close();
    }
  });

  it("after a timeout the failed-attempt counter skips Redis for the break period too", async () => {
    const counter = new RedisAttemptCounter({ redis: redis.url, prefix: uniqueRedisPrefix(), breakMs: 60_000 });
    try {
      await expect.poll(() => counter.connected, { timeout: 10_000, interval: 25 }).toBe(true);
      await redis.resetCommandStats();
      redis.suspend();
      const answers = [];
      for (let i = 0; i < 5; i++) answers.push(await counter.increment("192.0.2.1", 60_000));
      // Each instance counts alone meanwhile (FailedAttemptLimiter keeps its own count).
      expect(answers).toEqual([null, null, null, null, null]);
      redis.resume();
      const calls = await redis.commandCalls();
      expect((calls.evalsha ?? 0) + (calls.eval ?? 0)).toBe(1);
    } finally {
      await counter.close();
    }
  });
});
