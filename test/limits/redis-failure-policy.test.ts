import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isKeywardError } from "../../src/core/errors.js";
import { gcraParams } from "../../src/core/rate-limit.js";
import { type LimiterFailurePolicy, RedisRateLimiter } from "../../src/limits/redis-rate-limiter.js";
import type { LimiterMode } from "../../src/ports/limits.js";
import { PrivateRedis, privateRedisAvailable } from "../helpers/private-redis.js";

// A private redis-server (a local process): the machine's Redis is not used.
const haveRedisServer = privateRedisAvailable();
const twoPerMinute = gcraParams({ requests: 2, per_seconds: 60 });

async function untilMode(limiter: RedisRateLimiter, mode: LimiterMode): Promise<void> {
  for (let i = 0; i < 200; i++) {
    await limiter.countSlots("probe", Date.now()).catch(() => undefined);
    if (limiter.mode === mode) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`limiter never reached ${mode} (is ${limiter.mode})`);
}

describe.runIf(haveRedisServer)("limiter when Redis fails", () => {
  let redis: PrivateRedis;
  beforeAll(async () => {
    redis = await PrivateRedis.start();
  });
  afterAll(async () => {
    await redis.stop();
  });

  const open = (policy: LimiterFailurePolicy, modes: LimiterMode[] = []) =>
    new RedisRateLimiter({
      redis: redis.url,
      prefix: `p-${policy}-${Date.now()}:`,
      failurePolicy: policy,
      onModeChange: (m) => modes.push(m),
    });

  it("degrade: per-instance limits while Redis is down (never unlimited), shared again once it is back", async () => {
    const modes: LimiterMode[] = [];
    const limiter = open("degrade", modes);
    try {
      await untilMode(limiter, "shared");
      modes.length = 0;
      await redis.stop();
      const now = Date.now();
      const outcomes = await Promise.all(Array.from({ length: 5 }, () => limiter.consumeRate("k1", twoPerMinute, 1, now)));
      expect(outcomes.filter((o) => o.allowed)).toHaveLength(2);
      expect(limiter.mode).toBe("degraded");
      // The in-process fallback holds concurrency too.
      expect(await limiter.acquireSlot("k2", 1, "lease_a", 60_000, now)).toBe(true);
      expect(await limiter.acquireSlot("k2", 1, "lease_b", 60_000, now)).toBe(false);
      await redis.start();
      await untilMode(limiter, "shared");
      expect(modes).toEqual(["degraded", "shared"]);
    } finally {
      await limiter.close();
      await redis.start();
    }
  });

  it("open: rate and concurrency are not enforced while Redis is down", async () => {
    const limiter = open("open");
    try {
      await untilMode(limiter, "shared");
      await redis.stop();
      const now = Date.now();
      const outcomes = await Promise.all(Array.from({ length: 5 }, () => limiter.consumeRate("k1", twoPerMinute, 1, now)));
      expect(outcomes.every((o) => o.allowed)).toBe(true);
      expect(limiter.mode).toBe("open");
    } finally {
      await limiter.close();
      await redis.start();
    }
  });

  it("closed: calls fail with LIMITER_UNAVAILABLE (503) while Redis is down", async () => {
    const limiter = open("closed");
    try {
      await untilMode(limiter, "shared");
      await redis.stop();
      const error = await limiter.consumeRate("k1", twoPerMinute, 1, Date.now()).catch((e: unknown) => e);
      expect(isKeywardError(error) && error.code === "LIMITER_UNAVAILABLE" && error.status === 503).toBe(true);
    } finally {
      await limiter.close();
      await redis.start();
    }
  });

  it("a slow Redis: each call gives up within the timeout and the fallback answers", async () => {
    const limiter = new RedisRateLimiter({ redis: redis.url, prefix: `slow-${Date.now()}:`, timeoutMs: 100 });
    try {
      await untilMode(limiter, "shared");
      await redis.pause(1_500);
      const started = performance.now();
      const outcome = await limiter.consumeRate("k1", twoPerMinute, 1, Date.now());
      const took = performance.now() - started;
      expect(outcome.allowed).toBe(true);
      expect(limiter.mode).toBe("degraded");
      // The bound is the 100 ms call timeout; the margin is for a loaded machine, not a performance goal.
      expect(took).toBeLessThan(1_000);
      await untilMode(limiter, "shared");
    } finally {
      await limiter.close();
    }
  });
});
