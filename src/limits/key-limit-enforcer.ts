import { KeywardError } from "../core/errors.js";
import type { KeyRecord, QuotaSpec, RateLimitSpec } from "../core/model.js";
import { type QuotaWindow, quotaRetryAfterSeconds, quotaWindow } from "../core/quota-window.js";
import { cryptoRandomBytes, generateId } from "../core/random.js";
import { type GcraParams, gcraParams, remainingAfter } from "../core/rate-limit.js";
import type {
  LimitDecision,
  LimitEnforcer,
  LimiterMode,
  LimitRequest,
  LimitsSnapshot,
  QuotaCounter,
  RateLimiter,
  RateLimitState,
} from "../ports/limits.js";

export interface KeyLimitEnforcerOptions {
  /** Rate and concurrency counters: `MemoryRateLimiter` on one instance, `RedisRateLimiter` across many. */
  rates: RateLimiter;
  /** Quota counters, in the database (SQLite, PostgreSQL) or memory. */
  quotas: QuotaCounter;
  /** A concurrency slot nobody released is freed after this long. Default 10 minutes. */
  defaultLeaseMs?: number;
  /** Told each decision (metrics). */
  onDecision?: (decision: "allowed" | "rate_limited" | "concurrency_limited" | "quota_exceeded") => void;
}

const toSeconds = (ms: number): number => Math.max(0, Math.ceil(ms / 1000));

// A cached key hands the same limit objects to every request: derive their parameters once per
// object, and a quota's window once per window (its name is a string built from a date).
const gcraByRate = new WeakMap<RateLimitSpec, GcraParams>();
const windowByQuota = new WeakMap<QuotaSpec, { window: QuotaWindow; from: number; createdAt: number }>();

function paramsOf(spec: RateLimitSpec): GcraParams {
  let params = gcraByRate.get(spec);
  if (!params) {
    params = gcraParams(spec);
    gcraByRate.set(spec, params);
  }
  return params;
}

function windowOf(spec: QuotaSpec, now: number, createdAt: number): QuotaWindow {
  const memo = windowByQuota.get(spec);
  if (memo && memo.createdAt === createdAt && now >= memo.from && (memo.window.resetsAt === null || now < memo.window.resetsAt))
    return memo.window;
  const window = quotaWindow(spec, now, createdAt);
  windowByQuota.set(spec, { window, from: now, createdAt });
  return window;
}

/**
 * A key's limits, in the order docs/errors.md lists the outcomes: rate, then concurrency, then quota. Quota
 * comes last and is the only stage that writes when it allows, so a request denied anywhere
 * spends no quota; a quota denial gives back the concurrency slot it took. Counters belong to
 * the key's lineage: a rotated key's successor carries on where its predecessor stood.
 */
export class KeyLimitEnforcer implements LimitEnforcer {
  private readonly rates: RateLimiter;
  private readonly quotas: QuotaCounter;
  private readonly defaultLeaseMs: number;
  private readonly onDecision: KeyLimitEnforcerOptions["onDecision"];

  constructor(options: KeyLimitEnforcerOptions) {
    this.rates = options.rates;
    this.quotas = options.quotas;
    this.defaultLeaseMs = options.defaultLeaseMs ?? 600_000;
    this.onDecision = options.onDecision;
  }

  async enforce(key: KeyRecord, request: LimitRequest): Promise<LimitDecision> {
    const decision = await this.decide(key, request);
    this.onDecision?.(decision.allowed ? "allowed" : (decision.code.toLowerCase() as Lowercase<typeof decision.code>));
    return decision;
  }

