import type { RateLimitSpec } from "./model.js";

/**
 * The rate limit as GCRA (the generic cell rate algorithm): one number per key, the
 * theoretical arrival time (TAT), instead of a token count and a timestamp. A key may run
 * `burst` (default `requests`) requests ahead of its steady rate of `requests` per
 * `per_seconds`. Pure, so memory and Redis (whose Lua script mirrors it) decide alike.
 */
export interface GcraParams {
  /** Milliseconds one request "costs" at the steady rate. */
  intervalMs: number;
  /** How far ahead of now the TAT may run: burst × interval. */
  toleranceMs: number;
  /** What `RateLimit-Limit` reports. */
  limit: number;
}

export function gcraParams(spec: RateLimitSpec): GcraParams {
  const limit = spec.burst ?? spec.requests;
  const intervalMs = (spec.per_seconds * 1000) / spec.requests;
  return { intervalMs, toleranceMs: intervalMs * limit, limit };
}

export type RateDecision =
  | { allowed: true; tat: number; remaining: number; resetMs: number }
  | { allowed: false; remaining: number; resetMs: number; retryAfterMs: number };

/**
 * Decides one request of `cost` at `now` given the stored TAT (undefined: never used, or
 * expired). On `allowed`, `tat` is what to store; a denial stores nothing, so a rate-limited
 * request spends nothing.
 */
export function decideRate(storedTat: number | undefined, params: GcraParams, now: number, cost = 1): RateDecision {
  return decideRateFromAhead(storedTat === undefined ? 0 : Math.max(0, storedTat - now), params, cost, now);
}

/**
 * The same decision from "how far the TAT is ahead of now", which is what the Redis script
 * returns (it reads the server's clock, so instances with skewed clocks still agree).
 */
export function decideRateFromAhead(aheadMs: number, params: GcraParams, cost: number, now = 0): RateDecision {
  const next = aheadMs + params.intervalMs * cost;
  if (next > params.toleranceMs + 1e-6) {
    return {
      allowed: false,
      remaining: remainingAfter(aheadMs, params),
      resetMs: aheadMs,
      retryAfterMs: next - params.toleranceMs,
    };
  }
  return { allowed: true, tat: now + next, remaining: remainingAfter(next, params), resetMs: next };
}

/** Whole requests still allowed right now when the TAT is `aheadMs` in the future. */
export function remainingAfter(aheadMs: number, params: GcraParams): number {
  return Math.max(0, Math.floor((params.toleranceMs - aheadMs + 1e-6) / params.intervalMs));
}
