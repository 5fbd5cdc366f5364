import { isIpAllowed } from "../core/cidr.js";
import { KeywardError, refusalError } from "../core/errors.js";
import { type HashSecret, hashApiKey } from "../core/hashing.js";
import {
  DEFAULT_KEY_PREFIX,
  type Environment,
  formatKeyRef,
  generateApiKey,
  isValidKeyPrefix,
  MAX_KEY_LENGTH,
  parseApiKey,
} from "../core/key-format.js";
import type { VerifiedKey } from "../core/key-view.js";
import { LEGACY_DIGEST_PREFIX, type LegacyFormat, LegacyFormats, legacyDigestOf } from "../core/legacy-formats.js";
import {
  type AuditEvent,
  computeKeyStatus,
  type KeyChanges,
  type KeyRecord,
  type OwnerLimits,
  type OwnerRecord,
  type OwnerRef,
  type RequestContext,
} from "../core/model.js";
import { newKeyRecord } from "../core/new-key-record.js";
import type { DenialCode } from "../core/outcomes.js";
import { cryptoRandomBytes, generateId, type RandomBytes } from "../core/random.js";
import { findMissingScopes } from "../core/scopes.js";
import { sharedLimitsJson } from "../core/shared-limits.js";
import { FailedAttemptLimiter } from "../limits/failed-attempt-limiter.js";
import { KeyLimitEnforcer } from "../limits/key-limit-enforcer.js";
import { MemoryRateLimiter } from "../limits/memory-rate-limiter.js";
import { type Clock, systemClock } from "../ports/clock.js";
import { type EngineObserver, noopEngineObserver } from "../ports/engine-observer.js";
import type {
  CreationCap,
  KeyChangeBatch,
  KeyListFilter,
  KeyLookup,
  KeyPageCursor,
  KeyStore,
  OwnerFields,
  OwnerListFilter,
} from "../ports/key-store.js";
import type { Lease, LimitEnforcer, LimiterMode, LimitsSnapshot, RateLimitState } from "../ports/limits.js";
import {
  noopUsageRecorder,
  type RecentRequestCursor,
  type StoredRecentRequest,
  type UsageQuery,
  type UsageRecorder,
  type UsageRow,
  type UsageStore,
} from "../ports/usage-recorder.js";
import { MemoryQuotaCounter } from "../stores/memory/memory-quota-counter.js";
import { buildAuditEvent, diffForAudit } from "./audit.js";
import type { ImportItem } from "./import-records.js";
import { type ImportOptions, type ImportReport, importKeys } from "./key-import.js";
import {
  type CreateKeyInput,
  validateCreateKeyInput,
  validateDelegationHeld,
  validateGraceSeconds,
  validateKeyChanges,
} from "./key-input.js";
import { type CachedKey, VerifyCache, type VerifyCacheOptions } from "./verify-cache.js";

export interface KeywardOptions {
  store: KeyStore;
  /** Deployment-wide key prefix. Default `kw`. */
  prefix?: string;
  /** Keyed hashing secrets, current first; older ones still verify. Default none (plain SHA-256). */
  hashSecrets?: HashSecret[];
  cache?: VerifyCacheOptions;
  limits?: LimitEnforcer;
  usage?: UsageRecorder;
  /** Where recorded usage lands, for `queryUsage`. */
  usageStore?: UsageStore;
  clock?: Clock;
  random?: RandomBytes;
  /** Metrics hooks (verify latency, cache lookups, store errors). Default: none. */
  observer?: EngineObserver;
  /**
   * The throttle of failed attempts (MALFORMED, NOT_FOUND) per client address (`VerifyOptions.ip`),
   * in front of the store lookup. Default: 100 per minute per address, counted in this process;
   * `false` turns it off.
   */
  failedAttempts?: FailedAttemptLimiter | false;
  /**
   * Key formats of the system before Keyward (docs/migrating.md): a presented string of one of
   * them is looked up by that system's digest and verified like any key. Default none.
   */
  legacyFormats?: readonly LegacyFormat[];
}

export interface VerifyOptions {
  /** Every one must be granted. */
  scopes?: readonly string[];
  /** The route's environment, when it is production-only or sandbox-only. */
  environment?: Environment;
  /** The client address, for CIDR allow-lists. */
  ip?: string;
  /** Units of quota this request spends. Default 1. */
  cost?: number;
  /** Skip the limits stage (introspection and management calls are not metered). */
  skipLimits?: boolean;
  /**
   * How long a concurrency slot stays held if it is never released. Edges that see the end
   * of the request release it themselves; forward auth relies on this. Default the limiter's.
   */
  leaseMs?: number;
  /**
   * For the key's recent requests (docs/usage.md): the HTTP method of the request the key came
   * with. With it, `route` is that request's target as received (its path is kept, never its
   * query string).
   */
  method?: string;
  /** The request target (with `method`), or the name of the API call that verified the key (`verify`). */
  route?: string;
}

export type VerifyResult =
  | {
      valid: true;
      code: "VALID";
      key: VerifiedKey;
      /** The stored record, for edges that need more than the verified view. Never serialise it: it holds the digest. */
      record: KeyRecord;
      rateLimit?: RateLimitState;
      /** The concurrency slot this request holds, when the key has a concurrency limit. */
      lease?: Lease;
      /** Frees the key's concurrency slot; the edge calls it when the response ends. */
      release?: () => void;
    }
  | {
      valid: false;
      code: DenialCode;
      /** Present once the key is identified: only its holder sees why it failed. */
      key?: VerifiedKey;
      missingScopes?: string[];
      retryAfterSeconds?: number;
      rateLimit?: RateLimitState;
    };

export type LeakReportEntry =
  | { index: number; outcome: "malformed" | "unknown" }
  | { index: number; outcome: "revoked" | "already_revoked"; id: string; ref: string };

export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

/** Called with each audit event after the write that carries it committed. */
export type CommittedListener = (event: AuditEvent) => void;

/** Keyward change notifications, for cross-instance cache invalidation. */
export type InvalidationMessage = { kind: "key"; keyId: string; digest?: string } | { kind: "all" };

