import { randomUUID } from "node:crypto";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import proxyAddr from "@fastify/proxy-addr";
import type { Logger } from "pino";
import type { DistinctHeaders } from "../core/carriers.js";
import { type FieldError, isKeywardError } from "../core/errors.js";
import type { Environment } from "../core/key-format.js";
import type { VerifiedKey } from "../core/key-view.js";
import { isValidScope } from "../core/scopes.js";
import type { Keyward } from "../engine/keyward.js";
import { authenticateRequestInline, type EdgeDecision, rateLimitHeaders } from "../middleware/http-edge.js";
import { readCarrierHeaders } from "../middleware/node-http.js";
import { buildProblem, PROBLEM_CONTENT_TYPE, type Problem } from "../middleware/problem.js";
import type { ServiceConfig } from "./config.js";
import { containsKeyShaped } from "./logger.js";
import type { ServiceMetrics } from "./metrics.js";

/** No sniffing, framing or referrer for the API's answers (docs/security.md, check 24); the dashboard's pages set their own CSP. */
export const API_SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
});

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * A client-sent `X-Request-Id` is kept only when it is plainly an id: at most 64 printable
 * characters of `[A-Za-z0-9._-]` and nothing key-shaped, since the id is echoed, logged, stored
 * in the audit trail and sent in webhooks (docs/hardening.md). Otherwise a fresh one.
 */
export function requestIdOf(req: IncomingMessage): string {
  const sent = req.headers["x-request-id"];
  return typeof sent === "string" && REQUEST_ID.test(sent) && !containsKeyShaped(sent) ? sent : randomUUID();
}

/** What a forward-auth call is asked, read from the request by whichever HTTP layer took it. */
export interface ForwardAuthRequest {
  headers: DistinctHeaders;
  /** `X-Keyward-Scopes` as sent (repeated lines joined), undefined when absent: required scopes, space or comma separated. */
  scopesHeader: string | undefined;
  /** The `scopes` query parameter (the Fastify route only: the fast lane takes no query string). */
  scopesQuery: string | undefined;
  /** `X-Keyward-Environment` as sent, undefined when absent. */
  environmentHeader: string | undefined;
  /** The `environment` query parameter. */
  environmentQuery: string | undefined;
  search: string;
  ip: string | undefined;
  requestId: string;
  /** The proxied request's method, when the proxy tells it (proxiedMethod): for the key's recent requests. */
  method: string | undefined;
  /** The proxied request's target (proxiedTarget), or `authz` when the proxy does not tell it. */
  route: string;
}

/**
 * The target of the request a proxy asks about, when it tells it: nginx's `X-Original-URI`
 * (deploy/nginx-forward-auth.conf sets it), Traefik's `X-Forwarded-Uri`, or Envoy's `_path`
 * parameter (docs/forward-auth.md). Only the key's recent-requests log reads it, cut to its path;
 * it is what the proxy (or a client through a lax proxy) says, so it is shown as text, never trusted.
 */
export function proxiedTarget(headers: IncomingHttpHeaders, envoyPath: unknown): string | undefined {
  const uri = headers["x-original-uri"] ?? headers["x-forwarded-uri"];
  if (typeof uri === "string") return uri;
  return typeof envoyPath === "string" ? envoyPath : undefined;
}

/** The method of the request a proxy asks about: `X-Original-Method`, `X-Forwarded-Method`, or Envoy's own (it asks with the request's method). */
export function proxiedMethod(headers: IncomingHttpHeaders, method: string | undefined, envoyPath: unknown): string | undefined {
  const sent = headers["x-original-method"] ?? headers["x-forwarded-method"];
  if (typeof sent === "string") return sent;
  return typeof envoyPath === "string" ? method : undefined;
}

/** The answer to a forward-auth call, as data: the Fastify route and the fast lane send the same. */
export interface ForwardAuthAnswer {
  status: number;
  headers: Readonly<Record<string, string>>;
  /** The problem of a denial; an allow has no body. */
  problem?: Problem;
}

