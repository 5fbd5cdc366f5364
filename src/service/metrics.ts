import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { OutcomeCode } from "../core/outcomes.js";
import type { CacheLookupResult, EngineObserver } from "../ports/engine-observer.js";
import type { UsageEvent, UsageRecorder } from "../ports/usage-recorder.js";
import type { UsageBufferStats } from "../usage/buffered-usage-recorder.js";

/** A key store's statement counts (PostgresKeyStore.statementCounts). */
export interface StoreStatementCounts {
  readonly keyLookups: number;
  readonly changePolls: number;
  readonly changePrunes: number;
}

/** How a webhook delivery attempt ended: delivered, failed but retried later, or given up for good. */
export type WebhookDeliveryOutcome = "delivered" | "retry" | "failed";

/** A limiter's answer, as counted: one of the limit outcomes, or allowed. */
export type LimiterDecisionLabel = "allowed" | "rate_limited" | "concurrency_limited" | "quota_exceeded";

/**
 * Per-request counts kept as plain numbers and handed to prom-client at scrape time: a labelled
 * `inc()` hashes its labels on every call, which the verify path would pay on every request.
 */
class TallyByLabel<L extends string> {
  private readonly counts = new Map<L, number>();

  add(label: L): void {
    this.counts.set(label, (this.counts.get(label) ?? 0) + 1);
  }

  /** For a counter's `collect()`: the totals so far, as the counter's values. */
  publish(counter: Counter<string>, labelName: string): void {
    counter.reset();
    for (const [label, count] of this.counts) counter.inc({ [labelName]: label }, count);
  }
}

// Verification is sub-millisecond from cache and a few milliseconds from the store.
const VERIFY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/**
 * Prometheus metrics of one service instance (docs/observability.md lists them). Labels are
 * bounded sets (outcome codes, fixed words), never key ids, refs, owners or addresses.
 */
export class ServiceMetrics {
  readonly registry = new Registry();
  readonly verifications: Counter<"outcome">;
  /** Verifications of keys in a declared legacy format (docs/migrating.md), by format and outcome: what is left to migrate. */
  readonly legacyVerifications: Counter<"format" | "outcome">;
  readonly verifyDuration: Histogram;
  readonly cacheEntries: Gauge<"kind">;
  readonly cacheLookups: Counter<"result">;
  readonly failedAttemptRefusals: Counter;
  readonly storeErrors: Counter<"operation">;
  readonly webhookDeliveries: Counter<"outcome">;
  readonly limiterDecisions: Counter<"decision">;
  readonly limiterDegraded: Gauge;
  /** 1 while the Redis invalidation channel is subscribed, 0 while it is not; absent without Redis. */
  readonly invalidationSubscribed: Gauge;
  readonly usageBufferEvents: Gauge;
  readonly usageDroppedEvents: Counter;
  readonly recentRequestsDropped: Counter;
  /** Statements the key store ran, by kind (PostgreSQL): what keeping caches current costs the database. */
  readonly storeStatements: Counter<"kind">;
  private usageStats: UsageBufferStats | undefined;
  private statementCounts: StoreStatementCounts | undefined;
  private readonly outcomeTally = new TallyByLabel<OutcomeCode>();
  private readonly cacheLookupTally = new TallyByLabel<CacheLookupResult>();

