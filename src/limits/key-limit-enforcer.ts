import { KeywardError } from "../core/errors.js";
import type { KeyRecord, OwnerLimits, OwnerRef, QuotaSpec, RateLimitSpec } from "../core/model.js";
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
 * Whose counters a stage spends from: the key's lineage, and its owner's when the owner carries
 * shared limits (docs/organizations.md). Counter names cannot meet: lineages are key ids.
 */
interface LimitSubject {
  counter: string;
  rateLimit: RateLimitSpec | null;
  concurrency: number | null;
  quota: QuotaSpec | null;
  createdAt: number;
}

/** The counter name of an owner's shared limits. */
export const ownerCounter = (owner: OwnerRef): string => `owner:${owner.type}:${owner.id}`;

function subjectsOf(key: KeyRecord, shared: OwnerLimits | null | undefined): LimitSubject[] {
  const own: LimitSubject = {
    counter: key.lineageId,
    rateLimit: key.rateLimit,
    concurrency: key.concurrency,
    quota: key.quota,
    createdAt: key.createdAt,
  };
  if (!shared) return [own];
  return [
    own,
    {
      counter: ownerCounter(shared.owner),
      rateLimit: shared.rateLimit,
      concurrency: shared.concurrency,
      quota: shared.quota,
      createdAt: shared.createdAt,
    },
  ];
}

/** The tighter of two rate states: the one with fewer requests left. */
const tighter = (a: RateLimitState | undefined, b: RateLimitState): RateLimitState => (a && a.remaining <= b.remaining ? a : b);

