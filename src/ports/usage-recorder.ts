import type { OutcomeCode } from "../core/outcomes.js";

export interface UsageEvent {
  /** Null when no key was identified (missing, malformed, unknown). */
  keyId: string | null;
  code: OutcomeCode;
  at: number;
  ip: string | undefined;
}

/**
 * Records verification outcomes. Called on the hot path, so it must not wait on storage:
 * implementations buffer and flush in batches.
 */
export interface UsageRecorder {
  record(event: UsageEvent): void;
}

export const noopUsageRecorder: UsageRecorder = { record: () => {} };
