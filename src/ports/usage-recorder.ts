import type { OwnerRef } from "../core/model.js";
import type { OutcomeCode } from "../core/outcomes.js";

export interface UsageEvent {
  /** Null when no key was identified (missing, malformed, unknown). */
  keyId: string | null;
  owner?: OwnerRef | undefined;
  code: OutcomeCode;
  at: number;
  ip: string | undefined;
  /**
   * What the request was for, for the key's recent requests: the HTTP method of the request the
   * key came with (middleware, forward auth), or undefined for a named API call.
   */
  method?: string | undefined;
  /**
   * With `method`, the request target as received (path, maybe with a query string or a whole
   * URL: cut to its path when written, never on the hot path); without, the API call's name
   * (`verify`). Undefined when unknown.
   */
  route?: string | undefined;
  /** The scopes an INSUFFICIENT_SCOPE denial lacked. */
  missingScopes?: readonly string[] | undefined;
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
  /** The key's latest use recorded here and not yet in the store (last_used_at lags the flush), or null. */
  pendingLastUse?(keyId: string): LastUse | null;
  /** Writes the recent requests recorded so far, so a read of the log sees them. */
  flushRecentRequests?(): Promise<void>;
  /** How many recent requests are kept per key; 0 when the log is off. */
  readonly recentRequestsKept?: number;
}

export const noopUsageRecorder: UsageRecorder = { record: () => {} };

/** One verification of a key, as its recent-requests log keeps it (docs/usage.md). */
export interface RecentRequest {
  keyId: string;
  at: number;
  code: OutcomeCode;
  /** The client address, when the edge knew it. */
  ip: string | null;
  /** `GET /orders/7` (method and path, never a query string), or an API call's name (`verify`); null when unknown. */
  route: string | null;
  /** The scopes an INSUFFICIENT_SCOPE denial lacked; empty otherwise. */
  missingScopes: string[];
}

/** A stored recent request: `seq` orders a key's entries (and pages them) with `at`. */
export interface StoredRecentRequest extends RecentRequest {
  seq: number;
}

/** Newest first: the page after this entry. */
export interface RecentRequestCursor {
  at: number;
  seq: number;
}

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
  /**
   * `key` (default): a row per bucket, key and outcome. `outcome`: a row per bucket and outcome,
   * summed over every key (keyId empty), so a whole deployment's chart stays a few hundred rows
   * however many keys it has (docs/usage.md).
   */
  groupBy?: "key" | "outcome";
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
  /** Optional: a journal of flushes (see UsageJournal). Without one, each flush writes its counts directly. */
  readonly journal?: UsageJournal;
  /** Optional: releases what the store opened itself (a connection of its own). */
  close?(): Promise<void>;
  /**
   * Optional: appends to the keys' recent-requests logs, keeping the newest `keep` of each key
   * (older ones are overwritten in place: the table never holds more than `keep` a key).
   * Each key's requests are in time order, at most `keep` of them.
   */
  writeRecentRequests?(requests: readonly RecentRequest[], keep: number): Promise<void>;
  /** A key's recent requests, newest first, at most `keep` of them in all. */
  listRecentRequests?(keyId: string, keep: number, limit: number, after: RecentRequestCursor | null): Promise<StoredRecentRequest[]>;
}

export const BUCKET_MS: Record<UsageBucket, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };

/**
 * A journal of flushes, for stores whose writes cost the recording process itself (SQLite). Each
 * flush is one appended row, whatever the number of keys in it; the recorder keeps the sum of
 * its flushes since the last fold in memory and folds it into the counts in slices, so a key
 * used in every flush interval of a minute costs one row update a minute, and no slice holds
 * the database (or, for SQLite, the event loop) for long. At every moment the counts plus the
 * journal's live rows are the truth: each slice also appends a row that cancels what it added,
 * and a fold ends by marking the rows it folded dead (deleted afterwards in short chunks). A
 * process that dies leaves its live rows behind; another (or its successor) recovers them.
 */
export interface UsageJournal {
  /**
   * Appends one flush of `writer`, encoded by UsageBatchBuilder (or encodeUsageBatch), and marks
   * the writer alive. Returns the row's id.
   */
  append(writer: UsageWriter, batch: string): Promise<number>;
  /**
   * Adds one slice of a fold to the counts and last uses, with a row cancelling the counts in the
   * journal, in one transaction. False, with nothing written, when the writer's journal was
   * recovered by another process meanwhile: the fold must stop, its sum is already counted.
   */
  applySlice(writer: string, fold: number, counts: readonly UsageCount[], lastUses: readonly LastUse[]): Promise<boolean>;
  /**
   * Ends fold number `fold`, which added everything the writer had journaled up to `upTo`: those
   * flushes and every cancelling row of the writer up to this fold (a failed fold's too: what it
   * had not added went back into the sum this fold added) are dead from here on, in one short
   * write; `purgeFolded` deletes them.
   */
  endFold(writer: string, fold: number, upTo: number): Promise<void>;
  /** Deletes up to `limit` of the writer's dead rows; returns how many. A short transaction, to be repeated with pauses. */
  purgeFolded(writer: string, limit: number): Promise<number>;
  /** Folds, in one transaction, the journals of writers that are gone (ended without folding). Returns the writers recovered. */
  recoverOrphans(): Promise<number>;
  /** Marks the writer gone after its last fold (graceful shutdown). */
  retire(writer: string): Promise<void>;
}

/** One recording process: its journal rows are its own until it folds them, or is gone. */
export interface UsageWriter {
  id: string;
  host: string;
  pid: number;
}