// The engine hands out one frozen view per cached key, so its identity headers are built once per fetch, not per request.
const identityHeaderCache = new WeakMap<VerifiedKey, Readonly<Record<string, string>>>();

/** What forward auth tells the proxy about the caller: `X-Keyward-Key-Id`, `-Owner`, `-Scopes`, `-Environment`. */
function identityHeaders(key: VerifiedKey): Readonly<Record<string, string>> {
  let headers = identityHeaderCache.get(key);
  if (!headers) {
    headers = Object.freeze({
      "x-keyward-key-id": key.id,
      "x-keyward-owner": `${key.owner.type}:${key.owner.id}`,
      "x-keyward-scopes": key.scopes.join(" "),
      "x-keyward-environment": key.environment,
    });
    identityHeaderCache.set(key, headers);
  }
  return headers;
}

/** A request header as one string: repeated lines joined with commas, as HTTP reads them. */
export function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(",") : value;
}

function splitScopes(raw: string): string[] {
  return raw.split(/[,\s]+/).filter(Boolean);
}

const SCOPES_HEADER = "headers.x-keyward-scopes";
const SCOPES_QUERY = "querystring.scopes";
const ENVIRONMENT_HEADER = "headers.x-keyward-environment";
const ENVIRONMENT_QUERY = "querystring.environment";

/** One source of required scopes, checked: present but naming no scope is an error, never "no requirement". */
function readScopes(raw: string | undefined, field: string, into: string[], errors: FieldError[]): void {
  if (raw === undefined) return;
  const scopes = splitScopes(raw);
  if (scopes.length === 0) errors.push({ field, message: "is empty: send the required scopes, or leave it out" });
  else if (scopes.some((scope) => !isValidScope(scope))) errors.push({ field, message: "is not a list of valid scopes" });
  else for (const scope of scopes) if (!into.includes(scope)) into.push(scope);
}

/** One source of the required environment, checked: present but empty or unknown is an error. */
function readEnvironment(raw: string | undefined, field: string, errors: FieldError[]): Environment | undefined {
  if (raw === undefined) return undefined;
  if (raw === "sandbox" || raw === "production") return raw;
  errors.push({
    field,
    message: raw.trim() === "" ? "is empty: send sandbox or production, or leave it out" : "must be sandbox or production",
  });
  return undefined;
}

/**
 * What the route requires, from the header and the query string together: the scopes of both
 * (a client's header can only add to what the proxy's URL asks, never replace it), and one
 * environment that both agree on (docs/forward-auth.md). Field errors when a source is empty,
 * invalid or disagrees with the other.
 */
function requirementOf(request: ForwardAuthRequest): { scopes: string[]; environment: Environment | undefined } | FieldError[] {
  const errors: FieldError[] = [];
  const scopes: string[] = [];
  readScopes(request.scopesHeader, SCOPES_HEADER, scopes, errors);
  readScopes(request.scopesQuery, SCOPES_QUERY, scopes, errors);
  const fromHeader = readEnvironment(request.environmentHeader, ENVIRONMENT_HEADER, errors);
  const fromQuery = readEnvironment(request.environmentQuery, ENVIRONMENT_QUERY, errors);
  if (fromHeader !== undefined && fromQuery !== undefined && fromHeader !== fromQuery) {
    errors.push({ field: ENVIRONMENT_HEADER, message: `requires ${fromHeader} but the query string requires ${fromQuery}` });
  }
  return errors.length > 0 ? errors : { scopes, environment: fromHeader ?? fromQuery };
}

