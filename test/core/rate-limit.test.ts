import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decideRate, gcraParams, remainingAfter } from "../../src/core/rate-limit.js";

describe("GCRA rate decision", () => {
  const fivePerSecond = gcraParams({ requests: 5, per_seconds: 1 });

  it("admits exactly the burst at one instant, then denies with a retry time", () => {
    let tat: number | undefined;
    const outcomes: boolean[] = [];
    for (let i = 0; i < 10; i++) {
      const decision = decideRate(tat, fivePerSecond, 1_000);
      outcomes.push(decision.allowed);
      if (decision.allowed) tat = decision.tat;
    }
    expect(outcomes.filter(Boolean)).toHaveLength(5);
    const denied = decideRate(tat, fivePerSecond, 1_000);
    expect(denied.allowed).toBe(false);
    if (!denied.allowed) expect(denied.retryAfterMs).toBeCloseTo(200, 5);
  });

  it("refills at the steady rate: one request per interval", () => {
    let tat: number | undefined;
    for (let i = 0; i < 5; i++) {
      const d = decideRate(tat, fivePerSecond, 0);
      if (d.allowed) tat = d.tat;
    }
    expect(decideRate(tat, fivePerSecond, 199).allowed).toBe(false);
    expect(decideRate(tat, fivePerSecond, 200).allowed).toBe(true);
  });

  it("uses burst as the limit when given", () => {
    const params = gcraParams({ requests: 1, per_seconds: 60, burst: 3 });
    expect(params.limit).toBe(3);
    expect(remainingAfter(0, params)).toBe(3);
  });

  it("a denial never changes the state, and remaining never goes negative (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 1, max: 3600 }),
        fc.option(fc.integer({ min: 1, max: 1000 }), { nil: undefined }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 5_000 }), fc.integer({ min: 1, max: 5 })), { maxLength: 60 }),
        (requests, perSeconds, burst, steps) => {
          const params = gcraParams({ requests, per_seconds: perSeconds, ...(burst ? { burst } : {}) });
          let tat: number | undefined;
          let now = 0;
          for (const [gap, cost] of steps) {
            now += gap;
            const decision = decideRate(tat, params, now, cost);
            expect(decision.remaining).toBeGreaterThanOrEqual(0);
            expect(decision.remaining).toBeLessThanOrEqual(params.limit);
            if (decision.allowed) {
              // Never further ahead than the tolerance allows.
              expect(decision.tat - now).toBeLessThanOrEqual(params.toleranceMs + 1e-3);
              tat = decision.tat;
            } else expect(decision.retryAfterMs).toBeGreaterThan(0);
          }
        },
      ),
      { seed: Number(process.env.FC_SEED ?? Date.now() % 2 ** 31), verbose: true },
    );
  });

  it("over any window, admits at most burst + rate × elapsed (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 10 }),
        fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 200 }),
        (requests, perSeconds, gaps) => {
          const params = gcraParams({ requests, per_seconds: perSeconds });
          let tat: number | undefined;
          let now = 0;
          let admitted = 0;
          for (const gap of gaps) {
            now += gap;
            const d = decideRate(tat, params, now);
            if (d.allowed) {
              admitted++;
              tat = d.tat;
            }
          }
          expect(admitted).toBeLessThanOrEqual(params.limit + Math.floor(now / params.intervalMs) + 1);
        },
      ),
    );
  });
});
