import { type DistinctHeaders, extractCredential, keyInUrlPath, type LegacyKeyMatcher } from "../core/carriers.js";
import { isKeywardError } from "../core/errors.js";
import type { Environment } from "../core/key-format.js";
import { OUTCOME_HTTP_STATUS } from "../core/outcomes.js";
import type { VerifyOptions, VerifyResult } from "../engine/keyward.js";
import type { RateLimitState } from "../ports/limits.js";
import { buildProblem, type Problem } from "./problem.js";

/** What a protected route requires. */
export interface RouteRequirement {
  /** Scopes that must all be granted. Default none. */
  scopes?: readonly string[];
  /** Production-only or sandbox-only route. Default either. */
  environment?: Environment;
  /**
   * Accept the request without a key so the app's own session/SSO auth decides (`optional`
   * mode). A key that is presented must still be valid. Default false.
   */
  optional?: boolean;
  /** Do not meter this route against the key's limits (management calls). Default false. */
  skipLimits?: boolean;
  /** How long a concurrency slot is held unless released (forward auth, which cannot see the request end). */
  leaseMs?: number;
}

export interface EdgeOptions {
  /** Realm in `WWW-Authenticate`. Default `keyward`. */
  realm?: string;
  /** Accept keys in the query string (off by default: URLs end up in logs). */
  allowQueryKeys?: boolean;
}

/** A framework-neutral view of the request. */
export interface EdgeRequest {
  headers: DistinctHeaders;
  /** The raw query string, without `?`. */
  search: string;
  /** The request target as received (path and query, or a whole URL): a key in its path is refused as KEY_IN_URL too. */
  url?: string;
  ip: string | undefined;
  requestId?: string;
  /** The request's method, for the key's recent requests (docs/usage.md): with it, the log names the request by `url`'s path. */
  method?: string;
  /**
   * What the recent-requests log names the request instead of `url`: with `method`, another
   * target (forward auth's original request); without, an API call's name.
   */
  route?: string;
}

/** The outcome shape every verifier gives; the engine's valid results carry more (the record). */
export type VerifierResult = Exclude<VerifyResult, { valid: true }> | Omit<Extract<VerifyResult, { valid: true }>, "record">;

/**
 * What the edge verifies with: the local engine (`Keyward`) or a remote service
 * (`KeywardClient` from `keyward/client`). Both answer outcomes as data.
 */
export interface Verifier<R extends VerifierResult = VerifierResult> {
  readonly prefix: string;
  /**
   * The declared legacy key formats (docs/migrating.md), built once: a `Bearer` token of one is
   * read as a key instead of a foreign token. The engine's `legacy`; `keyward/client`'s
   * `legacyFormats` option. Absent: no Bearer token but `<prefix>_…` is ours.
   */
  readonly legacy?: LegacyKeyMatcher;
  verify(key: string | null, options?: VerifyOptions): Promise<R>;
  /** Optional: the result itself when it is known without waiting, else a promise (Keyward.verifyInline). */
  verifyInline?(key: string | null, options?: VerifyOptions): R | Promise<R>;
}

export type EdgeDecision<R extends VerifierResult = VerifierResult> =
  | { kind: "allow"; result: Extract<R, { valid: true }>; headers: Record<string, string> }
  /** Optional mode and no key of ours: the app's other auth decides. */
  | { kind: "skip"; headers: Record<string, string> }
  | { kind: "deny"; status: number; headers: Record<string, string>; problem: Problem };

export function rateLimitHeaders(state: RateLimitState | undefined): Record<string, string> {
  if (!state) return {};
  return {
    "ratelimit-limit": String(state.limit),
    "ratelimit-remaining": String(Math.max(0, state.remaining)),
    "ratelimit-reset": String(Math.max(0, Math.ceil(state.resetSeconds))),
  };
}

const quote = (value: string): string => `"${value.replace(/["\\]/g, "")}"`;

/** Maps a verify denial to its HTTP form (docs/errors.md). */
export function denialToHttp(
  result: Extract<VerifyResult, { valid: false }>,
  realm: string,
  requestId?: string,
): Extract<EdgeDecision, { kind: "deny" }> {
  const status = OUTCOME_HTTP_STATUS[result.code];
  const headers: Record<string, string> = rateLimitHeaders(result.rateLimit);
  if (status === 401) {
    headers["www-authenticate"] =
      result.code === "MISSING" ? `ApiKey realm=${quote(realm)}` : `ApiKey realm=${quote(realm)}, error="invalid_key"`;
  }
  if (result.code === "INSUFFICIENT_SCOPE") {
    headers["www-authenticate"] =
      `ApiKey realm=${quote(realm)}, error="insufficient_scope", scope=${quote((result.missingScopes ?? []).join(" "))}`;
  }
  if (result.retryAfterSeconds !== undefined) headers["retry-after"] = String(Math.max(1, Math.ceil(result.retryAfterSeconds)));
  const detail = result.code === "INSUFFICIENT_SCOPE" ? `missing scope: ${(result.missingScopes ?? []).join(", ")}` : undefined;
  return {
    kind: "deny",
    status,
    headers,
    problem: buildProblem(result.code, detail, {
      ...(requestId ? { requestId } : {}),
      ...(result.missingScopes ? { missingScopes: result.missingScopes } : {}),
    }),
  };
}

