// Item 5 of the bench (issue #8): the cost of rate limit + quota on the verify path, one entry per
// LimitEnforcer adapter. Each entry: { name, create: async () => ({ enforcer, close }) }.
// The keys the limits scenario verifies carry a rate limit and a quota far above what a run can
// spend (see LIMITED_KEY_SETTINGS), so every request passes and the stage's cost is what is measured.

/** Limits set on the keys of the limits scenario: never reached in a run, always enforced. */
export const LIMITED_KEY_SETTINGS = {
  rateLimit: { requests: 1_000_000_000, per_seconds: 1 },
  quota: { limit: 1_000_000_000_000, period: "month" },
};

export const LIMIT_ENFORCERS = [
  // The port itself, with nothing behind it: what the limits stage's await costs.
  {
    name: "noop",
    create: async () => ({ enforcer: { enforce: async () => ({ allowed: true }) }, close: async () => {} }),
  },
  // TODO(merge: limits): the memory and Redis LimitEnforcer adapters are being built on another
  // branch. When they land, add them here, e.g.
  //   { name: "memory", create: async () => { const e = new MemoryLimitEnforcer(); return { enforcer: e, close: async () => {} }; } },
  //   { name: "redis", create: async () => {
  //       const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
  //       const e = new RedisLimitEnforcer({ redis, prefix: `keyward-bench:${process.pid}:` });
  //       return { enforcer: e, close: async () => redis.quit() };
  //     } },
  // The runner measures each entry against verify() with no limiter, in the same run.
];

/** Entries the merger still has to fill in (reported as pending, not as failures). */
export const PENDING_LIMIT_ENFORCERS = ["memory", "redis"];
