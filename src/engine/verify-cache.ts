import { LRUCache } from "lru-cache";
import { type ParsedCidr, parseCidr } from "../core/cidr.js";
import { toVerifiedKey, type VerifiedKey } from "../core/key-view.js";
import type { KeyRecord, OwnerRef } from "../core/model.js";
import type { KeyLookup } from "../ports/key-store.js";

export interface VerifyCacheOptions {
  /**
   * Positive entries: the most recently used `maxEntries` are always kept, and at most twice as
   * many are held (two generations, see GenerationCache). Default 100,000 (about 0.75 KB each).
   */
  maxEntries?: number;
  /**
   * After this age an entry is re-read from the store. Default 5,000 ms: the cross-instance
   * staleness bound when the invalidation channel is down. With a change feed it is a safety net
   * (the engine defaults it to 300,000 ms then): the feed keeps entries current.
   */
  maxAgeMs?: number;
  /**
   * With a change feed (KeyStore.pollKeyChanges): how often it is polled while traffic flows.
   * An entry is used without a poll for at most twice this (the revocation bound without Redis,
   * docs/security.md). Default 500 ms.
   */
  changePollMs?: number;
  /** With a change feed that fails (its poll errors or hangs): entries are used for this long after their read, as without a feed. Default 5,000 ms (never above `maxAgeMs`). */
  unsyncedMaxAgeMs?: number;
  /** Unknown digests remembered at most. Default 100,000: a flood of random keys stays O(1) and bounded. */
  negativeMaxEntries?: number;
  /** Default 5,000 ms. A key created on this instance clears its negative entry at once. */
  negativeMaxAgeMs?: number;
  /** How long a verified key keeps working from cache while the store is unreachable. Default 300,000 ms. */
  staleWindowMs?: number;
  /**
   * How long a request for a cached key past its maximum age waits for the store's answer before
   * it is answered from cache (within the stale window), the re-read carrying on behind it: a
   * slow or hung store must not hold up keys it has already verified. Default 250 ms.
   */
  refreshWaitMs?: number;
}

export interface CachedKey {
  lookup: KeyLookup;
  /** CIDRs parsed once per fetch, not per request. */
  cidrs: ParsedCidr[];
  /** The handler's view of the key, built once per fetch and frozen, since every request shares it. */
  view: VerifiedKey;
  fetchedAt: number;
  /** Read after the change feed's first poll: later changes to it reach this cache through the feed. */
  feedCovered: boolean;
}

/** The change feed's state (KeyStore.pollKeyChanges), kept by the engine's polls. */
interface FeedState {
  /** When the latest poll started (successful or not): polls are due every `changePollMs`. */
  polledAt: number;
  /** When the latest successful poll started: every change committed before it has been applied. */
  syncedAt: number;
  /** Whether a poll has succeeded: entries read after that are covered by the feed. */
  baselined: boolean;
  /** Whether the latest poll failed (or hung past the refresh wait). */
  failing: boolean;
}

/** The last read of the store's change token (see KeyStore.changeToken). */
interface ChangeTokenState {
  token: number | string;
  /** When a read that returned `token` first ended: entries fetched after it are in step with `token`. */
  stableSince: number;
  /** When the latest read that still returned `token` started. */
  checkedAt: number;
}

/**
 * A recency cache made of two Maps (generations): reads hit the current one, or promote from the
 * previous one; when the current one is full, the previous one is dropped and the current one
 * becomes it. A hit is one Map lookup, with no list to reorder, which is what the verify path
 * pays on every request. Every entry used within the last `generationSize` distinct insertions
 * is kept; at most 2 × (`generationSize` + 1) are held. A working set that fits one generation
 * never moves.
 */
export class GenerationCache<V> {
  private current = new Map<string, V>();
  private previous = new Map<string, V>();

  constructor(
    private readonly generationSize: number,
    /** Called for each entry dropped with an old generation (not for delete or clear). */
    private readonly onDrop?: (value: V) => void,
  ) {
    if (!Number.isSafeInteger(generationSize) || generationSize < 1) throw new RangeError("generationSize must be a positive integer");
  }

