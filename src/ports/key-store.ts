import type { AuditChainEntry } from "../core/audit-chain.js";
import type { Environment } from "../core/key-format.js";
import type { KeySearch } from "../core/key-search.js";
import type {
  AuditEvent,
  KeyLifecycleChanges,
  KeyRecord,
  KeyStatus,
  OwnerLimits,
  OwnerRecord,
  OwnerRef,
  OwnerType,
  SharedLimits,
} from "../core/model.js";

export type { KeySearch };

export interface KeyListFilter {
  ownerType?: OwnerRef["type"];
  ownerId?: string;
  environment?: Environment;
  status?: KeyStatus;
  search?: KeySearch;
  /** Keys not expired at `now` whose expiry is at or before this time (epoch ms). */
  expiresBy?: number;
  /** Needed to tell expired and grace-ended keys from active ones. */
  now: number;
}

/** Keys are listed newest first; the cursor is the last row of the previous page. */
export interface KeyPageCursor {
  createdAt: number;
  id: string;
}

export interface KeyPage {
  keys: KeyRecord[];
  next: KeyPageCursor | null;
}

export interface KeyLookup {
  key: KeyRecord;
  ownerDisabled: boolean;
  /** The limits the owner's keys share (docs/organizations.md), read in the same query; null when none. */
  ownerLimits: OwnerLimits | null;
}

/** What creating or updating an owner sets (docs/organizations.md); an absent field is left as it is. */
export interface OwnerFields {
  name?: string | null;
  limits?: SharedLimits | null;
}

/** Owners of one type, newest first; `q` matches the id or the name (case-insensitive substring). */
export interface OwnerListFilter {
  type: OwnerType;
  q?: string;
  /** Only these ids (an organization member's own organizations). */
  ids?: readonly string[];
}

export interface OwnerPage {
  owners: OwnerRecord[];
  next: KeyPageCursor | null;
}

export type RotateResult = "rotated" | "conflict" | "not_found";

/**
 * At most `max` keys of `owner` created since `since` (rotations not counted): checked in the
 * same transaction as the insert, so the cap is exact across workers and instances.
 */
export interface CreationCap {
  owner: OwnerRef;
  since: number;
  max: number;
}

/** Another key changed in the same transaction (a lineage's predecessors, when a key is revoked). */
export interface AlsoChanged {
  id: string;
  changes: KeyLifecycleChanges;
}

/** A stored key an import matched a record with: on its external id, or on its digest. */
export interface ImportMatch {
  id: string;
  externalId: string | null;
  digest: string;
}

/**
 * The writes of one import (docs/migrating.md): batches of new keys in one transaction each, with
 * no audit event each (the import writes one, with its counts, through `appendAuditEvent`). A dry
 * run writes nothing: it remembers what it would have written (outside the store's tables, in
 * bounded memory), so it reports what a real run would, duplicates across batches included.
 */
export interface KeyImportSession {
  /** Stored keys (and, in a dry run, keys this session would have written) with one of these external ids or digests. */
  findMatches(externalIds: readonly string[], digests: readonly string[]): Promise<ImportMatch[]>;
  /**
   * Writes the keys and their owners in one transaction. A key whose id, digest or external id
   * another writer stored first is left out; answers the ids left out.
   */
  insert(keys: readonly KeyRecord[]): Promise<ReadonlySet<string>>;
  /**
   * How many `insert`s may be in flight at once (each on its own connection); default 1. The
   * import matches each batch against the batches still being written as well as the store.
   */
  readonly writers?: number;
  close(): Promise<void>;
}

/** What changed since a change-feed cursor (KeyStore.pollKeyChanges). */
export interface KeyChangeBatch {
  /** Where the next poll starts. */
  cursor: string;
  /** Keys changed, each with the digest it was cached under (and a second entry for a new digest). */
  keys: { id: string; digest: string | null }[];
  /** Owners changed (disabled, enabled, deleted): every key they hold. */
  owners: OwnerRef[];
  /** Changes may be missing from the list (pruned before this poll, or too many to list): drop every cached key. */
  reset: boolean;
}

export interface AuditFilter {
  actorId?: string;
  targetId?: string;
  action?: string;
  since?: number;
  until?: number;
}

export interface AuditPage {
  events: AuditEvent[];
  next: string | null;
}

/**
 * The storage port. Every method that changes a key or an owner takes the audit event that
 * records it and writes both in one transaction: no change without its record, and no record of
 * a change that did not happen.
 */