/** A requirement that cannot be read: 400 with the code and problem in headers too, as for any denial. */
function invalidRequirement(errors: FieldError[], requestId: string): ForwardAuthAnswer {
  const problem = buildProblem(
    "VALIDATION_FAILED",
    `invalid forward-auth requirement: ${errors.map((e) => `${e.field}: ${e.message}`).join("; ")}`,
    { requestId, errors },
  );
  return { status: 400, headers: { "x-keyward-code": problem.code, "x-keyward-problem": JSON.stringify(problem) }, problem };
}

/**
 * Forward auth (`/v1/authz`) for nginx `auth_request`, Traefik ForwardAuth and Envoy
 * `ext_authz`: 200 with the caller's identity in headers, or the denial's status with its code
 * and problem also in headers (a proxy's auth subrequest cannot read a body). The answer itself
 * when it is known in this tick (a key fresh in the cache with no limits), else a promise of it;
 * `answerForwardAuth` handles both.
 */
export function decideForwardAuth(
  keyward: Keyward,
  config: ServiceConfig,
  request: ForwardAuthRequest,
): ForwardAuthAnswer | Promise<ForwardAuthAnswer> {
  const requirement = requirementOf(request);
  if (Array.isArray(requirement)) return invalidRequirement(requirement, request.requestId);
  const { scopes, environment } = requirement;
  const decided = authenticateRequestInline(
    keyward,
    {
      headers: request.headers,
      search: request.search,
      ip: request.ip,
      requestId: request.requestId,
      method: request.method,
      route: request.route,
    },
    { scopes, ...(environment ? { environment } : {}), leaseMs: config.leaseTtlMs },
    { realm: config.realm, allowQueryKeys: config.allowQueryKeys },
  );
  return decided instanceof Promise ? decided.then(toForwardAuthAnswer) : toForwardAuthAnswer(decided);
}

/** Calls `onAnswer` with the decision (in this tick when it is known), `onError` with what it threw or rejected with. */
export function answerForwardAuth(
  keyward: Keyward,
  config: ServiceConfig,
  request: ForwardAuthRequest,
  onAnswer: (answer: ForwardAuthAnswer) => void,
  onError: (error: unknown) => void,
): void {
  let decided: ForwardAuthAnswer | Promise<ForwardAuthAnswer>;
  try {
    decided = decideForwardAuth(keyward, config, request);
  } catch (error) {
    onError(error);
    return;
  }
  if (decided instanceof Promise) decided.then(onAnswer, onError);
  else onAnswer(decided);
}

function toForwardAuthAnswer(decision: EdgeDecision): ForwardAuthAnswer {
  if (decision.kind !== "allow") {
    // Forward auth always requires a key: anything but allow is a denial. The code and problem
    // travel as headers too (no key material in them), so nginx can answer with the same problem.
    const denial = decision as Extract<EdgeDecision, { kind: "deny" }>;
    return {
      status: denial.status,
      headers: { ...denial.headers, "x-keyward-code": denial.problem.code, "x-keyward-problem": JSON.stringify(denial.problem) },
      problem: denial.problem,
    };
  }
  const caller = decision.result;
  const identity = identityHeaders(caller.key);
  if (!caller.rateLimit && !caller.lease) return { status: 200, headers: identity };
  return {
    status: 200,
    headers: {
      ...identity,
      ...rateLimitHeaders(caller.rateLimit),
      // The proxy cannot tell Keyward when the request ends: the upstream may free the slot early.
      ...(caller.lease
        ? { "x-keyward-lease": caller.lease.id, "x-keyward-lease-expires": new Date(caller.lease.expiresAt).toISOString() }
        : {}),
    },
  };
}

export interface FastLaneOptions {
  keyward: Keyward;
  config: ServiceConfig;
  metrics: ServiceMetrics;
  logger: Logger;
  /** The service's trust-proxy setting, as Fastify is given it. */
  trustProxy: boolean | string[];
}