  private async decide(key: KeyRecord, request: LimitRequest): Promise<LimitDecision> {
    const { now, cost } = request;
    let rateLimit: RateLimitState | undefined;
    if (key.rateLimit) {
      const params = paramsOf(key.rateLimit);
      const outcome = await this.rates.consumeRate(key.lineageId, params, cost, now);
      rateLimit = { limit: params.limit, remaining: remainingAfter(outcome.aheadMs, params), resetSeconds: toSeconds(outcome.aheadMs) };
      if (!outcome.allowed) {
        const retryMs = outcome.aheadMs + params.intervalMs * cost - params.toleranceMs;
        return { allowed: false, code: "RATE_LIMITED", retryAfterSeconds: Math.max(1, toSeconds(retryMs)), rateLimit };
      }
    }
    let lease: { id: string; expiresAt: number } | undefined;
    if (key.concurrency !== null) {
      const leaseMs = request.leaseMs ?? this.defaultLeaseMs;
      const id = generateId("lease", cryptoRandomBytes);
      if (!(await this.rates.acquireSlot(key.lineageId, key.concurrency, id, leaseMs, now))) {
        return { allowed: false, code: "CONCURRENCY_LIMITED", retryAfterSeconds: 1, ...(rateLimit ? { rateLimit } : {}) };
      }
      lease = { id, expiresAt: now + leaseMs };
    }
    if (key.quota) {
      const window = windowOf(key.quota, now, key.createdAt);
      const spent =
        cost <= window.allowance ? await this.spendQuota(key, window.name, window.allowance, cost, window.resetsAt, lease) : null;
      if (spent === null) {
        if (lease) await this.rates.releaseSlot(key.lineageId, lease.id);
        return {
          allowed: false,
          code: "QUOTA_EXCEEDED",
          retryAfterSeconds: quotaRetryAfterSeconds(window, now),
          ...(rateLimit ? { rateLimit } : {}),
        };
      }
    }
    if (!lease) return { allowed: true, ...(rateLimit ? { rateLimit } : {}) };
    const held = lease;
    let released = false;
    return {
      allowed: true,
      ...(rateLimit ? { rateLimit } : {}),
      lease: held,
      release: () => {
        if (released) return;
        released = true;
        // Best effort: a release that cannot reach the backend leaves the lease to expire.
        this.rates.releaseSlot(key.lineageId, held.id).catch(() => {});
      },
    };
  }

  async inspect(key: KeyRecord, now: number): Promise<LimitsSnapshot> {
    const snapshot: LimitsSnapshot = {};
    if (key.rateLimit) {
      const params = paramsOf(key.rateLimit);
      const ahead = await this.rates.peekRate(key.lineageId, now);
      snapshot.rate_limit = { limit: params.limit, remaining: remainingAfter(ahead, params), reset_seconds: toSeconds(ahead) };
    }
    if (key.concurrency !== null) {
      const inFlight = await this.rates.countSlots(key.lineageId, now);
      snapshot.concurrency = { limit: key.concurrency, in_flight: inFlight, available: Math.max(0, key.concurrency - inFlight) };
    }
    if (key.quota) {
      const window = windowOf(key.quota, now, key.createdAt);
      const used = await this.quotas.used(key.lineageId, window.name);
      snapshot.quota = {
        limit: window.allowance,
        used,
        remaining: Math.max(0, window.allowance - used),
        resets_at: window.resetsAt === null ? null : new Date(window.resetsAt).toISOString(),
      };
    }
    return snapshot;
  }

  async releaseLease(key: KeyRecord, leaseId: string): Promise<boolean> {
    return this.rates.releaseSlot(key.lineageId, leaseId);
  }

  async health(): Promise<LimiterMode | null> {
    return this.rates.health ? this.rates.health() : null;
  }

  async close(): Promise<void> {
    await this.rates.close();
    await this.quotas.close?.();
  }

  /** A quota write that fails must not keep the slot taken before it. */
  private async spendQuota(
    key: KeyRecord,
    window: string,
    allowance: number,
    cost: number,
    resetsAt: number | null,
    lease: { id: string } | undefined,
  ): Promise<number | null> {
    try {
      return await this.quotas.spend(key.lineageId, window, allowance, cost, resetsAt);
    } catch (error) {
      if (lease) await this.rates.releaseSlot(key.lineageId, lease.id);
      // Quotas never fail open: without the database the request waits, it is not let through.
      throw new KeywardError("STORE_UNAVAILABLE", "quota counters cannot be reached", { retryAfterSeconds: 5, cause: error });
    }
  }
}
