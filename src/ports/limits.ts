import type { KeyRecord } from "../core/model.js";

/** What a limited route reports in `RateLimit-*` headers and introspection. */
export interface RateLimitState {
  limit: number;
  remaining: number;
  /** Seconds until the window or bucket is full again. */
  resetSeconds: number;
}

export type LimitDecision =
  | {
      allowed: true;
      rateLimit?: RateLimitState;
      /** Frees a concurrency slot; call exactly once when the request ends (idempotent). */
      release?: () => void;
    }
  | {
      allowed: false;
      code: "RATE_LIMITED" | "CONCURRENCY_LIMITED" | "QUOTA_EXCEEDED";
      retryAfterSeconds: number;
      rateLimit?: RateLimitState;
    };

/**
 * The limits stage of the verify pipeline: rate, concurrency and quota for one key, applied
 * after every other check passed, so a denied request never spends anything.
 */
export interface LimitEnforcer {
  enforce(key: KeyRecord, request: { now: number; cost: number }): Promise<LimitDecision>;
}