  get(key: string): V | undefined {
    const value = this.current.get(key);
    if (value !== undefined) return value;
    const old = this.previous.get(key);
    if (old !== undefined) {
      this.previous.delete(key);
      this.insert(key, old);
    }
    return old;
  }

  set(key: string, value: V): void {
    if (this.current.has(key)) {
      this.current.set(key, value);
      return;
    }
    this.previous.delete(key);
    this.insert(key, value);
  }

  delete(key: string): void {
    if (!this.current.delete(key)) this.previous.delete(key);
  }

  clear(): void {
    this.current.clear();
    this.previous.clear();
  }

  /** Every entry, both generations (a copy: the caller may delete while it iterates). */
  entries(): [string, V][] {
    return [...this.previous.entries(), ...this.current.entries()];
  }

  get size(): number {
    return this.current.size + this.previous.size;
  }

  private insert(key: string, value: V): void {
    this.current.set(key, value);
    if (this.current.size <= this.generationSize) return;
    if (this.onDrop) for (const dropped of this.previous.values()) this.onDrop(dropped);
    this.previous = this.current;
    this.current = new Map();
  }
}

/** Shared by every cached key with no metadata and no allowed CIDRs (the list and its parsed form); frozen, as a view's parts are. */
const NO_METADATA: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;
const NO_CIDRS: string[] = Object.freeze([]) as unknown as string[];
const NO_PARSED_CIDRS: ParsedCidr[] = Object.freeze([]) as unknown as ParsedCidr[];

/** At most this many distinct scope lists and owners are shared; past it, keys keep their own. */
const MAX_SHARED_PARTS = 10_000;

/**
 * Equal parts of cached keys held once: the store reads every key's scopes, owner and empty
 * metadata as new objects and strings, and at 100,000 cached keys those copies were a third of the
 * cache's heap (docs/benchmarks.md, Profiling 22), all of it marked by every major GC. The parts
 * shared are the ones a view freezes anyway, so sharing changes no value anyone can see.
 */
class SharedKeyParts {
  private readonly scopes = new Map<string, string[]>();
  private readonly owners = new Map<string, KeyRecord["owner"]>();

  /** Replaces the parts of a freshly read record (`digest`: the cache's own copy of its digest). */
  compact(key: KeyRecord, digest: string): void {
    if (key.digest === digest) key.digest = digest;
    if (key.lineageId === key.id) key.lineageId = key.id;
    if (key.allowedCidrs.length === 0) key.allowedCidrs = NO_CIDRS;
    if (isEmptyObject(key.metadata)) key.metadata = NO_METADATA;
    key.scopes = this.share(this.scopes, key.scopes.join(" "), key.scopes);
    key.owner = this.share(this.owners, `${key.owner.type}:${key.owner.id}`, key.owner);
  }

  private share<T>(parts: Map<string, T>, id: string, part: T): T {
    const held = parts.get(id);
    if (held !== undefined) return held;
    if (parts.size < MAX_SHARED_PARTS) parts.set(id, part);
    return part;
  }
}

function isEmptyObject(value: Record<string, unknown>): boolean {
  for (const _ in value) return false;
  return true;
}

function freezeView(view: VerifiedKey): VerifiedKey {
  Object.freeze(view.owner);
  Object.freeze(view.scopes);
  deepFreeze(view.metadata);
  return Object.freeze(view);
}

function deepFreeze(value: unknown): void {
  if (value === null || typeof value !== "object" || Object.isFrozen(value)) return;
  for (const inner of Object.values(value)) deepFreeze(inner);
  Object.freeze(value);
}

/**
 * The verification cache: digest → key, with a short maximum age so revocations made elsewhere
 * are seen within it, and a negative LRU for unknown digests. Changes made through this process
 * delete entries at once. When the store has a change token, an entry past its maximum age is
 * renewed without a re-read as long as the token shows nothing changed since it was fetched.
 */
