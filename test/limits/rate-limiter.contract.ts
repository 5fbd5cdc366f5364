import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gcraParams } from "../../src/core/rate-limit.js";
import type { RateLimiter } from "../../src/ports/limits.js";

/** The behaviour every RateLimiter adapter must show; a new adapter is one call of this. */
export function rateLimiterContract(name: string, open: () => Promise<RateLimiter>): void {
  describe(`RateLimiter contract: ${name}`, () => {
    let limiter: RateLimiter;
    beforeAll(async () => {
      limiter = await open();
    });
    afterAll(async () => {
      await limiter.close();
    });
    const lineage = () => `key_${randomBytes(10).toString("hex")}`;

    it("admits exactly the burst out of simultaneous calls", async () => {
      const id = lineage();
      const params = gcraParams({ requests: 5, per_seconds: 1 });
      const now = Date.now();
      const outcomes = await Promise.all(Array.from({ length: 10 }, () => limiter.consumeRate(id, params, 1, now)));
      expect(outcomes.filter((o) => o.allowed)).toHaveLength(5);
    });

    it("keeps limits per lineage", async () => {
      const params = gcraParams({ requests: 1, per_seconds: 60 });
      const now = Date.now();
      expect((await limiter.consumeRate(lineage(), params, 1, now)).allowed).toBe(true);
      expect((await limiter.consumeRate(lineage(), params, 1, now)).allowed).toBe(true);
    });

    it("a denial spends nothing, and peek reports how far ahead the bucket runs", async () => {
      const id = lineage();
      const params = gcraParams({ requests: 2, per_seconds: 60 });
      const now = Date.now();
      await limiter.consumeRate(id, params, 1, now);
      await limiter.consumeRate(id, params, 1, now);
      const before = await limiter.peekRate(id, now);
      expect((await limiter.consumeRate(id, params, 1, now)).allowed).toBe(false);
      const after = await limiter.peekRate(id, now);
      // Redis reads its own clock: allow for the time between calls.
      expect(after).toBeLessThanOrEqual(before);
      expect(after).toBeGreaterThan(55_000);
    });

    it("holds at most `max` slots, frees them on release, and lets expired leases go", async () => {
      const id = lineage();
      const now = Date.now();
      const taken = await Promise.all(["a", "b", "c"].map((lease) => limiter.acquireSlot(id, 2, `lease_${lease}`, 60_000, now)));
      expect(taken.filter(Boolean)).toHaveLength(2);
      expect(await limiter.countSlots(id, now)).toBe(2);
      const holder = taken[0] ? "lease_a" : "lease_b";
      expect(await limiter.releaseSlot(id, holder)).toBe(true);
      expect(await limiter.releaseSlot(id, holder)).toBe(false);
      expect(await limiter.acquireSlot(id, 2, "lease_d", 60_000, now)).toBe(true);

      const short = lineage();
      expect(await limiter.acquireSlot(short, 1, "lease_x", 50, Date.now())).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 120));
      expect(await limiter.acquireSlot(short, 1, "lease_y", 60_000, Date.now())).toBe(true);
    });
  });
}
