import { LRUCache } from "lru-cache";
import { isKeywardError, KeywardError } from "../core/errors.js";
import { hashApiKey } from "../core/hashing.js";
import { DEFAULT_KEY_PREFIX, type Environment, parseApiKey } from "../core/key-format.js";
import type { VerifiedKey } from "../core/key-view.js";
import { LEGACY_KEY_CHARS, LEGACY_MAX_KEY_LENGTH, LegacyKeyShapes } from "../core/legacy-formats.js";
import type { DenialCode } from "../core/outcomes.js";
import { findMissingScopes } from "../core/scopes.js";
import type { VerifyOptions } from "../engine/keyward.js";
import type { Verifier, VerifierResult } from "../middleware/http-edge.js";
import type { RateLimitState } from "../ports/limits.js";

export interface KeywardClientOptions {
  /** Base URL of the Keyward service, e.g. `http://keyward.internal:8080`. */
  url: string;
  /** A key with the `keys:verify` scope. */
  serviceKey: string;
  /** The deployment's key prefix, so malformed keys are refused locally. Default `kw`. */
  prefix?: string;
  /**
   * The deployment's legacy formats, as `KEYWARD_LEGACY_FORMATS` declares them (only `prefix` or
   * `pattern` is read; no secret is needed): with them, the adapters read a legacy key sent as
   * `Authorization: Bearer` as a key instead of a foreign token (docs/middleware.md). Legacy keys
   * in the other carriers, or passed to `verify()`, are sent to the service without them.
   */
  legacyFormats?: readonly { prefix?: string | null; pattern?: string | null }[];
  /** How long a verified key is trusted from cache. Default 5,000 ms. */
  cacheMaxAgeMs?: number;
  /** How long an unknown key is remembered. Default 5,000 ms. */
  negativeCacheMaxAgeMs?: number;
  /** Keys kept at most (LRU). Default 10,000. */
  maxEntries?: number;
  /** Per-call timeout. Default 1,000 ms. */
  timeoutMs?: number;
  /**
   * When the service cannot be reached: `deny` (default) answers 503 with `Retry-After`;
   * `stale` keeps serving keys verified within `staleWindowMs`, and 503 for the rest.
   */
  whenUnreachable?: "deny" | "stale";
  /** Default 300,000 ms. */
  staleWindowMs?: number;
  fetch?: typeof fetch;
  /**
   * Where a configuration error (the service refusing this client's own key or call) is
   * reported, once until it is fixed. Default `console`; a pino logger fits too.
   */
  logger?: { error(message: string): void };
}

interface VerifyResponse {
  valid: boolean;
  code: string;
  key?: {
    id: string;
    ref: string;
    name: string;
    owner: VerifiedKey["owner"];
    environment: Environment;
    scopes: string[];
    metadata: Record<string, unknown>;
    expires_at: string | null;
  };
  missing_scopes?: string[];
  retry_after_seconds?: number;
  rate_limit?: { limit: number; remaining: number; reset_seconds: number };
  /** The key has limits: its answers are never cached. */
  limited?: boolean;
  lease?: { id: string; expires_at: string };
}

const toRateLimit = (state: NonNullable<VerifyResponse["rate_limit"]>): RateLimitState => ({
  limit: state.limit,
  remaining: state.remaining,
  resetSeconds: state.reset_seconds,
});

interface ServiceAnswer {
  result: VerifierResult;
  limited: boolean;
}

interface Entry {
  /** Null: the service said the key is unknown or unusable for every request (not found, disabled, revoked, expired). */
  key: VerifiedKey | null;
  denial?: DenialCode;
  at: number;
}

/**
 * What the service answers MALFORMED whatever legacy formats it declares (docs/middleware.md):
 * longer than any key, a character no carrier carries (controls, spaces, non-ASCII), or shaped
 * like a key of this deployment (`kw_…`) with a wrong length or checksum (no legacy format ever
 * claims those). Anything else may be a legacy key: the service decides.
 */
function malformedEverywhere(key: string, prefix: string): boolean {
  if (key.length > LEGACY_MAX_KEY_LENGTH || !LEGACY_KEY_CHARS.test(key)) return true;
  return key.startsWith(`${prefix}_`) && parseApiKey(key, prefix) === null;
}

// Outcomes that do not depend on the request: safe to answer from cache for any route (MALFORMED:
// a string of no format the service declares, sent on because it might have been a legacy key).
const KEY_LEVEL_DENIALS = new Set(["MALFORMED", "NOT_FOUND", "DISABLED", "REVOKED", "EXPIRED", "LEGACY_KEY_RETIRED"]);