export class VerifyCache {
  readonly maxAgeMs: number;
  readonly negativeMaxAgeMs: number;
  readonly staleWindowMs: number;
  readonly refreshWaitMs: number;
  private readonly positive: GenerationCache<CachedKey>;
  private readonly negative: LRUCache<string, number>;
  private readonly digestsById = new Map<string, string>();
  private readonly shared = new SharedKeyParts();
  private changeToken: ChangeTokenState | null = null;
  private feed: FeedState | null = null;
  readonly changePollMs: number;
  readonly unsyncedMaxAgeMs: number;
  private invalidations = 0;

  constructor(options: VerifyCacheOptions = {}) {
    this.maxAgeMs = options.maxAgeMs ?? 5_000;
    this.negativeMaxAgeMs = options.negativeMaxAgeMs ?? 5_000;
    this.staleWindowMs = options.staleWindowMs ?? 300_000;
    this.refreshWaitMs = options.refreshWaitMs ?? 250;
    this.changePollMs = options.changePollMs ?? 500;
    this.unsyncedMaxAgeMs = Math.min(options.unsyncedMaxAgeMs ?? 5_000, this.maxAgeMs);
    this.positive = new GenerationCache(options.maxEntries ?? 100_000, (entry) => {
      if (this.digestsById.get(entry.lookup.key.id) === entry.lookup.key.digest) this.digestsById.delete(entry.lookup.key.id);
    });
    this.negative = new LRUCache({ max: options.negativeMaxEntries ?? 100_000 });
  }

  /**
   * A counter moved by every invalidation. A store read takes it before it starts and hands it
   * back to `setFound`/`setMissing`: a read that an invalidation overtook may have read the row
   * as it was before the change (a revocation committed while the read was in flight), so its
   * result is answered to the requests that were waiting for it but never cached
   * (docs/security.md, revocation bound).
   */
  get epoch(): number {
    return this.invalidations;
  }

  /** The entry for `digest`, fresh or not; the caller decides by `fetchedAt`. */
  get(digest: string): CachedKey | undefined {
    return this.positive.get(digest);
  }

  /** The entry for `digest` if it may be used as it is at `now` (young enough, kept current by the change feed, or renewed by the change token). */
  fresh(digest: string, now: number): CachedKey | undefined {
    const entry = this.positive.get(digest);
    if (entry === undefined) return undefined;
    if (this.isFresh(entry, now) || (this.feed === null && this.renew(entry, now))) return entry;
    return undefined;
  }

  /**
   * Whether `entry` may be used at `now` without the store. Without a feed: younger than the
   * maximum age. With one: younger than the maximum age (the safety net), read after the feed's
   * first poll, and the feed polled within twice its interval; while the feed fails, younger
   * than the unsynced age, as without a feed.
   */
  isFresh(entry: CachedKey, now: number): boolean {
    const age = now - entry.fetchedAt;
    if (age >= this.maxAgeMs) return false;
    const feed = this.feed;
    if (feed === null) return true;
    if (entry.feedCovered && now - feed.syncedAt < 2 * this.changePollMs) return true;
    return feed.failing && age < this.unsyncedMaxAgeMs;
  }

  /** Whether a poll of the feed (rather than a re-read) would make `entry` fresh at `now`. */
  needsFeed(entry: CachedKey, now: number): boolean {
    const feed = this.feed;
    if (feed === null || !entry.feedCovered || now - entry.fetchedAt >= this.maxAgeMs) return false;
    return now - feed.syncedAt >= 2 * this.changePollMs && (!feed.failing || now - feed.polledAt >= this.changePollMs);
  }

  /** Entries are kept current by a change feed from now on (the engine polls it). */
  useChangeFeed(): void {
    this.feed ??= { polledAt: Number.NEGATIVE_INFINITY, syncedAt: Number.NEGATIVE_INFINITY, baselined: false, failing: false };
  }

  get feedInUse(): boolean {
    return this.feed !== null;
  }

  /** Whether a poll of the feed has succeeded: reads from now on are covered by it. */
  get feedBaselined(): boolean {
    return this.feed?.baselined === true;
  }

  /** Whether the feed should be polled at `now` (while traffic flows). */
  feedDue(now: number): boolean {
    return this.feed !== null && now - this.feed.polledAt >= this.changePollMs;
  }

  feedPollStarted(at: number): void {
    if (this.feed) this.feed.polledAt = at;
  }