/**
 * The forward-auth fast lane: `GET /v1/authz` with no query string, answered straight from the
 * `node:http` request, before Fastify builds its request and reply objects, runs its hooks and
 * routes. Every proxy in front of every protected API calls this once per request, so its cost
 * is the product's. It sends what the Fastify route sends (the same `decideForwardAuth`, the
 * same security headers and request id, the client address by the same trust-proxy rule);
 * `test/service/forward-auth-fast-lane.test.ts` compares the two answer by answer. With
 * `KEYWARD_LOG_REQUESTS` on it logs the two lines Fastify logs. Requests with a query string
 * and other methods take the Fastify route.
 */
export function forwardAuthFastLane(options: FastLaneOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { keyward, config, metrics, logger } = options;
  const trust = options.trustProxy === false ? null : options.trustProxy === true ? () => true : proxyAddr.compile(options.trustProxy);
  const clientAddress = (req: IncomingMessage): string | undefined => {
    if (!trust) return req.socket.remoteAddress;
    const addresses = proxyAddr.all(req, trust);
    return addresses[addresses.length - 1];
  };
  const logRequests = config.logRequests;
  return (req, res) => {
    const requestId = requestIdOf(req);
    const ip = clientAddress(req);
    // No query string here, so no Envoy `_path`: the proxied request comes in headers, if at all.
    const target = proxiedTarget(req.headers, undefined);
    if (logRequests) logRequest(logger, req, res, requestId, ip);
    answerForwardAuth(
      keyward,
      config,
      {
        headers: readCarrierHeaders(req),
        scopesHeader: headerValue(req.headers["x-keyward-scopes"]),
        scopesQuery: undefined,
        environmentHeader: headerValue(req.headers["x-keyward-environment"]),
        environmentQuery: undefined,
        search: "",
        ip,
        requestId,
        method: target === undefined ? undefined : proxiedMethod(req.headers, undefined, undefined),
        route: target ?? "authz",
      },
      (answer) => sendAnswer(res, answer, requestId),
      (error: unknown) => {
        // What the service's error handler answers for an error it did not expect.
        if (isKeywardError(error)) {
          const headers: Record<string, string> =
            error.retryAfterSeconds !== undefined ? { "retry-after": String(error.retryAfterSeconds) } : {};
          const detail = error.status >= 500 ? undefined : error.message;
          if (error.status >= 500) logger.error({ err: error, reqId: requestId }, "request failed");
          sendAnswer(res, { status: error.status, headers, problem: buildProblem(error.code, detail, { requestId }) }, requestId);
          return;
        }
        logger.error({ err: error, reqId: requestId }, "unhandled error");
        metrics.recordStoreError("management");
        sendAnswer(
          res,
          { status: 500, headers: {}, problem: buildProblem("INTERNAL_ERROR", "an unexpected error occurred", { requestId }) },
          requestId,
        );
      },
    );
  };
}

/** The two lines Fastify logs for a request, when request logging is on (the serializer drops query strings and headers). */
function logRequest(logger: Logger, req: IncomingMessage, res: ServerResponse, requestId: string, ip: string | undefined): void {
  const started = performance.now();
  logger.info({ reqId: requestId, req: { method: req.method, url: req.url, id: requestId, ip } }, "incoming request");
  res.once("finish", () => {
    logger.info({ reqId: requestId, res: { statusCode: res.statusCode }, responseTime: performance.now() - started }, "request completed");
  });
}

function sendAnswer(res: ServerResponse, answer: ForwardAuthAnswer, requestId: string): void {
  if (res.destroyed) return;
  const body = answer.problem ? JSON.stringify(answer.problem) : "";
  res.writeHead(answer.status, {
    ...answer.headers,
    // As Fastify types a string body: the service's other problems carry the charset too.
    ...(answer.problem ? { "content-type": `${PROBLEM_CONTENT_TYPE}; charset=utf-8` } : {}),
    "x-request-id": requestId,
    ...API_SECURITY_HEADERS,
    "content-length": String(Buffer.byteLength(body)),
  });
  res.end(body);
}