/**
 * Verifies keys against a remote Keyward service (`POST /v1/keys/verify`), for apps that do not
 * embed the engine. Plugs into every adapter (`keyward/fastify`, `/express`, `/hono`, `/node`)
 * in place of the engine. A short local cache (positive and negative, LRU) and single flight on
 * misses keep the service off the hot path. Keys with limits are verified remotely every time,
 * so rate limits and quotas stay exact.
 *
 * @example
 * const client = new KeywardClient({ url: "http://keyward:8080", serviceKey: process.env.KEYWARD_SERVICE_KEY! });
 * const auth = keywardExpress(client);
 */
export class KeywardClient implements Verifier {
  readonly prefix: string;
  /** The shapes of `legacyFormats`, for the adapters' carrier parsing. */
  readonly legacy: LegacyKeyShapes;
  private readonly cache: LRUCache<string, Entry>;
  private readonly inflight = new Map<string, Promise<ServiceAnswer>>();
  private readonly options: Required<Omit<KeywardClientOptions, "prefix" | "legacyFormats">>;
  /** Set while the service refuses this client's own calls (its key, scope or URL); cleared by the next 200. */
  private misconfigured: KeywardError | null = null;

  constructor(options: KeywardClientOptions) {
    this.prefix = options.prefix ?? DEFAULT_KEY_PREFIX;
    this.legacy = new LegacyKeyShapes(options.legacyFormats ?? [], this.prefix);
    this.options = {
      cacheMaxAgeMs: 5_000,
      negativeCacheMaxAgeMs: 5_000,
      maxEntries: 10_000,
      timeoutMs: 1_000,
      whenUnreachable: "deny",
      staleWindowMs: 300_000,
      fetch: globalThis.fetch.bind(globalThis),
      logger: console,
      ...options,
    };
    this.cache = new LRUCache({ max: this.options.maxEntries });
  }

  async verify(key: string | null, options: VerifyOptions = {}): Promise<VerifierResult> {
    if (!key) return { valid: false, code: "MISSING" };
    if (malformedEverywhere(key, this.prefix)) return { valid: false, code: "MALFORMED" };
    // Cached per key and client address (a key's CIDR allow-list is checked by the service).
    const cacheKey = `${hashApiKey(key)}|${options.ip ?? ""}`;
    const now = Date.now();
    const cached = this.cache.get(cacheKey);
    if (cached && now - cached.at < (cached.key ? this.options.cacheMaxAgeMs : this.options.negativeCacheMaxAgeMs))
      return this.fromCache(cached, options, now);
    const flightKey = `${cacheKey}|${(options.scopes ?? []).join(",")}|${options.environment ?? ""}`;
    let pending = this.inflight.get(flightKey);
    const joined = pending !== undefined;
    if (!pending) {
      pending = this.callService(key, options, cacheKey).finally(() => this.inflight.delete(flightKey));
      this.inflight.set(flightKey, pending);
    }
    try {
      const answer = await pending;
      // One answer of a limited key admits one request only: each joiner spends its own rate, slot and quota.
      if (joined && answer.limited) return (await this.callService(key, options, cacheKey)).result;
      return answer.result;
    } catch (error) {
      // The service throttles the end client's address, or refuses this client itself: pass it on, it is not an outage.
      if (isKeywardError(error) && (error.code === "TOO_MANY_FAILED_ATTEMPTS" || error.code === "CLIENT_MISCONFIGURED")) throw error;
      if (this.options.whenUnreachable === "stale" && cached?.key && now - cached.at < this.options.staleWindowMs)
        return this.fromCache(cached, options, now);
      throw new KeywardError("STORE_UNAVAILABLE", "the Keyward service cannot be reached", { retryAfterSeconds: 5, cause: error });
    }
  }

  /** Re-applies the request-dependent checks locally: expiry, environment, scopes. */
  private fromCache(entry: Entry, options: VerifyOptions, now: number): VerifierResult {
    if (!entry.key) return { valid: false, code: entry.denial ?? "NOT_FOUND" };
    const key = entry.key;
    if (key.expiresAt !== null && Date.parse(key.expiresAt) <= now) return { valid: false, code: "EXPIRED", key };
    if (options.environment && key.environment !== options.environment) return { valid: false, code: "ENVIRONMENT_MISMATCH", key };
    const missing = findMissingScopes(key.scopes, options.scopes ?? []);
    if (missing.length > 0) return { valid: false, code: "INSUFFICIENT_SCOPE", key, missingScopes: missing };
    return { valid: true, code: "VALID", key };
  }

