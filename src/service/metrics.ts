import { Counter, Gauge, Registry } from "prom-client";
import type { OutcomeCode } from "../core/outcomes.js";
import type { UsageEvent, UsageRecorder } from "../ports/usage-recorder.js";

/** Prometheus metrics of one service instance. Labels are bounded: outcome codes, never key ids. */
export class ServiceMetrics {
  readonly registry = new Registry();
  readonly verifications: Counter<"outcome">;
  readonly cacheEntries: Gauge<"kind">;

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
  }

  recordOutcome(code: OutcomeCode): void {
    this.verifications.inc({ outcome: code });
  }

  /** Counts outcomes, then hands the event on to the next recorder (usage tracking). */
  usageRecorder(next?: UsageRecorder): UsageRecorder {
    return {
      record: (event: UsageEvent) => {
        this.recordOutcome(event.code);
        next?.record(event);
      },
    };
  }
}