/**
 * A key's limits, in the order docs/errors.md lists the outcomes: rate, then concurrency, then
 * quota; at each stage the key's own limit and then its owner's shared one (docs/organizations.md),
 * so the tighter wins. Quota comes last and is the only stage that writes when it allows, so a
 * request denied anywhere spends no quota: a key's spend refused by the owner's quota is given
 * back, and a quota denial gives back the concurrency slots taken. Counters belong to the key's
 * lineage: a rotated key's successor carries on where its predecessor stood.
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

  async enforce(key: KeyRecord, request: LimitRequest, shared?: OwnerLimits | null): Promise<LimitDecision> {
    const decision = await this.decide(subjectsOf(key, shared), request);
    this.onDecision?.(decision.allowed ? "allowed" : (decision.code.toLowerCase() as Lowercase<typeof decision.code>));
    return decision;
  }

  private async decide(subjects: LimitSubject[], request: LimitRequest): Promise<LimitDecision> {
    const { now, cost } = request;
    let rateLimit: RateLimitState | undefined;
    for (const subject of subjects) {
      if (!subject.rateLimit) continue;
      const params = paramsOf(subject.rateLimit);
      const outcome = await this.rates.consumeRate(subject.counter, params, cost, now);
      const state = { limit: params.limit, remaining: remainingAfter(outcome.aheadMs, params), resetSeconds: toSeconds(outcome.aheadMs) };
      if (!outcome.allowed) {
        const retryMs = outcome.aheadMs + params.intervalMs * cost - params.toleranceMs;
        return { allowed: false, code: "RATE_LIMITED", retryAfterSeconds: Math.max(1, toSeconds(retryMs)), rateLimit: state };
      }
      rateLimit = tighter(rateLimit, state);
    }
    const withRate = rateLimit ? { rateLimit } : {};
    // One lease id for every slot a request holds, so the explicit release frees them all.
    const leaseMs = request.leaseMs ?? this.defaultLeaseMs;
    const limited = subjects.filter((subject) => subject.concurrency !== null);
    const leaseId = limited.length > 0 ? generateId("lease", cryptoRandomBytes) : null;
    const held: string[] = [];
    const releaseHeld = async () => {
      for (const counter of held) await this.rates.releaseSlot(counter, leaseId as string);
    };
    for (const subject of limited) {
      if (!(await this.rates.acquireSlot(subject.counter, subject.concurrency as number, leaseId as string, leaseMs, now))) {
        await releaseHeld();
        return { allowed: false, code: "CONCURRENCY_LIMITED", retryAfterSeconds: 1, ...withRate };
      }
      held.push(subject.counter);
    }
    const spent: { counter: string; window: string }[] = [];
    for (const subject of subjects) {
      if (!subject.quota) continue;
      const window = windowOf(subject.quota, now, subject.createdAt);
      const ok = cost <= window.allowance && (await this.spendQuota(subject.counter, window, cost, spent, releaseHeld)) !== null;
      if (!ok) {
        await this.refund(spent, cost);
        await releaseHeld();
        return { allowed: false, code: "QUOTA_EXCEEDED", retryAfterSeconds: quotaRetryAfterSeconds(window, now), ...withRate };
      }
      spent.push({ counter: subject.counter, window: window.name });
    }
    if (leaseId === null) return { allowed: true, ...withRate };
    let released = false;
    return {
      allowed: true,
      ...withRate,
      lease: { id: leaseId, expiresAt: now + leaseMs },
      release: () => {
        if (released) return;
        released = true;
        // Best effort: a release that cannot reach the backend leaves the lease to expire.
        releaseHeld().catch(() => {});
      },
    };
  }

  async inspect(key: KeyRecord, now: number, shared?: OwnerLimits | null): Promise<LimitsSnapshot> {
    const snapshot = await this.inspectSubject(subjectsOf(key, null)[0] as LimitSubject, now);
    const owner = shared ? await this.inspectSubject(subjectsOf(key, shared)[1] as LimitSubject, now) : {};
    return Object.keys(owner).length > 0 ? { ...snapshot, owner } : snapshot;
  }

  private async inspectSubject(subject: LimitSubject, now: number): Promise<LimitsSnapshot> {
    const snapshot: LimitsSnapshot = {};
    if (subject.rateLimit) {
      const params = paramsOf(subject.rateLimit);
      const ahead = await this.rates.peekRate(subject.counter, now);
      snapshot.rate_limit = { limit: params.limit, remaining: remainingAfter(ahead, params), reset_seconds: toSeconds(ahead) };
    }
    if (subject.concurrency !== null) {
      const inFlight = await this.rates.countSlots(subject.counter, now);
      snapshot.concurrency = { limit: subject.concurrency, in_flight: inFlight, available: Math.max(0, subject.concurrency - inFlight) };
    }
    if (subject.quota) {
      const window = windowOf(subject.quota, now, subject.createdAt);
      const used = await this.quotas.used(subject.counter, window.name);
      snapshot.quota = {
        limit: window.allowance,
        used,
        remaining: Math.max(0, window.allowance - used),
        resets_at: window.resetsAt === null ? null : new Date(window.resetsAt).toISOString(),
      };
    }
    return snapshot;
  }

  async releaseLease(key: KeyRecord, leaseId: string, shared?: OwnerLimits | null): Promise<boolean> {
    const released = await this.rates.releaseSlot(key.lineageId, leaseId);
    if (shared?.concurrency != null) await this.rates.releaseSlot(ownerCounter(shared.owner), leaseId);
    return released;
  }

  async health(): Promise<LimiterMode | null> {
    return this.rates.health ? this.rates.health() : null;
  }

  async close(): Promise<void> {
    await this.rates.close();
    await this.quotas.close?.();
  }

  /** Gives back what earlier subjects spent for a request a later quota refused. */
  private async refund(spent: readonly { counter: string; window: string }[], cost: number): Promise<void> {
    for (const { counter, window } of spent) await this.quotas.refund?.(counter, window, cost);
  }

  /** A quota write that fails must keep neither the slots taken before it nor the uses spent. */
  private async spendQuota(
    counter: string,
    window: QuotaWindow,
    cost: number,
    spent: readonly { counter: string; window: string }[],
    releaseHeld: () => Promise<void>,
  ): Promise<number | null> {
    try {
      return await this.quotas.spend(counter, window.name, window.allowance, cost, window.resetsAt);
    } catch (error) {
      await this.refund(spent, cost).catch(() => {});
      await releaseHeld();
      // Quotas never fail open: without the database the request waits, it is not let through.
      throw new KeywardError("STORE_UNAVAILABLE", "quota counters cannot be reached", { retryAfterSeconds: 5, cause: error });
    }
  }
}