function encodeCursor(cursor: KeyPageCursor | null): string | null {
  return cursor === null ? null : Buffer.from(`${cursor.createdAt}.${cursor.id}`).toString("base64url");
}

function decodeRecentCursor(value: string | undefined): RecentRequestCursor | null {
  if (!value) return null;
  const match = /^(\d{1,15})\.(\d{1,15})$/.exec(Buffer.from(value, "base64url").toString("utf8"));
  if (!match) throw new KeywardError("INVALID_CURSOR", "cursor is not one this server issued");
  return { at: Number(match[1]), seq: Number(match[2]) };
}

function decodeCursor(value: string | undefined): KeyPageCursor | null {
  if (!value) return null;
  const decoded = Buffer.from(value, "base64url").toString("utf8");
  const match = /^(\d{1,15})\.(key_[0-9A-Za-z]{16,40})$/.exec(decoded);
  if (!match) throw new KeywardError("INVALID_CURSOR", "cursor is not one this server issued");
  return { createdAt: Number(match[1]), id: match[2] as string };
}

/**
 * The cache's maximum age with a change feed: a safety net only, since the feed drops changed
 * entries within a second. An hour keeps re-reads at keys / 3,600 per second per instance (28 at
 * 100,000 keys in use), within the scale target of docs/benchmarks.md; a store without a feed
 * keeps 5 s (docs/configuration.md, KEYWARD_CACHE_MAX_AGE_MS).
 */
export const FEED_CACHE_MAX_AGE_MS = 3_600_000;

function encodeOwnerCursor(cursor: KeyPageCursor): string {
  return Buffer.from(`${cursor.createdAt}.${cursor.id}`).toString("base64url");
}

function decodeOwnerCursor(value: string): KeyPageCursor {
  const match = /^(\d{1,15})\.([^\s]{1,200})$/.exec(Buffer.from(value, "base64url").toString("utf8"));
  if (!match) throw new KeywardError("INVALID_CURSOR", "cursor is not one this server issued");
  return { createdAt: Number(match[1]), id: match[2] as string };
}

/** What an owner change records in the audit trail: each field given, from what it was, in the API's spelling. */
function ownerFieldChanges(before: OwnerRecord | null, fields: OwnerFields): Record<string, { from: unknown; to: unknown }> {
  const changes: Record<string, { from: unknown; to: unknown }> = {};
  if (fields.name !== undefined) changes.name = { from: before?.name ?? null, to: fields.name };
  if (fields.limits !== undefined)
    changes.shared_limits = { from: sharedLimitsJson(before?.limits ?? null), to: sharedLimitsJson(fields.limits) };
  return changes;
}

/**
 * The Keyward engine: issues, verifies and governs API keys over a KeyStore. Verification
 * returns its outcome as data; misuse throws a KeywardError.
 *
 * @example
 * const keyward = new Keyward({ store: new SqliteKeyStore({ filename: "keyward.db" }) });
 * const result = await keyward.verify(key, { scopes: ["read"] });
 * if (!result.valid) console.log(result.code);
 */
export class Keyward {
  readonly prefix: string;
  readonly store: KeyStore;
  readonly cache: VerifyCache;
  readonly clock: Clock;
  private readonly hashSecrets: HashSecret[];
  private readonly limits: LimitEnforcer;
  private readonly usage: UsageRecorder;
  private readonly usageStore: UsageStore | undefined;
  private readonly random: RandomBytes;
  private readonly inflight = new Map<string, Promise<CachedKey | null>>();
  private tokenCheck: Promise<void> | null = null;
  /** The change feed's poll in flight, and where the next one starts (docs/architecture.md, the change feed). */
  private feedPoll: Promise<void> | null = null;
  private feedCursor: string | null = null;
  private readonly invalidationListeners: ((message: InvalidationMessage) => void)[] = [];
  private readonly committedListeners: CommittedListener[] = [];
  private readonly observer: EngineObserver;
  /** The failed-attempt throttle, or null when it is off. */
  readonly failedAttempts: FailedAttemptLimiter | null;
  /** The declared legacy key formats (docs/migrating.md). */
  readonly legacy: LegacyFormats;

  constructor(options: KeywardOptions) {
    this.prefix = options.prefix ?? DEFAULT_KEY_PREFIX;
    if (!isValidKeyPrefix(this.prefix)) throw new KeywardError("INVALID_CONFIGURATION", "key prefix must match [a-z][a-z0-9]{1,15}");
    this.store = options.store;
    // With a change feed the maximum age is a safety net: minutes, not seconds (docs/configuration.md).
    const feed = options.store.pollKeyChanges !== undefined;
    this.cache = new VerifyCache({ ...options.cache, maxAgeMs: options.cache?.maxAgeMs ?? (feed ? FEED_CACHE_MAX_AGE_MS : 5_000) });
    if (feed && this.cache.maxAgeMs > 0) this.cache.useChangeFeed();
    this.clock = options.clock ?? systemClock;
    this.hashSecrets = options.hashSecrets ?? [];
    // Keys with limits are never unlimited: without a configured limiter, this process counts.
    this.limits = options.limits ?? new KeyLimitEnforcer({ rates: new MemoryRateLimiter(), quotas: new MemoryQuotaCounter() });
    this.usage = options.usage ?? noopUsageRecorder;
    this.usageStore = options.usageStore;
    this.random = options.random ?? cryptoRandomBytes;
    this.observer = options.observer ?? noopEngineObserver;
    this.failedAttempts = options.failedAttempts === false ? null : (options.failedAttempts ?? new FailedAttemptLimiter());
    this.legacy = new LegacyFormats(options.legacyFormats ?? [], this.prefix);
  }

  // ---------------------------------------------------------------- verification