  /** A poll that started at `startedAt` succeeded and its changes were applied. */
  feedSynced(startedAt: number): void {
    const feed = this.feed;
    if (!feed) return;
    feed.syncedAt = Math.max(feed.syncedAt, startedAt);
    feed.baselined = true;
    feed.failing = false;
  }

  feedFailed(): void {
    if (this.feed) this.feed.failing = true;
  }

  /**
   * Records a read of the store's change token: `startedAt` before the read, `endedAt` after.
   * The same token as before moves the check time on; a new one starts a new stable period.
   */
  noteChangeToken(token: number | string, startedAt: number, endedAt: number): void {
    const state = this.changeToken;
    if (state && state.token === token) state.checkedAt = Math.max(state.checkedAt, startedAt);
    else this.changeToken = { token, stableSince: endedAt, checkedAt: startedAt };
  }

  /** Whether the change token should be read again: its last read is half a maximum age old. */
  changeTokenDue(now: number): boolean {
    return this.changeToken === null || now - this.changeToken.checkedAt >= this.maxAgeMs / 2;
  }

  /**
   * An entry fetched while the change token had its current value, checked within the maximum
   * age, is as exact as that check: its age restarts from it. Otherwise it must be re-read.
   */
  renew(entry: CachedKey, now: number): boolean {
    const state = this.changeToken;
    if (state === null || now - state.checkedAt >= this.maxAgeMs || entry.fetchedAt < state.stableSince) return false;
    if (state.checkedAt > entry.fetchedAt) entry.fetchedAt = state.checkedAt;
    return true;
  }

  isKnownMissing(digest: string, now: number): boolean {
    const at = this.negative.get(digest);
    return at !== undefined && now - at < this.negativeMaxAgeMs;
  }

  setFound(digest: string, lookup: KeyLookup, now: number, readEpoch = this.invalidations, feedCovered = false): CachedKey {
    this.shared.compact(lookup.key, digest);
    const cidrs = lookup.key.allowedCidrs;
    const entry: CachedKey = {
      lookup,
      cidrs: cidrs.length === 0 ? NO_PARSED_CIDRS : cidrs.map(parseCidr).filter((c): c is ParsedCidr => c !== null),
      view: freezeView(toVerifiedKey(lookup.key)),
      fetchedAt: now,
      feedCovered,
    };
    if (readEpoch !== this.invalidations) return entry;
    this.positive.set(digest, entry);
    this.digestsById.set(lookup.key.id, digest);
    this.negative.delete(digest);
    return entry;
  }

  setMissing(digest: string, now: number, readEpoch = this.invalidations): void {
    if (readEpoch === this.invalidations) this.negative.set(digest, now);
  }

  invalidateKey(keyId: string, digest?: string): void {
    this.invalidations++;
    const known = digest ?? this.digestsById.get(keyId);
    if (known !== undefined) {
      this.positive.delete(known);
      this.negative.delete(known);
    }
    this.digestsById.delete(keyId);
  }

  /**
   * Forgets every digest remembered as unknown: keys were added in bulk (an import), and one of
   * them may have been asked for just before. A read in flight does not remember its miss either.
   */
  clearMissing(): void {
    this.invalidations++;
    this.negative.clear();
  }

  /** Drops every entry of keys held by `owner` (a change feed's owner change: rare, so a scan is fine). */
  invalidateOwner(owner: OwnerRef): void {
    this.invalidations++;
    for (const [digest, entry] of this.positive.entries()) {
      const held = entry.lookup.key.owner;
      if (held.type !== owner.type || held.id !== owner.id) continue;
      this.positive.delete(digest);
      if (this.digestsById.get(entry.lookup.key.id) === digest) this.digestsById.delete(entry.lookup.key.id);
    }
  }

  /** Owner changes touch many keys; they are rare, so dropping every positive entry is simplest and safe. */
  invalidateAll(): void {
    this.invalidations++;
    this.positive.clear();
    this.digestsById.clear();
  }

  get size(): { positive: number; negative: number } {
    return { positive: this.positive.size, negative: this.negative.size };
  }
}
