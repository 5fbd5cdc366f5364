import type { KeyRecord, OwnerLimits } from "../core/model.js";
import type { GcraParams } from "../core/rate-limit.js";

/** What a limited route reports in `RateLimit-*` headers and introspection. */
export interface RateLimitState {
  limit: number;
  remaining: number;
  /** Seconds until the window or bucket is full again. */
  resetSeconds: number;
}

/** A held concurrency slot. Edges that cannot see the end of a request hand the id out for an explicit release. */
export interface Lease {
  id: string;
  expiresAt: number;
}

export type LimitDecision =
  | {
      allowed: true;
      rateLimit?: RateLimitState;
      /** Present when the key has a concurrency limit. */
      lease?: Lease;
      /** Frees the concurrency slot; call once when the request ends (idempotent). */
      release?: () => void;
    }
  | {
      allowed: false;
      code: "RATE_LIMITED" | "CONCURRENCY_LIMITED" | "QUOTA_EXCEEDED";
      retryAfterSeconds: number;
      rateLimit?: RateLimitState;
    };

export interface LimitRequest {
  now: number;
  cost: number;
  /**
   * How long a concurrency slot is held if nobody releases it. In-process edges release when
   * the response ends and use a long safety net; `/v1/authz` and `/v1/keys/verify` use the
   * configured lease time.
   */
  leaseMs?: number;
}

/** What is left of each of a key's limits, for introspection. Absent parts are unlimited. */
export interface LimitsSnapshot {
  rate_limit?: { limit: number; remaining: number; reset_seconds: number };
  concurrency?: { limit: number; in_flight: number; available: number };
  quota?: { limit: number; used: number; remaining: number; resets_at: string | null };
  /** The owner's shared limits (docs/organizations.md), when it has any: what all its keys have left together. */
  owner?: Omit<LimitsSnapshot, "owner">;
}

/**
 * The limits stage of the verify pipeline: rate, concurrency and quota for one key, applied
 * after every other check passed, so a denied request never spends anything.
 */
export interface LimitEnforcer {
  /** `shared`: the owner's shared limits (docs/organizations.md), spent together with the key's own. */
  enforce(key: KeyRecord, request: LimitRequest, shared?: OwnerLimits | null): Promise<LimitDecision>;
  /** Reads what is left without spending anything. */
  inspect(key: KeyRecord, now: number, shared?: OwnerLimits | null): Promise<LimitsSnapshot>;
  /** Frees a lease by id (the explicit release call of forward auth); false when it was not held. */
  releaseLease(key: KeyRecord, leaseId: string, shared?: OwnerLimits | null): Promise<boolean>;
  /** Where rate and concurrency decisions are taken now (readiness); null when they never leave this process. */
  health?(): Promise<LimiterMode | null>;
  close(): Promise<void>;
}

/** Where a rate decision was taken: the shared backend, or this instance's fallback. */
export type LimiterMode = "shared" | "degraded" | "open";

/**
 * The backend of rate and concurrency counters: per instance (memory) or shared (Redis).
 * Counters are per key lineage, so a rotated key's successor shares them.
 */
export interface RateLimiter {
  /** Spends `cost` from the GCRA bucket when allowed; a denial stores nothing. `aheadMs` is how far the TAT now runs ahead. */
  consumeRate(lineageId: string, params: GcraParams, cost: number, now: number): Promise<RateOutcome>;
  /** How far the TAT runs ahead of now, without spending. */
  peekRate(lineageId: string, now: number): Promise<number>;
  /** Takes a slot if fewer than `max` unexpired leases are held. */
  acquireSlot(lineageId: string, max: number, leaseId: string, leaseMs: number, now: number): Promise<boolean>;
  releaseSlot(lineageId: string, leaseId: string): Promise<boolean>;
  countSlots(lineageId: string, now: number): Promise<number>;
  /** Shared backends only: asks the backend now (bounded by its call time limit) and says where decisions are taken. */
  health?(): Promise<LimiterMode>;
  close(): Promise<void>;
}

export interface RateOutcome {
  allowed: boolean;
  /** After the decision: how far the TAT is ahead of now (ms). */
  aheadMs: number;
}

/**
 * Quota counters, exact under concurrency: one conditional increment
 * (`… WHERE used + cost <= allowance`), never read-then-write. Kept in the database so that
 * spent uses survive restarts and are shared by every instance.
 */
export interface QuotaCounter {
  /** Spends `cost` from the window if it fits; returns the window's use count after, or null when it does not fit. */
  spend(lineageId: string, window: string, allowance: number, cost: number, expiresAt: number | null): Promise<number | null>;
  used(lineageId: string, window: string): Promise<number>;
  /**
   * Gives back `cost` uses (never below zero): a request that spent a key's quota and was then
   * refused by its owner's shared quota (docs/organizations.md) spends nothing.
   */
  refund?(lineageId: string, window: string, cost: number): Promise<unknown>;
  /**
   * Takes a block of uses in one conditional update, for BlockQuotaCounter (docs/limits.md,
   * "Quota blocks"): `n = max(min, min(max, floor((allowance - used) / share)))`, written only
   * when `used + n <= allowance`. Null when not even `min` fits; never over-spends.
   */
  takeBlock?(
    lineageId: string,
    window: string,
    allowance: number,
    block: QuotaBlockRequest,
    expiresAt: number | null,
  ): Promise<QuotaBlock | null>;
  /** Releases what the counter holds open (a connection of its own). */
  close?(): void | Promise<void>;
}

/** What a block take asks for: at least `min` uses, at most `max`, never more than 1/`share` of what remains (unless `min` is more). */
export interface QuotaBlockRequest {
  min: number;
  max: number;
  share: number;
}

/** A block taken: `taken` uses, and the window's use count after the take. */
export interface QuotaBlock {
  taken: number;
  used: number;
}

/**
 * The count of failed attempts shared by every instance (Redis), for the failed-attempt
 * throttle. `null` when the backend cannot answer: each instance then counts on its own.
 */
export interface SharedAttemptCounter {
  /** Adds one attempt for `address`; the window starts at the address's first attempt. */
  increment(address: string, windowMs: number): Promise<{ count: number; resetInMs: number } | null>;
  close(): Promise<void>;
}
