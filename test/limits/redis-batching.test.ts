import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isKeywardError } from "../../src/core/errors.js";
import { gcraParams } from "../../src/core/rate-limit.js";
import { type LimiterFailurePolicy, type LimiterRedis, MAX_BATCH, RedisRateLimiter } from "../../src/limits/redis-rate-limiter.js";
import { ACQUIRE_SLOT_SCRIPT, BATCH_SCRIPT, COUNT_SLOTS_SCRIPT, RATE_SCRIPT } from "../../src/limits/redis-scripts.js";
import type { RateOutcome } from "../../src/ports/limits.js";
import { backendsAvailable, REDIS_URL, uniqueRedisPrefix } from "../helpers/backends.js";
import { PrivateRedis, privateRedisAvailable } from "../helpers/private-redis.js";

/**
 * Issue 24: decisions made while a script call is out go to Redis together, in one call that
 * decides them one after another (docs/limits.md, "Batching"). What is asserted is what is
 * admitted and how many calls Redis was sent; nothing is timed.
 */
const haveBackends = await backendsAvailable();
const haveRedisServer = privateRedisAvailable();
const fivePerSecond = gcraParams({ requests: 5, per_seconds: 1 });

/** A client of the test's own that counts the script calls the limiter sends through it. */
function countingClient(url: string): { redis: LimiterRedis; calls: () => number; close: () => void } {
  const client = new Redis(url);
  let calls = 0;
  const redis = {
    get status() {
      return client.status;
    },
    evalsha: (...args: Parameters<Redis["evalsha"]>) => {
      calls++;
      return client.evalsha(...args);
    },
    eval: (...args: Parameters<Redis["eval"]>) => {
      calls++;
      return client.eval(...args);
    },
    zrem: (...args: Parameters<Redis["zrem"]>) => client.zrem(...args),
    quit: () => client.quit(),
    disconnect: () => client.disconnect(),
  } as unknown as LimiterRedis;
  return { redis, calls: () => calls, close: () => client.disconnect() };
}

