import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { attemptAddress, blockedForMs, countAttempt, type FailedAttemptPolicy, mergeSharedCount } from "../../src/core/failed-attempts.js";
import { FailedAttemptLimiter } from "../../src/limits/failed-attempt-limiter.js";
import { fuzz } from "../helpers/fuzz.js";

const policy: FailedAttemptPolicy = { limit: 3, windowMs: 1_000 };

describe("failed-attempt decisions (SECURITY.md 7)", () => {
  it("blocks once the limit is counted, until the window ends", () => {
    let window = countAttempt(undefined, policy, 0);
    window = countAttempt(window, policy, 100);
    expect(blockedForMs(window, policy, 200)).toBe(0);
    window = countAttempt(window, policy, 300);
    expect(blockedForMs(window, policy, 300)).toBe(700);
    expect(blockedForMs(window, policy, 999)).toBe(1);
    expect(blockedForMs(window, policy, 1_000)).toBe(0);
  });

  it("an ended window starts afresh; a refund never goes below zero", () => {
    const full = { count: 3, resetAt: 1_000 };
    expect(countAttempt(full, policy, 1_000)).toEqual({ count: 1, resetAt: 2_000 });
    expect(countAttempt({ count: 0, resetAt: 1_000 }, policy, 10, -1)).toEqual({ count: 0, resetAt: 1_000 });
  });

  it("the shared count wins when it is larger, so attempts on other instances block here", () => {
    expect(mergeSharedCount({ count: 1, resetAt: 900 }, { count: 5, resetAt: 800 }, 0)).toEqual({ count: 5, resetAt: 800 });
    expect(mergeSharedCount({ count: 4, resetAt: 900 }, { count: 2, resetAt: 800 }, 0)).toEqual({ count: 4, resetAt: 900 });
  });

  it("the number of attempts admitted per window never exceeds the limit (property)", () => {
    fuzz(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 1, max: 5_000 }),
        fc.array(fc.integer({ min: 0, max: 500 }), { minLength: 1, maxLength: 300 }),
        (limit, windowMs, gaps) => {
          const p = { limit, windowMs };
          let window: ReturnType<typeof countAttempt> | undefined;
          let now = 0;
          const admitted: number[] = [];
          for (const gap of gaps) {
            now += gap;
            if (blockedForMs(window, p, now) > 0) continue;
            window = countAttempt(window, p, now);
            admitted.push(now);
          }
          // A window starts at the first attempt after the previous one ended and lasts windowMs:
          // within each, at most `limit` attempts are admitted.
          let start = Number.NEGATIVE_INFINITY;
          let inWindow = 0;
          for (const t of admitted) {
            if (t >= start + windowMs) {
              start = t;
              inWindow = 0;
            }
            if (++inWindow > limit) return false;
          }
          return true;
        },
      ),
    );
  });
});

describe("client address for counting", () => {
  it("IPv4 and IPv4-mapped IPv6 are one address; IPv6 counts by its /64", () => {
    expect(attemptAddress("203.0.113.9")).toBe("203.0.113.9");
    expect(attemptAddress("::ffff:203.0.113.9")).toBe("203.0.113.9");
    expect(attemptAddress("2001:db8:1:2:aaaa::1")).toBe(attemptAddress("2001:db8:1:2:ffff:ffff:ffff:ffff"));
    expect(attemptAddress("2001:db8:1:2::1")).not.toBe(attemptAddress("2001:db8:1:3::1"));
  });

  it("groups IPv6 by any prefix length (the sign-in throttle's KEYWARD_SIGN_IN_IPV6_PREFIX)", () => {
    expect(attemptAddress("2001:db8:1:2::1", 64)).toBe("2001:db8:1:2::/64");
    expect(attemptAddress("2001:db8:1:2::1", 48)).toBe("2001:db8:1::/48");
    expect(attemptAddress("2001:db8:1:2::1", 48)).toBe(attemptAddress("2001:db8:1:ffff::9", 48));
    expect(attemptAddress("2001:db8:1:2::1", 56)).toBe(attemptAddress("2001:db8:1:ff::1", 56));
    expect(attemptAddress("2001:db8:1:2::1", 56)).not.toBe(attemptAddress("2001:db8:1:100::1", 56));
    expect(attemptAddress("2001:db8::1", 128)).not.toBe(attemptAddress("2001:db8::2", 128));
    expect(attemptAddress("::ffff:203.0.113.9", 48)).toBe("203.0.113.9");
  });

  it("never throws, whatever the input (property)", () => {
    fuzz(fc.property(fc.oneof(fc.string(), fc.ipV4(), fc.ipV6(), fc.ipV4Extended()), (ip) => typeof attemptAddress(ip) === "string"));
  });

  it("addresses of one IPv6 /64 share a count (property)", () => {
    fuzz(
      fc.property(fc.ipV6(), fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 4, maxLength: 4 }), (ip, tail) => {
        const head = attemptAddress(ip);
        if (head.includes(".")) return true; // IPv4-mapped: counted as IPv4
        const prefix = head.slice(0, -"::/64".length);
        const sibling = `${prefix}:${tail.map((n) => n.toString(16)).join(":")}`;
        return attemptAddress(sibling) === head;
      }),
    );
  });
});

describe("FailedAttemptLimiter", () => {
  it("tracks a bounded number of addresses (LRU): a flood from many addresses cannot grow memory", () => {
    const limiter = new FailedAttemptLimiter({ limit: 5, maxAddresses: 100 });
    for (let i = 0; i < 10_000; i++) limiter.charge(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 0);
    expect(limiter.size).toBe(100);
  });

  it("charges ahead and refunds attempts that found a key", () => {
    const limiter = new FailedAttemptLimiter({ limit: 2, windowMs: 1_000 });
    limiter.charge("10.0.0.1", 0);
    limiter.charge("10.0.0.1", 0);
    expect(limiter.blockedForMs("10.0.0.1", 0)).toBe(1_000);
    limiter.refund("10.0.0.1", 0);
    expect(limiter.blockedForMs("10.0.0.1", 0)).toBe(0);
    expect(limiter.blockedForMs("10.0.0.2", 0)).toBe(0);
    expect(limiter.blockedForMs(undefined, 0)).toBe(0);
  });
});