  constructor() {
    const registers = [this.registry];
    const outcomeTally = this.outcomeTally;
    const cacheLookupTally = this.cacheLookupTally;
    this.verifications = new Counter({
      name: "keyward_verifications_total",
      help: "Key verifications by outcome code",
      labelNames: ["outcome"],
      registers,
      collect() {
        outcomeTally.publish(this, "outcome");
      },
    });
    this.legacyVerifications = new Counter({
      name: "keyward_legacy_verifications_total",
      help: "Verifications of keys in a declared legacy format (KEYWARD_LEGACY_FORMATS), by format name and outcome code; they count in keyward_verifications_total too",
      labelNames: ["format", "outcome"],
      registers,
    });
    this.verifyDuration = new Histogram({
      name: "keyward_verify_duration_seconds",
      help: "Time from a verification's start to its outcome, limits included",
      buckets: VERIFY_BUCKETS,
      registers,
    });
    this.cacheEntries = new Gauge({
      name: "keyward_cache_entries",
      help: "Entries in the verification cache",
      labelNames: ["kind"],
      registers,
    });
    this.cacheLookups = new Counter({
      name: "keyward_cache_lookups_total",
      help: "Verification cache lookups: hit (fresh entry), negative_hit (remembered unknown key), miss (store read)",
      labelNames: ["result"],
      registers,
      collect() {
        cacheLookupTally.publish(this, "result");
      },
    });
    this.failedAttemptRefusals = new Counter({
      name: "keyward_failed_attempt_refusals_total",
      help: "Verifications refused with 429 TOO_MANY_FAILED_ATTEMPTS, before any lookup, because the client address made too many failed attempts",
      registers,
    });
    this.storeErrors = new Counter({
      name: "keyward_store_errors_total",
      help: "Failed store calls: lookup (verify path), management (a request that failed on an unexpected error), webhooks",
      labelNames: ["operation"],
      registers,
    });
    this.webhookDeliveries = new Counter({
      name: "keyward_webhook_deliveries_total",
      help: "Webhook delivery attempts by outcome: delivered, retry (failed, will retry), failed (gave up)",
      labelNames: ["outcome"],
      registers,
    });
    this.limiterDecisions = new Counter({
      name: "keyward_limiter_decisions_total",
      help: "Limit decisions: allowed, rate_limited, concurrency_limited, quota_exceeded",
      labelNames: ["decision"],
      registers,
    });
    this.limiterDegraded = new Gauge({
      name: "keyward_limiter_degraded",
      help: "1 while the shared limiter (Redis) is unreachable and limits run per instance, else 0",
      registers,
    });
    this.invalidationSubscribed = new Gauge({
      name: "keyward_invalidation_subscribed",
      help: "1 while the cross-instance invalidation channel (Redis) is subscribed, 0 while it is not (revocations from other instances then wait for the cache's maximum age)",
      registers,
    });
    // Read from the usage buffer at scrape time: the hot path never touches a metric for it.
    const usage = () => this.usageStats;
    this.usageBufferEvents = new Gauge({
      name: "keyward_usage_buffer_events",
      help: "Usage rows (minute, key, outcome) buffered in memory, not yet written",
      registers,
      collect() {
        this.set(usage()?.entries ?? 0);
      },
    });
    this.usageDroppedEvents = new Counter({
      name: "keyward_usage_dropped_events_total",
      help: "Usage events dropped because the buffer was full (the store was slow or down)",
      registers,
      collect() {
        this.reset();
        this.inc(usage()?.dropped ?? 0);
      },
    });
    this.recentRequestsDropped = new Counter({
      name: "keyward_recent_requests_dropped_total",
      help: "Requests left out of the keys' recent-requests logs (more in a flush interval than the log writes, or a failed write)",
      registers,
      collect() {
        this.reset();
        this.inc(usage()?.recentRequestsDropped ?? 0);
      },
    });
    const statements = () => this.statementCounts;
    this.storeStatements = new Counter({
      name: "keyward_store_statements_total",
      help: "Statements the PostgreSQL key store ran, by kind: key_lookup (cache misses and re-reads), change_poll and change_prune (the change feed)",
      labelNames: ["kind"],
      registers,
      collect() {
        const counts = statements();
        if (!counts) return;
        this.reset();
        this.inc({ kind: "key_lookup" }, counts.keyLookups);
        this.inc({ kind: "change_poll" }, counts.changePolls);
        this.inc({ kind: "change_prune" }, counts.changePrunes);
      },
    });
    for (const outcome of ["delivered", "retry", "failed"]) this.webhookDeliveries.inc({ outcome }, 0);
    this.limiterDegraded.set(0);
  }

  recordOutcome(code: OutcomeCode): void {
    this.outcomeTally.add(code);
  }

  recordStoreError(operation: "lookup" | "management" | "webhooks"): void {
    this.storeErrors.inc({ operation });
  }

  recordWebhookDelivery(outcome: WebhookDeliveryOutcome): void {
    this.webhookDeliveries.inc({ outcome });
  }

  /** For the limiter: one call per limit decision. */
  recordLimiterDecision(decision: LimiterDecisionLabel): void {
    this.limiterDecisions.inc({ decision });
  }

  /** For the limiter: true while it runs degraded (per instance) because the shared store is down. */
  setLimiterDegraded(degraded: boolean): void {
    this.limiterDegraded.set(degraded ? 1 : 0);
  }

  /** Exposes the key store's statement counts, read at scrape time. */
  watchStoreStatements(counts: StoreStatementCounts): void {
    this.statementCounts = counts;
  }

  /** Exposes the usage buffer's size and drops, read at scrape time. */
  watchUsageBuffer(stats: UsageBufferStats): void {
    this.usageStats = stats;
  }

  /** The engine's hooks: verify latency, cache lookups, store errors on the verify path. */
  engineObserver(): EngineObserver {
    return {
      verified: (_code, seconds) => this.verifyDuration.observe(seconds),
      cacheLookup: (result: CacheLookupResult) => this.cacheLookupTally.add(result),
      storeError: () => this.recordStoreError("lookup"),
      failedAttemptRefused: () => this.failedAttemptRefusals.inc(),
      legacyVerified: (format, code) => this.legacyVerifications.inc({ format, outcome: code }),
    };
  }

  /** Counts outcomes, then hands the event on to the next recorder (usage tracking). */
  usageRecorder(next?: UsageRecorder): UsageRecorder {
    return {
      record: (event: UsageEvent) => {
        this.recordOutcome(event.code);
        next?.record(event);
      },
      flush: async () => next?.flush?.(),
      close: async () => next?.close?.(),
      pendingLastUse: (keyId: string) => next?.pendingLastUse?.(keyId) ?? null,
      flushRecentRequests: async () => next?.flushRecentRequests?.(),
      recentRequestsKept: next?.recentRequestsKept ?? 0,
    };
  }
}
