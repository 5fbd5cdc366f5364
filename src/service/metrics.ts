import { Counter, Gauge, Registry } from "prom-client";
import type { OutcomeCode } from "../core/outcomes.js";
import type { LimiterMode } from "../ports/limits.js";
import type { UsageEvent, UsageRecorder } from "../ports/usage-recorder.js";
import type { UsageBufferStats } from "../usage/buffered-usage-recorder.js";

const LIMITER_MODES: readonly LimiterMode[] = ["shared", "degraded", "open"];

/** Prometheus metrics of one service instance. Labels are bounded: outcome codes, never key ids. */
export class ServiceMetrics {
  readonly registry = new Registry();
  readonly verifications: Counter<"outcome">;
  readonly cacheEntries: Gauge<"kind">;
  readonly limiterMode: Gauge<"mode">;

  constructor() {
    this.verifications = new Counter({
      name: "keyward_verifications_total",
      help: "Key verifications by outcome code",
      labelNames: ["outcome"],
      registers: [this.registry],
    });
    this.cacheEntries = new Gauge({
      name: "keyward_cache_entries",
      help: "Entries in the verification cache",
      labelNames: ["kind"],
      registers: [this.registry],
    });
    this.limiterMode = new Gauge({
      name: "keyward_limiter_mode",
      help: "1 for the limiter's current mode: shared (Redis), degraded (per instance) or open",
      labelNames: ["mode"],
      registers: [this.registry],
    });
    this.setLimiterMode("shared");
  }

  recordOutcome(code: OutcomeCode): void {
    this.verifications.inc({ outcome: code });
  }

  setLimiterMode(mode: LimiterMode): void {
    for (const m of LIMITER_MODES) this.limiterMode.set({ mode: m }, m === mode ? 1 : 0);
  }

  /** Exposes the usage buffer's size and drops, read at scrape time. */
  watchUsageBuffer(stats: UsageBufferStats): void {
    new Gauge({
      name: "keyward_usage_buffer_entries",
      help: "Usage rows waiting in the buffer for the next flush",
      registers: [this.registry],
      collect() {
        this.set(stats.entries);
      },
    });
    new Counter({
      name: "keyward_usage_dropped_events_total",
      help: "Usage events dropped because the buffer was full (the store was slow or down)",
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(stats.dropped);
      },
    });
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
    };
  }
}
