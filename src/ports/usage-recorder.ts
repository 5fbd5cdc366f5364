import type { OwnerRef } from "../core/model.js";
import type { OutcomeCode } from "../core/outcomes.js";

export interface UsageEvent {
  /** Null when no key was identified (missing, malformed, unknown). */
  keyId: string | null;
  owner?: OwnerRef | undefined;
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
  /** Writes what is buffered now. */
  flush?(): Promise<void>;
  /** Writes what is buffered and stops; called when the engine closes. */
  close?(): Promise<void>;
}

export const noopUsageRecorder: UsageRecorder = { record: () => {} };

/** One aggregated row: how many verifications of one key ended in one outcome in one minute. */
export interface UsageCount {
  /** Epoch ms of the minute's start. */
  minute: number;
  /** Empty when no key was identified. */
  keyId: string;
  /** `user:alice`, `application:billing`, or empty. */
  owner: string;
  outcome: OutcomeCode;
  count: number;
}

export interface LastUse {
  keyId: string;
  at: number;
  ip: string | null;
}

export type UsageBucket = "minute" | "hour" | "day";

export interface UsageQuery {
  keyId?: string;
  owner?: string;
  outcome?: OutcomeCode;
  bucket: UsageBucket;
  since: number;
  until: number;
  /** At most this many rows. */
  limit: number;
}

export interface UsageRow {
  /** Epoch ms of the bucket's start. */
  start: number;
  keyId: string;
  outcome: OutcomeCode;
  count: number;
}

/** Where the usage buffer lands: counts added per minute, and each key's last use. */
export interface UsageStore {
  /** Adds the counts and moves `last_used_at` forward, in one transaction. */
  writeUsage(counts: readonly UsageCount[], lastUses: readonly LastUse[]): Promise<void>;
  queryUsage(query: UsageQuery): Promise<UsageRow[]>;
  /** Deletes counts older than `before` (retention). */
  pruneUsage(before: number): Promise<number>;
}

export const BUCKET_MS: Record<UsageBucket, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };
