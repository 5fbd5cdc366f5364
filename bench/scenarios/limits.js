import { KeyLimitEnforcer } from "../../dist/limits/key-limit-enforcer.js";
import { MemoryRateLimiter } from "../../dist/limits/memory-rate-limiter.js";
import { RedisRateLimiter } from "../../dist/limits/redis-rate-limiter.js";
import { MemoryQuotaCounter } from "../../dist/stores/memory/memory-quota-counter.js";
import { SqliteQuotaCounter } from "../../dist/stores/sqlite/sqlite-quota-counter.js";

// Item 5 of the bench (issue #8): the cost of rate limit + quota on the verify path, one entry per
// LimitEnforcer adapter. Each entry: { name, create: async () => ({ enforcer, close }) }.
// The keys the limits scenario verifies carry a rate limit and a quota far above what a run can
// spend (see LIMITED_KEY_SETTINGS), so every request passes and the stage's cost is what is measured.

/** Limits set on the keys of the limits scenario: never reached in a run, always enforced. */
export const LIMITED_KEY_SETTINGS = {
  rateLimit: { requests: 1_000_000_000, per_seconds: 1 },
  quota: { limit: 1_000_000_000_000, period: "month" },
};

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/** Rate counters in this process, or shared through Redis (its own connection, a prefix per run). */
const RATES = {
  memory: async () => new MemoryRateLimiter(),
  redis: async () => {
    const limiter = new RedisRateLimiter({ redis: REDIS_URL, prefix: `keyward-bench:${process.pid}:`, timeoutMs: 1_000 });
    // Wait for the connection, so the measurement is of Redis and not of the fallback.
    for (let i = 0; i < 200; i++) {
      await limiter.countSlots("warmup", Date.now());
      if (limiter.mode === "shared" && i > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    if (limiter.mode !== "shared") throw new Error(`Redis at ${REDIS_URL} did not connect`);
    return limiter;
  },
};

/** Quota counters in memory (the cost of the decision alone), or the durable one in the SQLite file. */
const QUOTAS = {
  memory: async () => new MemoryQuotaCounter(),
  sqlite: async (store) => new SqliteQuotaCounter(store.db),
};

const enforcer = (rates, quotas) => ({
  name: `${rates} rate + ${quotas} quota`,
  create: async (store) => {
    const limits = new KeyLimitEnforcer({ rates: await RATES[rates](), quotas: await QUOTAS[quotas](store) });
    return { enforcer: limits, close: async () => {} };
  },
});

/** Each entry: `create(store)` → `{ enforcer, close }`; the runner measures each against verify() of keys without limits. */
export const LIMIT_ENFORCERS = [
  // The port itself, with nothing behind it: what the limits stage's await costs.
  {
    name: "noop",
    create: async () => ({
      enforcer: {
        enforce: async () => ({ allowed: true }),
        inspect: async () => ({}),
        releaseLease: async () => false,
        close: async () => {},
      },
      close: async () => {},
    }),
  },
  enforcer("memory", "memory"),
  enforcer("memory", "sqlite"),
  enforcer("redis", "memory"),
  enforcer("redis", "sqlite"),
];

/** Entries the merger still has to fill in (reported as pending, not as failures). */
export const PENDING_LIMIT_ENFORCERS = [];