export interface KeyStore {
  /** Applies pending migrations. Idempotent. */
  migrate(): Promise<void>;
  /** The hot path: one indexed lookup by digest, with the owner's disabled flag. */
  findKeyByDigest(digest: string): Promise<KeyLookup | null>;
  getKey(id: string): Promise<KeyRecord | null>;
  listKeys(filter: KeyListFilter, limit: number, after: KeyPageCursor | null): Promise<KeyPage>;
  /** Inserts the key; with a cap, only while the owner is under it (false when it is not). */
  insertKey(key: KeyRecord, audit: AuditEvent, cap?: CreationCap): Promise<boolean>;
  /**
   * Applies `changes` (and `also`, to other keys, in the same transaction) and returns the new
   * record, or null when the key does not exist.
   */
  updateKey(id: string, changes: KeyLifecycleChanges, audit: AuditEvent | null, also?: readonly AlsoChanged[]): Promise<KeyRecord | null>;
  /**
   * Marks `oldId` as replaced (only if it is not already replaced or revoked) and inserts the
   * successor, atomically. A second concurrent rotation gets `conflict`.
   */
  rotateKey(oldId: string, oldChanges: KeyLifecycleChanges, successor: KeyRecord, audit: AuditEvent): Promise<RotateResult>;
  getOwner(owner: OwnerRef): Promise<OwnerRecord | null>;
  /** Creates the owner if needed and sets its disabled flag. */
  setOwnerDisabled(owner: OwnerRef, disabled: boolean, audit: AuditEvent, now: number): Promise<OwnerRecord>;
  /** Creates the owner with `fields`, audited; null when it exists already. */
  createOwner(owner: OwnerRef, fields: OwnerFields, audit: AuditEvent, now: number): Promise<OwnerRecord | null>;
  /** Changes an existing owner's name or shared limits, audited; null when there is no such owner. */
  updateOwner(owner: OwnerRef, fields: OwnerFields, audit: AuditEvent): Promise<OwnerRecord | null>;
  listOwners(filter: OwnerListFilter, limit: number, after: KeyPageCursor | null): Promise<OwnerPage>;
  /** Creates the owner row if it does not exist (no audit: owners appear with their first key). */
  ensureOwner(owner: OwnerRef, now: number): Promise<void>;
  appendAuditEvent(event: AuditEvent): Promise<void>;
  listAuditEvents(filter: AuditFilter, limit: number, after: string | null): Promise<AuditPage>;
  /** The audit chain in insertion order, after `afterSeq` (0 for the start), for verification and export. */
  readAuditChain(afterSeq: number, limit: number): Promise<AuditChainEntry[]>;
  getMeta(name: string): Promise<string | null>;
  /** Sets a meta value only if unset; returns whether this call set it (a once-only latch). */
  setMetaOnce(name: string, value: string): Promise<boolean>;
  /** Every key, or with a filter the keys `listKeys` would page through (exact: a count, not an estimate). */
  countKeys(filter?: KeyListFilter): Promise<number>;
  /** Optional: bulk writes for `Keyward.importKeys`; stores without it cannot import. */
  openImport?(options: { dryRun: boolean }): Promise<KeyImportSession>;
  /**
   * Optional: a cheap value that differs between two calls whenever another connection or
   * process changed the data in between (changes made through this store object are seen by
   * the engine itself). It lets the verify cache renew every entry at once instead of
   * re-reading each key when its maximum age passes. Stores without one re-read per key.
   */
  changeToken?(): Promise<number | string>;
  /**
   * Optional: the keys and owners changed (by any process) since `after`, the cursor an earlier
   * call answered (null: start a feed, nothing listed). Stores with one keep every cached key
   * current by one cheap read per poll, whatever the number of keys (docs/architecture.md, the
   * change feed); the engine then prefers it to `changeToken`.
   */
  pollKeyChanges?(after: string | null): Promise<KeyChangeBatch>;
  /**
   * Optional: one small write (a meta row), for readiness after a write failed for lack of space
   * or permission: it succeeds again once the store can be written.
   */
  probeWrite?(): Promise<void>;
  /**
   * Optional: why the store's files cannot be written now, seen without writing (a read-only
   * file system, an immutable file); null when nothing refuses. Readiness fails while it answers.
   */
  writeRefusal?(): string | null;
  close(): Promise<void>;
}
