import { describe, expect, it } from "vitest";
import { gcraParams } from "../../src/core/rate-limit.js";
import { RedisRateLimiter } from "../../src/limits/redis-rate-limiter.js";
import { backendsAvailable, REDIS_URL, uniqueRedisPrefix } from "../helpers/backends.js";

/**
 * A busy process whose event loop runs late must not lose Redis's answers (docs/limits.md,
 * "Backends and failure"): a timer fires before that turn of the loop reads the socket, so a
 * call timed out by the client's own timer threw away a reply that had come back in time, and the
 * limiter fell back to its own counters and admitted a key's limit a second time (the issue 24
 * HTTP bench saw 1,000 admitted for a limit of 500 under load). Nothing here is timed: the loop
 * is held busy for several times the call's limit while the replies arrive.
 */
const haveBackends = await backendsAvailable();

/** Holds the event loop, as a saturated process does. */
function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spin
  }
}

describe.runIf(haveBackends)("the Redis limiter in a process whose event loop runs late", () => {
  it("keeps deciding in Redis, so a key gets its limit once, not once more from the fallback", async () => {
    const modes: string[] = [];
    const limiter = new RedisRateLimiter({
      redis: REDIS_URL,
      prefix: uniqueRedisPrefix(),
      timeoutMs: 50,
      onModeChange: (mode) => modes.push(mode),
    });
    try {
      const fivePerHour = gcraParams({ requests: 5, per_seconds: 3_600 });
      // Connected and deciding in Redis (calls made while it connects are the fallback's).
      for (let i = 0; i < 200; i++) {
        await limiter.countSlots("warm", Date.now()).catch(() => undefined);
        if (limiter.mode === "shared" && i > 0) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      modes.length = 0;
      const first = await Promise.all(Array.from({ length: 5 }, () => limiter.consumeRate("late", fivePerHour, 1, Date.now())));
      expect(first.every((outcome) => outcome.allowed)).toBe(true);
      // Ten more, sent, and then the loop held four times the call limit while Redis answers them.
      const more = Array.from({ length: 10 }, () => limiter.consumeRate("late", fivePerHour, 1, Date.now()));
      // The batch goes out in a microtask: let it be written, then hold the loop before any reply is read.
      for (let i = 0; i < 5; i++) await null;
      busy(200);
      const outcomes = await Promise.all(more);
      expect(outcomes.filter((outcome) => outcome.allowed)).toHaveLength(0);
      expect({ mode: limiter.mode, modes }).toEqual({ mode: "shared", modes: [] });
      expect(modes).not.toContain("degraded");
    } finally {
      await limiter.close();
    }
  });
});