/** Until the limiter decides through Redis (not its fallback). */
async function untilShared(limiter: RedisRateLimiter): Promise<void> {
  for (let i = 0; i < 200; i++) {
    await limiter.countSlots("warmup", Date.now()).catch(() => undefined);
    if (limiter.mode === "shared" && i > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`limiter never shared (is ${limiter.mode})`);
}

const admitted = (outcomes: { allowed: boolean }[]): number => outcomes.filter((o) => o.allowed).length;

describe.runIf(haveBackends)("batched Redis decisions", () => {
  const clients: ReturnType<typeof countingClient>[] = [];
  const limiters: RedisRateLimiter[] = [];
  let prefix: string;

  beforeAll(async () => {
    prefix = uniqueRedisPrefix();
    // Loaded beforehand, so each call counted is one EVALSHA (not EVALSHA, NOSCRIPT, then EVAL).
    const admin = new Redis(REDIS_URL);
    for (const script of [RATE_SCRIPT, ACQUIRE_SLOT_SCRIPT, COUNT_SLOTS_SCRIPT, BATCH_SCRIPT]) await admin.script("LOAD", script.lua);
    admin.disconnect();
    for (let i = 0; i < 3; i++) {
      const client = countingClient(REDIS_URL);
      const limiter = new RedisRateLimiter({ redis: client.redis, prefix, timeoutMs: 5_000 });
      await untilShared(limiter);
      clients.push(client);
      limiters.push(limiter);
    }
  });
  afterAll(async () => {
    for (const limiter of limiters) await limiter.close();
    for (const client of clients) client.close();
  });
  const limiter = (i: number) => limiters[i] as RedisRateLimiter;
  const calls = (i: number) => clients[i]?.calls() ?? 0;
  const [a, b, c] = [0, 1, 2];
  const key = () => `key_${Math.random().toString(36).slice(2)}`;

  it("200 simultaneous decisions for one key at 5/s: exactly 5 admitted, in one script call", async () => {
    const id = key();
    const before = calls(a);
    const now = Date.now();
    const outcomes = await Promise.all(Array.from({ length: 200 }, () => limiter(a).consumeRate(id, fivePerSecond, 1, now)));
    expect(admitted(outcomes)).toBe(5);
    expect(limiter(a).mode).toBe("shared");
    expect(calls(a) - before).toBe(1);
    // Arrival order is decision order: the first five are the admitted ones.
    expect(outcomes.map((o) => o?.allowed)).toEqual([...Array(5).fill(true), ...Array(195).fill(false)]);
  });

  it("three instances (three connections) deciding 200 each for one key at once: exactly 5 admitted in all", async () => {
    const id = key();
    const now = Date.now();
    const outcomes = await Promise.all(
      limiters.flatMap((each) => Array.from({ length: 200 }, () => each.consumeRate(id, fivePerSecond, 1, now))),
    );
    expect(outcomes).toHaveLength(600);
    expect(admitted(outcomes)).toBe(5);
    expect(limiters.map((each) => each.mode)).toEqual(["shared", "shared", "shared"]);
  });

  it("many keys and both kinds of decision mixed in one batch: each key gets its own exact count", async () => {
    const keys = Array.from({ length: 20 }, () => key());
    const slots = Array.from({ length: 5 }, () => key());
    const before = calls(b);
    const now = Date.now();
    const rates: Promise<{ allowed: boolean }>[][] = keys.map(() => []);
    const acquires: Promise<boolean>[][] = slots.map(() => []);
    // Interleaved: key 0, key 1, …, key 19, slot 0, …, slot 4, then again; 240 decisions.
    for (let round = 0; round < 8; round++) {
      keys.forEach((id, i) => {
        rates[i]?.push(limiter(b).consumeRate(id, gcraParams({ requests: i + 1, per_seconds: 60 }), 1, now));
      });
      slots.forEach((id, i) => {
        acquires[i]?.push(limiter(b).acquireSlot(id, i + 1, `lease_${round}`, 60_000, now));
      });
    }
    const rateCounts = await Promise.all(rates.map(async (list) => admitted(await Promise.all(list))));
    const slotCounts = await Promise.all(acquires.map(async (list) => (await Promise.all(list)).filter(Boolean).length));
    expect(rateCounts).toEqual(keys.map((_, i) => Math.min(i + 1, 8)));
    expect(slotCounts).toEqual(slots.map((_, i) => i + 1));
    expect(calls(b) - before).toBe(1);
    // Redis holds what was decided.
    expect(await Promise.all(slots.map((id) => limiter(b).countSlots(id, Date.now())))).toEqual([1, 2, 3, 4, 5]);
  });

  it(`more than ${MAX_BATCH} at once go out as several calls of at most ${MAX_BATCH}, still exact`, async () => {
    const id = key();
    const once = gcraParams({ requests: 7, per_seconds: 60 });
    const before = calls(c);
    const now = Date.now();
    const outcomes = await Promise.all(Array.from({ length: 3 * MAX_BATCH - 10 }, () => limiter(c).consumeRate(id, once, 1, now)));
    expect(admitted(outcomes)).toBe(7);
    expect(calls(c) - before).toBe(3);
  });

  it("decisions that arrive while a call is out wait for it and go together in the next call", async () => {
    const id = key();
    const params = gcraParams({ requests: 10, per_seconds: 60 });
    const before = calls(a);
    const now = Date.now();
    const first = limiter(a).consumeRate(id, params, 1, now);
    // The first call went out at the end of that turn; its reply needs I/O, so it is still out.
    await Promise.resolve();
    await Promise.resolve();
    expect(calls(a) - before).toBe(1);
    const rest = Array.from({ length: 100 }, () => limiter(a).consumeRate(id, params, 1, now));
    const outcomes = await Promise.all([first, ...rest]);
    expect(admitted(outcomes)).toBe(10);
    expect(outcomes[0]?.allowed).toBe(true);
    expect(calls(a) - before).toBe(2);
  });

  it("strictly sequential decisions: one call each, no waiting for company", async () => {
    const id = key();
    const params = gcraParams({ requests: 20, per_seconds: 60 });
    const before = calls(b);
    const outcomes = [];
    for (let i = 0; i < 30; i++) outcomes.push(await limiter(b).consumeRate(id, params, 1, Date.now()));
    expect(admitted(outcomes)).toBe(20);
    expect(calls(b) - before).toBe(30);
  });

  it("an entry whose command fails inside the script fails alone: the others in its batch are decided by Redis", async () => {
    const admin = new Redis(REDIS_URL);
    const p = uniqueRedisPrefix();
    const limiter = new RedisRateLimiter({ redis: REDIS_URL, prefix: p, timeoutMs: 5_000 });
    try {
      await untilShared(limiter);
      // Not a sorted set: the acquire's ZREMRANGEBYSCORE answers WRONGTYPE.
      await admin.set(`${p}cc:broken`, "x");
      const id = key();
      const params = gcraParams({ requests: 3, per_seconds: 60 });
      const now = Date.now();
      const [before, broken, ...after] = await Promise.all([
        limiter.consumeRate(id, params, 1, now),
        limiter.acquireSlot("broken", 1, "lease_1", 60_000, now),
        limiter.consumeRate(id, params, 1, now),
        limiter.consumeRate(id, params, 1, now),
        limiter.consumeRate(id, params, 1, now),
      ]);
      // The failed entry was answered by this instance's own limiter (degrade).
      expect(broken).toBe(true);
      expect(limiter.mode).toBe("degraded");
      expect([before, ...after].map((o) => o.allowed)).toEqual([true, true, true, false]);
      // The three admissions are in Redis: its TAT runs 3 × 20 s ahead.
      expect(Number(await admin.get(`${p}rl:${id}`)) - Date.now()).toBeGreaterThan(55_000);
    } finally {
      await limiter.close();
      admin.disconnect();
    }
  });
});

describe.runIf(haveRedisServer)("a batch whose connection drops", () => {
  let redis: PrivateRedis;
  beforeAll(async () => {
    redis = await PrivateRedis.start();
  });
  afterAll(async () => {
    await redis.stop();
  });

  type Settled<T> = { value: T } | { error: unknown };
  const settle = <T>(promise: Promise<T>): Promise<Settled<T>> =>
    promise.then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    );

  /** A batch is out (Redis frozen, so it stays out), more wait behind it, then Redis dies. */
  async function dropMidBatch(policy: LimiterFailurePolicy) {
    await redis.start();
    // A call time limit far past the test's own: only the dropped connection can end the batch.
    const limiter = new RedisRateLimiter({ redis: redis.url, prefix: uniqueRedisPrefix(), timeoutMs: 120_000, failurePolicy: policy });
    await untilShared(limiter);
    redis.suspend();
    const now = Date.now();
    // One batch: 150 rate decisions and 10 acquires, interleaved.
    const sentRates: Promise<Settled<RateOutcome>>[] = [];
    const sentAcquires: Promise<Settled<boolean>>[] = [];
    for (let i = 0; i < 150; i++) {
      sentRates.push(settle(limiter.consumeRate("k", fivePerSecond, 1, now)));
      if (i % 15 === 0) sentAcquires.push(settle(limiter.acquireSlot("c", 2, `lease_${i}`, 60_000, now)));
    }
    // The batch is out now (it went at the end of the turn); these wait behind it.
    await Promise.resolve();
    await Promise.resolve();
    const waiting = Array.from({ length: 50 }, () => settle(limiter.consumeRate("k", fivePerSecond, 1, now)));
    await redis.stop();
    const rates = [...(await Promise.all(sentRates)), ...(await Promise.all(waiting))];
    const acquires = await Promise.all(sentAcquires);
    return { limiter, rates, acquires };
  }

  it("degrade: every entry of the batch, and every call waiting behind it, is decided by this instance's own limiter", async () => {
    const { limiter, rates, acquires } = await dropMidBatch("degrade");
    try {
      expect(rates.every((r) => "value" in r)).toBe(true);
      expect(rates.filter((r) => "value" in r && r.value.allowed)).toHaveLength(5);
      expect(acquires.filter((r) => "value" in r && r.value === true)).toHaveLength(2);
      expect(limiter.mode).toBe("degraded");
    } finally {
      await limiter.close();
    }
  });

  it("open: every entry is let through", async () => {
    const { limiter, rates, acquires } = await dropMidBatch("open");
    try {
      expect(rates.every((r) => "value" in r && r.value.allowed)).toBe(true);
      expect(acquires.every((r) => "value" in r && r.value === true)).toBe(true);
      expect(limiter.mode).toBe("open");
    } finally {
      await limiter.close();
    }
  });

  it("closed: every entry fails with LIMITER_UNAVAILABLE (503)", async () => {
    const { limiter, rates, acquires } = await dropMidBatch("closed");
    try {
      for (const r of [...rates, ...acquires])
        expect("error" in r && isKeywardError(r.error) && r.error.code === "LIMITER_UNAVAILABLE" && r.error.status === 503).toBe(true);
    } finally {
      await limiter.close();
    }
  });
});