  private async callService(key: string, options: VerifyOptions, cacheKey: string): Promise<ServiceAnswer> {
    const response = await this.options.fetch(new URL("/v1/keys/verify", this.options.url), {
      method: "POST",
      headers: { authorization: `Bearer ${this.options.serviceKey}`, "content-type": "application/json" },
      body: JSON.stringify({
        key,
        ...(options.scopes?.length ? { scopes: options.scopes } : {}),
        ...(options.environment ? { environment: options.environment } : {}),
        ...(options.ip ? { ip: options.ip } : {}),
      }),
      signal: AbortSignal.timeout(this.options.timeoutMs),
    });
    if (response.status === 429) {
      // Refused service keys count as failed attempts of this app's own address: once the
      // service throttles it, its 429s are still the same configuration error.
      if (this.misconfigured) throw this.misconfigured;
      throw new KeywardError("TOO_MANY_FAILED_ATTEMPTS", "too many failed attempts from this client address", {
        retryAfterSeconds: Number(response.headers.get("retry-after")) || 1,
      });
    }
    // Any other 4xx is this client's own call refused: a configuration error. Only network
    // failures and 5xx mean the service is unavailable.
    if (response.status >= 400 && response.status < 500) throw await this.refused(response);
    if (response.status !== 200) throw new Error(`verify answered ${response.status}`);
    const body = (await response.json()) as VerifyResponse;
    this.misconfigured = null;
    const verified: VerifiedKey | undefined = body.key && {
      id: body.key.id,
      ref: body.key.ref,
      name: body.key.name,
      owner: body.key.owner,
      environment: body.key.environment,
      scopes: body.key.scopes,
      metadata: body.key.metadata,
      expiresAt: body.key.expires_at,
    };
    const now = Date.now();
    const limited =
      body.limited === true ||
      body.rate_limit !== undefined ||
      ["RATE_LIMITED", "CONCURRENCY_LIMITED", "QUOTA_EXCEEDED"].includes(body.code);
    if (!limited) {
      if (verified && (body.valid || !KEY_LEVEL_DENIALS.has(body.code))) this.cache.set(cacheKey, { key: verified, at: now });
      else if (KEY_LEVEL_DENIALS.has(body.code)) this.cache.set(cacheKey, { key: null, denial: body.code as DenialCode, at: now });
    }
    const rateLimit = body.rate_limit ? { rateLimit: toRateLimit(body.rate_limit) } : {};
    if (body.valid && verified) {
      const lease = body.lease;
      // The service holds a concurrency slot for this request: free it when the response ends.
      const release = lease ? { release: () => void this.releaseLease(lease.id, verified.id) } : {};
      return { limited, result: { valid: true, code: "VALID", key: verified, ...rateLimit, ...release } };
    }
    const denial: VerifierResult = {
      valid: false,
      code: body.code as DenialCode,
      ...(verified ? { key: verified } : {}),
      ...(body.missing_scopes ? { missingScopes: body.missing_scopes } : {}),
      ...(body.retry_after_seconds !== undefined ? { retryAfterSeconds: body.retry_after_seconds } : {}),
      ...rateLimit,
    };
    return { limited, result: denial };
  }

  /** The configuration error for a 4xx from the service, logged once until a call succeeds again. */
  private async refused(response: Response): Promise<KeywardError> {
    let problem: { code?: unknown; detail?: unknown } = {};
    try {
      problem = (await response.json()) as typeof problem;
    } catch {}
    const code = typeof problem.code === "string" ? problem.code : "no problem code";
    const detail = typeof problem.detail === "string" ? `: ${problem.detail}` : "";
    const answer = `${response.status} ${code}${detail}`;
    const why =
      response.status === 401
        ? "refused this client's service key; it is wrong, revoked, disabled or expired"
        : response.status === 403
          ? "will not verify keys for this client's service key; it needs the keys:verify scope"
          : "refused POST /v1/keys/verify; check the client's url (it must be the Keyward service's base URL)";
    const message = `keyward/client: the Keyward service at ${this.options.url} ${why} (${answer}). Every request is denied with 500 CLIENT_MISCONFIGURED until this is fixed.`;
    if (this.misconfigured?.message !== message) this.options.logger.error(message);
    this.misconfigured = new KeywardError("CLIENT_MISCONFIGURED", message);
    return this.misconfigured;
  }

  /** Frees a concurrency lease early; if this fails, the lease still expires by itself. */
  private async releaseLease(leaseId: string, keyId: string): Promise<void> {
    try {
      await this.options.fetch(new URL("/v1/leases/release", this.options.url), {
        method: "POST",
        headers: { authorization: `Bearer ${this.options.serviceKey}`, "content-type": "application/json" },
        body: JSON.stringify({ lease_id: leaseId, key_id: keyId }),
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch {
      // Unreleased, the lease expires after the service's lease time.
    }
  }

  /** Forgets every cached answer (e.g. after a revocation the app itself made). */
  clear(): void {
    this.cache.clear();
  }
}
