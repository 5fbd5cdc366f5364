import { createHash } from "node:crypto";
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { MemoryRateLimiter } from "../../src/limits/memory-rate-limiter.js";
import { RedisRateLimiter } from "../../src/limits/redis-rate-limiter.js";
import {
  ACQUIRE_SLOT_SCRIPT,
  BATCH_SCRIPT,
  COUNT_SLOTS_SCRIPT,
  FAILED_ATTEMPT_SCRIPT,
  PEEK_RATE_SCRIPT,
  PING_SCRIPT,
  RATE_SCRIPT,
} from "../../src/limits/redis-scripts.js";
import { backendsAvailable, REDIS_URL, uniqueRedisPrefix } from "../helpers/backends.js";
import { rateLimiterContract } from "./rate-limiter.contract.js";

const haveBackends = await backendsAvailable();

/** Waits for the connection, so a test runs against Redis and not the fallback. */
async function untilShared(limiter: RedisRateLimiter): Promise<void> {
  for (let i = 0; i < 100; i++) {
    await limiter.countSlots("warmup", Date.now());
    if (limiter.mode === "shared" && i > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error("Redis did not connect");
}

rateLimiterContract("memory", async () => new MemoryRateLimiter());

describe.runIf(haveBackends)("redis", () => {
  rateLimiterContract("redis", async () => {
    const limiter = new RedisRateLimiter({ redis: REDIS_URL, prefix: uniqueRedisPrefix() });
    await untilShared(limiter);
    return limiter;
  });

  it("the scripts' SHAs are what Redis computes, so EVALSHA finds them", async () => {
    const redis = new Redis(REDIS_URL);
    try {
      for (const script of [
        RATE_SCRIPT,
        PEEK_RATE_SCRIPT,
        ACQUIRE_SLOT_SCRIPT,
        COUNT_SLOTS_SCRIPT,
        PING_SCRIPT,
        BATCH_SCRIPT,
        FAILED_ATTEMPT_SCRIPT,
      ]) {
        expect(script.sha).toBe(createHash("sha1").update(script.lua).digest("hex"));
        expect(await redis.script("LOAD", script.lua)).toBe(script.sha);
      }
    } finally {
      redis.disconnect();
    }
  });

  it("loads a script with EVAL when Redis does not have it (after SCRIPT FLUSH)", async () => {
    const admin = new Redis(REDIS_URL);
    const limiter = new RedisRateLimiter({ redis: REDIS_URL, prefix: uniqueRedisPrefix() });
    try {
      await untilShared(limiter);
      await admin.script("FLUSH");
      // Alone: the acquire's script of its own.
      expect(await limiter.acquireSlot("k", 1, "lease_1", 60_000, Date.now())).toBe(true);
      expect(limiter.mode).toBe("shared");
      expect(await admin.script("EXISTS", ACQUIRE_SLOT_SCRIPT.sha, BATCH_SCRIPT.sha)).toEqual([1, 0]);
      // Together: the batch script.
      const now = Date.now();
      expect(await Promise.all(["lease_2", "lease_3"].map((lease) => limiter.acquireSlot("k", 2, lease, 60_000, now)))).toEqual([
        true,
        false,
      ]);
      expect(limiter.mode).toBe("shared");
      expect(await admin.script("EXISTS", BATCH_SCRIPT.sha)).toEqual([1]);
    } finally {
      await limiter.close();
      admin.disconnect();
    }
  });
});