  /**
   * Verifies a presented key. Checks run in the order docs/errors.md lists the outcomes and the first failure
   * wins; the limits stage runs last so a denied request spends nothing.
   *
   * Not an async function: a key in the cache with no limits is decided without a single await
   * (the fast path every request of a busy API takes), and only a store read or the limits stage
   * makes the answer wait.
   */
  verify(presented: string | undefined | null, options: VerifyOptions = {}): Promise<VerifyResult> {
    try {
      const decided = this.verifyInline(presented, options);
      return decided instanceof Promise ? decided : Promise.resolve(decided);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * `verify()` for edges that can go on in the same tick: the result itself when it is known
   * without waiting (a key fresh in the cache with no limits, or no key at all), else a
   * promise of it. A store outage or a blocked address throws (or rejects)
   * the same errors as `verify()`. The framework adapters use it so that the common request
   * makes no promise at all.
   */
  verifyInline(presented: string | undefined | null, options: VerifyOptions = {}): VerifyResult | Promise<VerifyResult> {
    const started = performance.now();
    const now = this.clock.now();
    const decided = this.decide(presented, options, now);
    if (decided instanceof Promise) return decided.then((result) => this.settle(result, options, now, started));
    return this.settle(decided, options, now, started);
  }

  /** Usage and metrics of one verification, whatever its outcome. */
  private settle(result: VerifyResult, options: VerifyOptions, now: number, started: number): VerifyResult {
    this.usage.record({
      keyId: result.key?.id ?? null,
      owner: result.key?.owner,
      code: result.code,
      at: now,
      ip: options.ip,
      method: options.method,
      route: options.route,
      missingScopes: result.valid ? undefined : result.missingScopes,
    });
    this.observer.verified(result.code, (performance.now() - started) / 1000);
    return result;
  }

  private decide(presented: string | undefined | null, options: VerifyOptions, now: number): VerifyResult | Promise<VerifyResult> {
    if (!presented) return { valid: false, code: "MISSING" };
    // A fresh cache entry under this digest was fetched for this very string after it passed the
    // format check, so a hit skips the check; anything longer than a key is never hashed.
    const digest = presented.length <= MAX_KEY_LENGTH ? hashApiKey(presented, this.hashSecrets[0]) : "";
    const entry = digest ? this.cachedEntry(digest, now) : undefined;
    if (entry === undefined) return this.decideFromStore(presented, digest, options, now);
    this.observer.cacheLookup("hit");
    return this.judge(entry, options, now);
  }

  private async decideFromStore(presented: string, digest: string, options: VerifyOptions, now: number): Promise<VerifyResult> {
    // Format and checksum first: a typo, a truncated key or a foreign prefix never reaches storage.
    if (!parseApiKey(presented, this.prefix)) {
      // Not a Keyward key: a key of a declared legacy format, or malformed without a lookup.
      const legacy = this.legacy.match(presented);
      if (legacy) return this.decideLegacy(presented, legacy, options, now);
      this.refuseIfBlocked(options.ip, now);
      this.failedAttempts?.charge(options.ip, now);
      await this.failedAttempts?.confirm(options.ip, now);
      return { valid: false, code: "MALFORMED" };
    }
    const entry = await this.lookup(presented, digest, now, options.ip);
    if (!entry) {
      await this.failedAttempts?.confirm(options.ip, now);
      return { valid: false, code: "NOT_FOUND" };
    }
    return this.judge(entry, options, now);
  }

  /**
   * A key of a legacy format: looked up by that format's digest (`legacy:…`, a namespace no
   * Keyward digest is in), then the very checks and limits of any key (judge), the same usage and
   * failed-attempt accounting, and its use counted apart (`legacyVerified`).
   */
  private async decideLegacy(presented: string, format: LegacyFormat, options: VerifyOptions, now: number): Promise<VerifyResult> {
    const entry = await this.lookup(presented, legacyDigestOf(format, presented), now, options.ip);
    let result: VerifyResult;
    if (!entry) {
      await this.failedAttempts?.confirm(options.ip, now);
      result = { valid: false, code: "NOT_FOUND" };
    } else result = await this.judge(entry, options, now);
    this.observer.legacyVerified?.(format.name, result.code);
    return result;
  }

  /** The checks on a found key, in the order docs/errors.md lists the outcomes; the limits stage last, and only for keys that have limits. */
  private judge(entry: CachedKey, options: VerifyOptions, now: number): VerifyResult | Promise<VerifyResult> {
    const { key, ownerDisabled } = entry.lookup;
    const view = entry.view;
    if (!key.enabled || ownerDisabled) return { valid: false, code: "DISABLED", key: view };
    if ((key.revokedAt !== null && key.revokedAt <= now) || (key.graceEndsAt !== null && key.graceEndsAt <= now)) {
      return { valid: false, code: "REVOKED", key: view };
    }
    // Expiry is checked at use time, from cache too.
    if (key.expiresAt !== null && key.expiresAt <= now) return { valid: false, code: "EXPIRED", key: view };
    // A legacy key past its format's sunset: the holder is told to rotate.
    if (key.legacyFormat !== null && this.legacy.retired(key.legacyFormat, now))
      return { valid: false, code: "LEGACY_KEY_RETIRED", key: view };
    if (options.environment && key.environment !== options.environment) return { valid: false, code: "ENVIRONMENT_MISMATCH", key: view };
    if (key.allowedCidrs.length > 0 && !isIpAllowed(options.ip, entry.cidrs)) return { valid: false, code: "IP_NOT_ALLOWED", key: view };
    if (options.scopes && options.scopes.length > 0) {
      const missing = findMissingScopes(key.scopes, options.scopes);
      if (missing.length > 0) return { valid: false, code: "INSUFFICIENT_SCOPE", key: view, missingScopes: missing };
    }
    const shared = entry.lookup.ownerLimits;
    if (!options.skipLimits && (key.rateLimit !== null || key.concurrency !== null || key.quota !== null || shared !== null)) {
      return this.limitsStage(key, shared, view, options, now);
    }
    return { valid: true, code: "VALID", key: view, record: key };
  }

  private async limitsStage(
    key: KeyRecord,
    shared: OwnerLimits | null,
    view: VerifiedKey,
    options: VerifyOptions,
    now: number,
  ): Promise<VerifyResult> {
    const request = { now, cost: options.cost ?? 1, ...(options.leaseMs !== undefined ? { leaseMs: options.leaseMs } : {}) };
    const decision = await this.limits.enforce(key, request, shared);
    if (!decision.allowed) {
      return {
        valid: false,
        code: decision.code,
        key: view,
        retryAfterSeconds: decision.retryAfterSeconds,
        ...(decision.rateLimit ? { rateLimit: decision.rateLimit } : {}),
      };
    }
    return {
      valid: true,
      code: "VALID",
      key: view,
      record: key,
      ...(decision.rateLimit ? { rateLimit: decision.rateLimit } : {}),
      ...(decision.lease ? { lease: decision.lease } : {}),
      ...(decision.release ? { release: decision.release } : {}),
    };
  }

  /**
   * Cache first; on a miss one store read per digest at a time (single flight). If the store is
   * down, a key verified within the stale window keeps working; an unknown key gets
   * STORE_UNAVAILABLE (503), never NOT_FOUND, so clients do not rotate keys for an outage.
   */
  private async lookup(presented: string, digest: string, now: number, ip: string | undefined): Promise<CachedKey | null> {
    let cached = this.cache.get(digest);
    if (cached && this.cache.needsFeed(cached, now)) {
      // The feed has not been polled lately (no traffic, or a slow poll): catch up, then judge again.
      await this.catchUpFeed();
      cached = this.cache.get(digest);
    }
    if (cached && (this.cache.isFresh(cached, now) || (await this.renewByChangeToken(cached, now)))) {
      this.observer.cacheLookup("hit");
      return cached;
    }
    // A digest this instance has never found is a possible guess. A blocked address may still
    // refresh a key it has seen (a known key keeps working), but not look up anything else. The
    // attempt is counted before the lookup, so concurrent guesses cannot overrun the limit, and
    // given back when the key exists.
    if (!cached) {
      this.refuseIfBlocked(ip, now);
      this.failedAttempts?.charge(ip, now);
      if (this.cache.isKnownMissing(digest, now)) {
        this.observer.cacheLookup("negative_hit");
        return null;
      }
    }
    this.observer.cacheLookup("miss");
    let pending = this.inflight.get(digest);
    if (!pending) {
      const started: Promise<CachedKey | null> = this.fetch(presented, digest, now).finally(() => {
        // An invalidation may have replaced this read with a newer one: leave that one in place.
        if (this.inflight.get(digest) === started) this.inflight.delete(digest);
      });
      pending = started;
      this.inflight.set(digest, pending);
    }
    try {
      const found = cached ? await this.withinRefreshWait(pending, cached, now) : await pending;
      if (found && !cached) this.failedAttempts?.refund(ip, now);
      return found;
    } catch (error) {
      if (!cached) this.failedAttempts?.refund(ip, now);
      this.observer.storeError("lookup");
      if (cached && now - cached.fetchedAt < this.cache.staleWindowMs) return cached;
      throw new KeywardError("STORE_UNAVAILABLE", "the key store cannot be reached", { retryAfterSeconds: 5, cause: error });
    }
  }

  /**
   * The re-read of a cached key, or the cached entry when the store has not answered within the
   * refresh wait and the entry is within the stale window: a hung store never holds up keys it
   * already verified (docs/deploy.md). The re-read carries on and refreshes the cache when it lands.
   */
  private withinRefreshWait(pending: Promise<CachedKey | null>, cached: CachedKey, now: number): Promise<CachedKey | null> {
    if (this.cache.refreshWaitMs <= 0 || now - cached.fetchedAt >= this.cache.staleWindowMs) return pending;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.observer.storeError("lookup");
        resolve(cached);
      }, this.cache.refreshWaitMs);
      pending.then(
        (found) => {
          clearTimeout(timer);
          resolve(found);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error);
        },
      );
    });
  }

  /** A client address that used up its failed attempts gets 429 with `Retry-After`, before any lookup. */
  private refuseIfBlocked(ip: string | undefined, now: number): void {
    const waitMs = this.failedAttempts?.blockedForMs(ip, now) ?? 0;
    if (waitMs > 0) {
      this.observer.failedAttemptRefused?.();
      throw refusalError("TOO_MANY_FAILED_ATTEMPTS", "too many failed attempts from this client address", {
        retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)),
      });
    }
  }

  /** A usable cache entry, without I/O; keeps the store's change feed polled (or its change token read) while traffic flows. */
  private cachedEntry(digest: string, now: number): CachedKey | undefined {
    if (this.cache.feedInUse) {
      if (this.cache.feedDue(now)) this.pollChanges().catch(() => {});
    } else if (this.store.changeToken && this.cache.maxAgeMs > 0 && this.cache.changeTokenDue(now)) {
      this.checkChangeToken().catch(() => {});
    }
    return this.cache.fresh(digest, now);
  }

  /** An entry past its maximum age is renewed, not re-read, when the store's change token has not moved. */
  private async renewByChangeToken(entry: CachedKey, now: number): Promise<boolean> {
    if (!this.store.changeToken || this.cache.maxAgeMs <= 0 || this.cache.feedInUse) return false;
    if (this.cache.renew(entry, now)) return true;
    try {
      await this.checkChangeToken();
    } catch {
      return false;
    }
    return this.cache.renew(entry, now);
  }

  /** Reads the store's change token, one read at a time. */
  private checkChangeToken(): Promise<void> {
    this.tokenCheck ??= (async () => {
      const startedAt = this.clock.now();
      const token = await (this.store.changeToken as () => Promise<number | string>)();
      this.cache.noteChangeToken(token, startedAt, this.clock.now());
    })().finally(() => {
      this.tokenCheck = null;
    });
    return this.tokenCheck;
  }

  /**
   * One poll of the change feed at a time: drops exactly the entries of keys and owners changed
   * since the last one (everything, when the store answers `reset`). Changes from the feed are
   * not forwarded to other instances: each reads the feed itself.
   */
  private pollChanges(): Promise<void> {
    this.feedPoll ??= (async () => {
      const startedAt = this.clock.now();
      this.cache.feedPollStarted(startedAt);
      try {
        const batch = await (this.store.pollKeyChanges as (after: string | null) => Promise<KeyChangeBatch>)(this.feedCursor);
        this.applyChanges(batch);
        this.feedCursor = batch.cursor;
        this.cache.feedSynced(startedAt);
      } catch (error) {
        this.cache.feedFailed();
        throw error;
      }
    })().finally(() => {
      this.feedPoll = null;
    });
    return this.feedPoll;
  }

  /** Polls the feed and waits for it at most the refresh wait: a hung store counts as a failing feed (entries then age as without one). */
  private catchUpFeed(): Promise<void> {
    const poll = this.pollChanges().catch(() => {});
    if (this.cache.refreshWaitMs <= 0) return poll;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.cache.feedFailed();
        resolve();
      }, this.cache.refreshWaitMs);
      void poll.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private applyChanges(batch: KeyChangeBatch): void {
    if (batch.reset) this.cache.invalidateAll();
    for (const key of batch.keys) this.cache.invalidateKey(key.id, key.digest ?? undefined);
    for (const owner of batch.owners) this.cache.invalidateOwner(owner);
    // As for any invalidation: no request joins a read that started before the change.
    if (batch.reset || batch.keys.length > 0 || batch.owners.length > 0) this.inflight.clear();
  }

  private async fetch(presented: string, digest: string, now: number): Promise<CachedKey | null> {
    // A read before the feed's first poll is not covered by it: wait for that poll (once).
    if (this.cache.feedInUse && !this.cache.feedBaselined) await this.catchUpFeed();
    const feedCovered = this.cache.feedBaselined;
    const epoch = this.cache.epoch;
    let lookup: KeyLookup | null = await this.store.findKeyByDigest(digest);
    // Keys hashed under an older secret version still verify while they are phased out (a legacy digest has no versions).
    for (let i = 1; !lookup && i < this.hashSecrets.length && !digest.startsWith(LEGACY_DIGEST_PREFIX); i++) {
      lookup = await this.store.findKeyByDigest(hashApiKey(presented, this.hashSecrets[i]));
    }
    if (!lookup) {
      this.cache.setMissing(digest, now, epoch);
      return null;
    }
    return this.cache.setFound(digest, lookup, now, epoch, feedCovered);
  }

  // ---------------------------------------------------------------- management

  /** A fresh secret for a key of `environment`: the plaintext (to show once) and what is stored of it. */
  mintSecret(environment: Environment): { plaintext: string; digest: string; hashVersion: number; ref: string } {
    const plaintext = generateApiKey({ prefix: this.prefix, environment, random: this.random });
    return { plaintext, ...this.storedSecret(plaintext) };
  }

  /** What is stored of a secret: its digest under the current hash secret, and its display ref. */
  private storedSecret(plaintext: string): { digest: string; hashVersion: number; ref: string } {
    return {
      digest: hashApiKey(plaintext, this.hashSecrets[0]),
      hashVersion: this.hashSecrets[0]?.version ?? 0,
      ref: formatKeyRef(plaintext),
    };
  }

  /** Creates a key. The plaintext is in the result and nowhere else, ever. */
  async createKey(
    input: CreateKeyInput,
    context: RequestContext,
    options: { cap?: CreationCap } = {},
  ): Promise<{ key: string; record: KeyRecord }> {
    const now = this.clock.now();
    validateCreateKeyInput(input, now);
    const plaintext = generateApiKey({ prefix: this.prefix, environment: input.environment, random: this.random });
    const id = generateId("key", this.random);
    const record = newKeyRecord({
      id,
      secret: this.storedSecret(plaintext),
      name: input.name,
      owner: input.owner,
      environment: input.environment,
      scopes: input.scopes,
      now,
      expiresAt: input.expiresAt,
      rateLimit: input.rateLimit,
      concurrency: input.concurrency,
      quota: input.quota,
      allowedCidrs: input.allowedCidrs,
      metadata: input.metadata,
      delegation: input.delegation ?? null,
    });
    const audit = buildAuditEvent(context, now, "key.created", { type: "key", id }, null, {
      owner: record.owner,
      environment: record.environment,
      scopes: record.scopes,
      ref: record.ref,
      ...(record.delegation ? { delegation: record.delegation } : {}),
    });
    const cap = options.cap;
    if (!(await this.store.insertKey(record, audit, cap)) && cap)
      throw new KeywardError("KEY_CREATION_CAPPED", `at most ${cap.max} keys an hour`, { retryAfterSeconds: 3600 });
    this.cache.invalidateKey(id, record.digest);
    this.publishCommitted(audit);
    return { key: plaintext, record };
  }

  async getKey(id: string): Promise<KeyRecord> {
    const key = await this.store.getKey(id);
    if (!key) throw new KeywardError("RESOURCE_NOT_FOUND", `no key ${id}`);
    return this.withPendingUse(key);
  }

  async listKeys(filter: Omit<KeyListFilter, "now">, page: { limit?: number; cursor?: string } = {}): Promise<Page<KeyRecord>> {
    const limit = Math.min(Math.max(page.limit ?? 50, 1), 200);
    const result = await this.store.listKeys({ ...filter, now: this.clock.now() }, limit, decodeCursor(page.cursor));
    return { data: result.keys.map((key) => this.withPendingUse(key)), nextCursor: encodeCursor(result.next) };
  }

  /**
   * The key with this process's last use of it that the usage buffer has not written yet
   * (`last_used_at` in the store lags by up to a flush interval, or a fold on SQLite): a key read
   * right after it was used shows that use. Other processes' buffers are not seen (docs/usage.md).
   */
  private withPendingUse(key: KeyRecord): KeyRecord {
    const pending = this.usage.pendingLastUse?.(key.id) ?? null;
    if (pending === null || (key.lastUsedAt !== null && key.lastUsedAt >= pending.at)) return key;
    return { ...key, lastUsedAt: pending.at, lastUsedIp: pending.ip };
  }

  /** How many keys match `filter`: all the pages of `listKeys` together. Exact, so it reads every match (docs/benchmarks.md, key search). */
  async countKeys(filter: Omit<KeyListFilter, "now"> = {}): Promise<number> {
    return this.store.countKeys({ ...filter, now: this.clock.now() });
  }

  async updateKey(id: string, changes: KeyChanges, context: RequestContext): Promise<KeyRecord> {
    const now = this.clock.now();
    validateKeyChanges(changes, now);
    const before = await this.getKey(id);
    if (computeKeyStatus(before, now) === "revoked") throw new KeywardError("CONFLICT", "a revoked key cannot be changed");
    if (changes.scopes !== undefined || changes.delegation !== undefined)
      validateDelegationHeld(changes.scopes ?? before.scopes, changes.delegation === undefined ? before.delegation : changes.delegation);
    const normalized = changes.scopes ? { ...changes, scopes: [...new Set(changes.scopes)] } : changes;
    const diff = diffForAudit(before, normalized);
    const action =
      Object.keys(diff).length === 1 && "enabled" in diff ? (normalized.enabled ? "key.enabled" : "key.disabled") : "key.updated";
    const audit = buildAuditEvent(context, now, action, { type: "key", id }, diff);
    const updated = await this.store.updateKey(id, normalized, audit);
    if (!updated) throw new KeywardError("RESOURCE_NOT_FOUND", `no key ${id}`);
    this.invalidate({ kind: "key", keyId: id, digest: before.digest });
    this.publishCommitted(audit);
    return updated;
  }

  /** Revokes at once: the first request after this returns is denied on this instance. */
  async revokeKey(id: string, reason: string | null, context: RequestContext, action = "key.revoked"): Promise<KeyRecord> {
    return (await this.revoke(id, reason, context, action)).key;
  }

  /**
   * Revokes a key, and ends the grace of every predecessor of its rotation lineage that still
   * works (docs/authority.md): revoking a successor must not leave the key it replaced working.
   * One transaction, one audit event naming them.
   */
  async revoke(
    id: string,
    reason: string | null,
    context: RequestContext,
    action = "key.revoked",
  ): Promise<{ key: KeyRecord; endedGrace: KeyRecord[] }> {
    const now = this.clock.now();
    const before = await this.getKey(id);
    if (computeKeyStatus(before, now) === "revoked") throw new KeywardError("CONFLICT", "the key is already revoked");
    const predecessors: KeyRecord[] = [];
    for (let from = before.rotatedFrom; from !== null; ) {
      const predecessor = await this.store.getKey(from);
      if (!predecessor) break;
      if (computeKeyStatus(predecessor, now) !== "revoked") predecessors.push(predecessor);
      from = predecessor.rotatedFrom;
    }
    const changes = { revokedAt: now, revokedReason: reason };
    const details = {
      ...(reason ? { reason } : {}),
      ...(predecessors.length > 0 ? { ended_grace: predecessors.map((key) => key.id) } : {}),
    };
    const audit = buildAuditEvent(
      context,
      now,
      action,
      { type: "key", id },
      diffForAudit(before, changes),
      Object.keys(details).length > 0 ? details : null,
    );
    const updated = await this.store.updateKey(
      id,
      changes,
      audit,
      predecessors.map((key) => ({ id: key.id, changes: { graceEndsAt: now } })),
    );
    if (!updated) throw new KeywardError("RESOURCE_NOT_FOUND", `no key ${id}`);
    this.invalidate({ kind: "key", keyId: id, digest: before.digest });
    for (const key of predecessors) this.invalidate({ kind: "key", keyId: key.id, digest: key.digest });
    this.publishCommitted(audit);
    return { key: updated, endedGrace: predecessors.map((key) => ({ ...key, graceEndsAt: now, updatedAt: now })) };
  }

  /**
   * Ends a rotation grace now. Named on a key in its grace (replaced, its grace not over), that key
   * and every predecessor of it still in a grace stop working at once; named on a successor, its
   * predecessors do. One transaction, one audit event (`key.grace_ended`, on the nearest of them,
   * naming all in `ended_grace`); every instance drops them from its cache, so the first request
   * after this returns is denied (REVOKED). `authorize` sees the keys before anything is written
   * and throws to refuse (the service asks the authority model whether the caller may revoke each).
   * NO_GRACE_PERIOD when no key of the lineage before it is in a grace.
   */
  async endGrace(
    id: string,
    context: RequestContext,
    authorize: (ending: readonly KeyRecord[]) => void = () => {},
  ): Promise<{ key: KeyRecord; endedGrace: KeyRecord[] }> {
    const now = this.clock.now();
    const named = await this.getKey(id);
    const ending: KeyRecord[] = [];
    for (let from = named.replacedBy !== null ? named.id : named.rotatedFrom; from !== null; ) {
      const key = from === named.id ? named : await this.store.getKey(from);
      if (!key) break;
      const revoked = key.revokedAt !== null && key.revokedAt <= now;
      if (!revoked && key.graceEndsAt !== null && key.graceEndsAt > now) ending.push(key);
      from = key.rotatedFrom;
    }
    const [nearest, ...older] = ending;
    if (!nearest) throw new KeywardError("NO_GRACE_PERIOD", `no key of the rotation lineage of ${id} is in a grace period`);
    authorize(ending);
    const changes = { graceEndsAt: now };
    const audit = buildAuditEvent(context, now, "key.grace_ended", { type: "key", id: nearest.id }, diffForAudit(nearest, changes), {
      ended_grace: ending.map((key) => key.id),
    });
    const updated = await this.store.updateKey(
      nearest.id,
      changes,
      audit,
      older.map((key) => ({ id: key.id, changes })),
    );
    if (!updated) throw new KeywardError("RESOURCE_NOT_FOUND", `no key ${nearest.id}`);
    for (const key of ending) this.invalidate({ kind: "key", keyId: key.id, digest: key.digest });
    this.publishCommitted(audit);
    // The named key is the nearest one when its own grace ended, else untouched.
    return {
      key: named.id === nearest.id ? updated : named,
      endedGrace: ending.map((key) => ({ ...key, graceEndsAt: now, updatedAt: now })),
    };
  }

  /**
   * Issues a successor with the same owner, scopes, limits and metadata (sharing its limit
   * counters through the lineage id). The old key works until the grace period ends; with no
   * grace it stops at once. Of two concurrent rotations, one wins and the other gets CONFLICT.
   */
  async rotateKey(
    id: string,
    graceSeconds: number,
    context: RequestContext,
  ): Promise<{ key: string; record: KeyRecord; previous: KeyRecord }> {
    validateGraceSeconds(graceSeconds);
    const now = this.clock.now();
    const old = await this.getKey(id);
    const status = computeKeyStatus(old, now);
    if (status === "revoked" || old.replacedBy !== null) throw new KeywardError("CONFLICT", "the key was already rotated or revoked");
    if (old.awaitingPickup) throw new KeywardError("KEY_AWAITING_PICKUP", `key ${id} is awaiting pickup by its requester`);
    const plaintext = generateApiKey({ prefix: this.prefix, environment: old.environment, random: this.random });
    const successorId = generateId("key", this.random);
    // Same owner, scopes, limits, expiry and metadata; the same lineage, so limit counters carry on.
    const successor = newKeyRecord({
      ...old,
      id: successorId,
      secret: this.storedSecret(plaintext),
      now,
      rotatedFrom: old.id,
      lineageId: old.lineageId,
      // A successor is a Keyward key, whatever the format of the key it replaces (docs/migrating.md).
      legacyFormat: null,
      externalId: null,
    });
    const oldChanges = { replacedBy: successorId, graceEndsAt: now + graceSeconds * 1000 };
    const audit = buildAuditEvent(context, now, "key.rotated", { type: "key", id }, diffForAudit(old, oldChanges), {
      successor_id: successorId,
      successor_ref: successor.ref,
      grace_seconds: graceSeconds,
    });
    const outcome = await this.store.rotateKey(id, oldChanges, successor, audit);
    if (outcome === "not_found") throw new KeywardError("RESOURCE_NOT_FOUND", `no key ${id}`);
    if (outcome === "conflict") throw new KeywardError("CONFLICT", "the key was already rotated or revoked");
    this.invalidate({ kind: "key", keyId: id, digest: old.digest });
    this.cache.invalidateKey(successorId, successor.digest);
    this.publishCommitted(audit);
    return { key: plaintext, record: successor, previous: { ...old, ...oldChanges, updatedAt: now } };
  }

  /** Disabling an owner disables every key it holds, at once. */
  async setOwnerDisabled(owner: OwnerRef, disabled: boolean, context: RequestContext): Promise<OwnerRecord> {
    const now = this.clock.now();
    const before = await this.store.getOwner(owner);
    const audit = buildAuditEvent(
      context,
      now,
      disabled ? "owner.disabled" : "owner.enabled",
      { type: "owner", id: `${owner.type}:${owner.id}` },
      { disabled: { from: before?.disabled ?? false, to: disabled } },
    );
    const record = await this.store.setOwnerDisabled(owner, disabled, audit, now);
    this.invalidate({ kind: "all" });
    this.publishCommitted(audit);
    return record;
  }

  /** Creates an owner with a name and shared limits (an organization, docs/organizations.md); CONFLICT when it exists. */
  async createOwner(owner: OwnerRef, fields: OwnerFields, context: RequestContext): Promise<OwnerRecord> {
    const now = this.clock.now();
    const audit = buildAuditEvent(
      context,
      now,
      "owner.created",
      { type: "owner", id: `${owner.type}:${owner.id}` },
      ownerFieldChanges(null, fields),
    );
    const record = await this.store.createOwner(owner, fields, audit, now);
    if (!record) throw new KeywardError("CONFLICT", `${owner.type} ${owner.id} exists already`);
    this.publishCommitted(audit);
    return record;
  }

  /**
   * Renames an owner or changes the limits its keys share. Every instance drops the owner's
   * cached keys (the change feed and the invalidation channel), so new limits hold at once.
   */
  async updateOwner(owner: OwnerRef, fields: OwnerFields, context: RequestContext): Promise<OwnerRecord> {
    const now = this.clock.now();
    const before = await this.store.getOwner(owner);
    if (!before) throw new KeywardError("RESOURCE_NOT_FOUND", `no ${owner.type} ${owner.id}`);
    const audit = buildAuditEvent(
      context,
      now,
      "owner.updated",
      { type: "owner", id: `${owner.type}:${owner.id}` },
      ownerFieldChanges(before, fields),
    );
    const record = await this.store.updateOwner(owner, fields, audit);
    if (!record) throw new KeywardError("RESOURCE_NOT_FOUND", `no ${owner.type} ${owner.id}`);
    if (fields.limits !== undefined) this.invalidate({ kind: "all" });
    this.publishCommitted(audit);
    return record;
  }

  async listOwners(filter: OwnerListFilter, options: { limit?: number; cursor?: string } = {}): Promise<Page<OwnerRecord>> {
    const limit = Math.min(Math.max(options.limit ?? 50, 1), 200);
    const page = await this.store.listOwners(filter, limit, options.cursor ? decodeOwnerCursor(options.cursor) : null);
    return { data: page.owners, nextCursor: page.next ? encodeOwnerCursor(page.next) : null };
  }

  /**
   * Leak response: every known key in `presented` is revoked at once (on every instance), with
   * an audit event naming the source. Unknown and malformed strings are reported back by their
   * position in the list, never echoed.
   */
  async reportLeaks(presented: readonly string[], source: string, context: RequestContext): Promise<LeakReportEntry[]> {
    const results: LeakReportEntry[] = [];
    for (const [index, candidate] of presented.entries()) {
      const keyward = parseApiKey(candidate, this.prefix) !== null;
      // A leaked key of a legacy format is found by its format's digest, as verification finds it.
      const legacy = keyward ? null : this.legacy.match(candidate);
      if (!keyward && !legacy) {
        results.push({ index, outcome: "malformed" });
        continue;
      }
      let lookup = await this.store.findKeyByDigest(
        legacy ? legacyDigestOf(legacy, candidate) : hashApiKey(candidate, this.hashSecrets[0]),
      );
      for (let i = 1; !lookup && !legacy && i < this.hashSecrets.length; i++)
        lookup = await this.store.findKeyByDigest(hashApiKey(candidate, this.hashSecrets[i]));
      if (!lookup) {
        results.push({ index, outcome: "unknown" });
        continue;
      }
      const key = lookup.key;
      if (computeKeyStatus(key, this.clock.now()) === "revoked") {
        results.push({ index, outcome: "already_revoked", id: key.id, ref: key.ref });
        continue;
      }
      await this.revokeKey(key.id, `leaked: ${source}`, context, "key.leaked");
      results.push({ index, outcome: "revoked", id: key.id, ref: key.ref });
    }
    return results;
  }

  /**
   * Imports keys (docs/migrating.md): plaintexts (hashed here, never stored) or the digests the
   * system before Keyward kept, matched on external id or digest so that a second run creates
   * nothing, in batches of one transaction each, with one `keys.imported` audit event.
   */
  async importKeys(items: AsyncIterable<ImportItem>, context: RequestContext, options: ImportOptions = {}): Promise<ImportReport> {
    const report = await importKeys(
      { store: this.store, prefix: this.prefix, hashSecret: this.hashSecrets[0], legacy: this.legacy, now: () => this.clock.now() },
      items,
      context,
      options,
    );
    // A key asked for just before it was imported must not stay unknown here for the negative cache's age.
    if (report.created > 0 && !report.dryRun) this.cache.clearMissing();
    if (report.auditEvent) this.publishCommitted(report.auditEvent);
    return report;
  }

  // ---------------------------------------------------------------- limits

  /** What is left of each of the key's limits (introspection); nothing is spent. */
  async inspectLimits(key: KeyRecord): Promise<LimitsSnapshot> {
    return this.limits.inspect(key, this.clock.now(), await this.sharedLimitsOf(key));
  }

  /**
   * The key's owner's shared limits as the verify path sees them (docs/organizations.md): from
   * the key's cache entry, which the change feed keeps current (so introspection and a lease
   * release work from cache through a store outage, as verification does), else from the store.
   */
  private async sharedLimitsOf(key: KeyRecord): Promise<OwnerLimits | null> {
    const cached = this.cache.get(key.digest);
    if (cached && cached.lookup.key.id === key.id) return cached.lookup.ownerLimits;
    const record = await this.store.getOwner(key.owner);
    return record?.limits ? { ...record.limits, owner: key.owner, createdAt: record.createdAt } : null;
  }

  /**
   * Where rate and concurrency decisions are taken now, for readiness: `shared` (Redis answers),
   * `degraded` or `open` by the failure policy; null when the limiter is this process's own.
   */
  async limiterHealth(): Promise<LimiterMode | null> {
    return this.limits.health ? this.limits.health() : null;
  }

  /** The explicit release of a concurrency lease handed out by forward auth or `/v1/keys/verify`. */
  async releaseLease(key: KeyRecord, leaseId: string): Promise<boolean> {
    return this.limits.releaseLease(key, leaseId, await this.sharedLimitsOf(key));
  }

  /** Usage counts by bucket; what is buffered is written first, so a query sees every recorded use. */
  async queryUsage(query: UsageQuery): Promise<UsageRow[]> {
    if (!this.usageStore) throw new KeywardError("INVALID_CONFIGURATION", "usage tracking is not configured");
    await this.usage.flush?.();
    return this.usageStore.queryUsage(query);
  }

  /**
   * A key's recent requests, newest first (docs/usage.md): what this process recorded is written
   * first, so a request just made is there. An empty page when the log is off.
   */
  async recentRequests(keyId: string, page: { limit?: number; cursor?: string } = {}): Promise<Page<StoredRecentRequest>> {
    const kept = this.usage.recentRequestsKept ?? 0;
    const after = decodeRecentCursor(page.cursor);
    if (kept === 0 || !this.usageStore?.listRecentRequests) return { data: [], nextCursor: null };
    await this.usage.flushRecentRequests?.();
    const limit = Math.min(Math.max(page.limit ?? 50, 1), kept);
    const rows = await this.usageStore.listRecentRequests(keyId, kept, limit + 1, after);
    const data = rows.slice(0, limit);
    const last = data[data.length - 1];
    return {
      data,
      nextCursor: rows.length > limit && last ? Buffer.from(`${last.at}.${last.seq}`).toString("base64url") : null,
    };
  }

  /** How many recent requests are kept per key; 0 when the log is off. */
  get recentRequestsKept(): number {
    return this.usageStore?.listRecentRequests ? (this.usage.recentRequestsKept ?? 0) : 0;
  }

  // ---------------------------------------------------------------- committed changes

  /**
   * Listens to audit events once the write that carries them has committed (webhooks subscribe
   * here). Listeners run synchronously after the write and must not block: schedule work, do
   * not await it. A throwing listener is ignored, so it can never fail the change.
   */
  onCommitted(listener: CommittedListener): void {
    this.committedListeners.push(listener);
  }

  /**
   * Announces an audit event another module wrote in its own committed transaction (key
   * requests, dashboard sign-ins), so committed-change listeners see it too.
   */
  publishCommitted(event: AuditEvent): void {
    for (const listener of this.committedListeners) {
      try {
        listener(event);
      } catch {
        // A listener failure must not turn a committed change into an error response.
      }
    }
  }

  // ---------------------------------------------------------------- invalidation

  /** Listens to local changes, to forward them to other instances. */
  onInvalidate(listener: (message: InvalidationMessage) => void): void {
    this.invalidationListeners.push(listener);
  }

  /** Applies a change made elsewhere (another instance) to this cache. */
  applyInvalidation(message: InvalidationMessage): void {
    if (message.kind === "all") this.cache.invalidateAll();
    else this.cache.invalidateKey(message.keyId, message.digest);
    // A request arriving from now on must not join a read that started before the change: it
    // could return the row as it was (docs/security.md, revocation bound).
    this.inflight.clear();
  }

  private invalidate(message: InvalidationMessage): void {
    this.applyInvalidation(message);
    for (const listener of this.invalidationListeners) listener(message);
  }

  /** Flushes buffered usage, then closes the limiter and the store. */
  async close(): Promise<void> {
    await this.usage.close?.();
    await this.usageStore?.close?.();
    await this.limits.close();
    await this.failedAttempts?.close();
    await this.store.close();
  }
}