/**
 * The one function every edge (Fastify, Express, Hono, node:http, the service) calls: reads the
 * carriers of docs/api.md (Authentication), verifies, and says what to answer. It never throws for a bad
 * request; a store outage becomes 503 with `Retry-After`.
 */
export async function authenticateRequest<R extends VerifierResult>(
  keyward: Verifier<R>,
  request: EdgeRequest,
  requirement: RouteRequirement = {},
  options: EdgeOptions = {},
): Promise<EdgeDecision<R>> {
  return authenticateRequestInline(keyward, request, requirement, options);
}

/**
 * `authenticateRequest` that answers in the same tick when the verifier can (`verifyInline`: a
 * cached key with no limits): the decision itself, else a promise of it. The adapters call it
 * on every request, so the common case makes no promise and waits for no microtask.
 */
export function authenticateRequestInline<R extends VerifierResult>(
  keyward: Verifier<R>,
  request: EdgeRequest,
  requirement: RouteRequirement = {},
  options: EdgeOptions = {},
): EdgeDecision<R> | Promise<EdgeDecision<R>> {
  const realm = options.realm ?? "keyward";
  const requestId = request.requestId;
  // A key in the path is never a carrier, whatever allowQueryKeys says.
  if (request.url !== undefined && keyInUrlPath(request.url, keyward.prefix)) {
    return { kind: "deny", status: 400, headers: {}, problem: buildProblem("KEY_IN_URL", undefined, requestId ? { requestId } : {}) };
  }
  const extracted = extractCredential(request.headers, request.search, {
    prefix: keyward.prefix,
    legacy: keyward.legacy,
    allowQueryKeys: options.allowQueryKeys ?? false,
  });
  if (extracted.kind === "error" && extracted.code !== "MALFORMED") {
    return { kind: "deny", status: 400, headers: {}, problem: buildProblem(extracted.code, undefined, requestId ? { requestId } : {}) };
  }
  if (requirement.optional && (extracted.kind === "none" || (extracted.kind === "error" && extracted.foreign))) {
    return { kind: "skip", headers: {} };
  }
  if (extracted.kind === "error") return denialToHttp({ valid: false, code: "MALFORMED" }, realm, requestId);
  let result: R | Promise<R>;
  try {
    // One literal, no spreads: this runs on every request (absent fields are undefined, which verify treats as unset).
    // With no key the verifier still answers (MISSING), so the attempt is counted in usage and metrics.
    const key = extracted.kind === "none" ? null : extracted.key;
    const verifyOptions: VerifyOptions = {
      scopes: requirement.scopes,
      environment: requirement.environment,
      ip: request.ip || undefined,
      skipLimits: requirement.skipLimits,
      leaseMs: requirement.leaseMs,
      method: request.method,
      route: request.route ?? (request.method === undefined ? undefined : request.url),
    };
    result = keyward.verifyInline ? keyward.verifyInline(key, verifyOptions) : keyward.verify(key, verifyOptions);
  } catch (error) {
    return failureToHttp(error, requestId);
  }
  if (result instanceof Promise) {
    return result.then(
      (settled) => resultToHttp(settled, realm, requestId),
      (error: unknown) => failureToHttp(error, requestId),
    );
  }
  return resultToHttp(result, realm, requestId);
}

function resultToHttp<R extends VerifierResult>(result: R, realm: string, requestId: string | undefined): EdgeDecision<R> {
  if (!result.valid) return denialToHttp(result as Extract<VerifierResult, { valid: false }>, realm, requestId);
  return { kind: "allow", result: result as Extract<R, { valid: true }>, headers: rateLimitHeaders(result.rateLimit) };
}

/**
 * The store or the shared limiter is out: 503 with Retry-After, never a 401 that makes clients
 * rotate keys. Or the client address used up its failed attempts: 429 with Retry-After. Or
 * `keyward/client` was refused by the service (its own key or URL is wrong): 500 with that code,
 * an operator's problem, never an outage (docs/middleware.md). Anything else is a bug, and is thrown on.
 */
function failureToHttp(error: unknown, requestId: string | undefined): Extract<EdgeDecision, { kind: "deny" }> {
  if (isKeywardError(error) && error.code === "CLIENT_MISCONFIGURED")
    return {
      kind: "deny",
      status: error.status,
      headers: {},
      problem: buildProblem(error.code, undefined, requestId ? { requestId } : {}),
    };
  if (isKeywardError(error) && (error.status === 503 || error.code === "TOO_MANY_FAILED_ATTEMPTS")) {
    return {
      kind: "deny",
      status: error.status,
      headers: { "retry-after": String(error.retryAfterSeconds ?? 5) },
      problem: buildProblem(error.code, undefined, requestId ? { requestId } : {}),
    };
  }
  throw error;
}
