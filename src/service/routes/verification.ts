import type { Static } from "@sinclair/typebox";
import type { FastifyInstance, FastifyReply } from "fastify";
import { KeywardError } from "../../core/errors.js";
import type { Environment } from "../../core/key-format.js";
import { toPublicKey, type VerifiedKey } from "../../core/key-view.js";
import { findMissingScopes, isValidScope } from "../../core/scopes.js";
import { authenticateRequest, type EdgeDecision, rateLimitHeaders } from "../../middleware/http-edge.js";
import { readCarrierHeaders } from "../../middleware/node-http.js";
import { buildProblem, PROBLEM_CONTENT_TYPE } from "../../middleware/problem.js";
import type { Lease, RateLimitState } from "../../ports/limits.js";
import { rawSearch } from "../auth.js";
import type { ServiceContext } from "../context.js";
import { AuthzQuery, ProblemSchema, ReleaseLeaseBody, VerifyKeyBody } from "../schemas.js";

function verifiedKeyJson(key: VerifiedKey) {
  return {
    id: key.id,
    ref: key.ref,
    name: key.name,
    owner: key.owner,
    environment: key.environment,
    scopes: key.scopes,
    metadata: key.metadata,
    expires_at: key.expiresAt,
  };
}

const rateLimitJson = (state: RateLimitState) => ({ limit: state.limit, remaining: state.remaining, reset_seconds: state.resetSeconds });

const leaseJson = (lease: Lease) => ({ id: lease.id, expires_at: new Date(lease.expiresAt).toISOString() });

// The engine hands out one frozen view per cached key, so its identity headers are built once per fetch, not per request.
const identityHeaderCache = new WeakMap<VerifiedKey, Record<string, string>>();

/** What forward auth tells the proxy about the caller: `X-Keyward-Key-Id`, `-Owner`, `-Scopes`, `-Environment`. */
function identityHeaders(key: VerifiedKey): Record<string, string> {
  let headers = identityHeaderCache.get(key);
  if (!headers) {
    headers = {
      "x-keyward-key-id": key.id,
      "x-keyward-owner": `${key.owner.type}:${key.owner.id}`,
      "x-keyward-scopes": key.scopes.join(" "),
      "x-keyward-environment": key.environment,
    };
    identityHeaderCache.set(key, headers);
  }
  return headers;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(",") : value;
}

function splitScopes(raw: string | undefined): string[] {
  if (!raw) return [];
  return raw
    .split(/[,\s]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Forward auth's answer: 200 with the caller's identity headers, or the denial with its problem also in headers. */
function answerForwardAuth(reply: FastifyReply, decision: EdgeDecision): void {
  if (decision.kind !== "allow") {
    // Forward auth always requires a key, so anything but allow is a denial.
    const denial = decision as Extract<EdgeDecision, { kind: "deny" }>;
    // Proxies' auth subrequests cannot read a body: the code and problem also travel as headers
    // (no key material in them), so nginx can answer the client with the same problem.
    reply
      .code(denial.status)
      .headers({ ...denial.headers, "x-keyward-code": denial.problem.code, "x-keyward-problem": JSON.stringify(denial.problem) })
      .type(PROBLEM_CONTENT_TYPE)
      .send(denial.problem);
    return;
  }
  const caller = decision.result;
  reply.headers(identityHeaders(caller.key));
  if (caller.rateLimit) reply.headers(rateLimitHeaders(caller.rateLimit));
  // The proxy cannot tell Keyward when the request ends: the upstream may free the slot early.
  if (caller.lease)
    reply.headers({ "x-keyward-lease": caller.lease.id, "x-keyward-lease-expires": new Date(caller.lease.expiresAt).toISOString() });
  reply.code(200).send();
}

/** `POST /v1/keys/verify`, `/v1/authz` (forward auth) and `/v1/introspect`. */
export function registerVerificationRoutes(app: FastifyInstance, ctx: ServiceContext): void {
  const { keyward } = ctx;

  app.post<{ Body: Static<typeof VerifyKeyBody> }>(
    "/v1/keys/verify",
    {
      schema: {
        tags: ["verification"],
        summary: "Verify a key for another service: always 200 with {valid, code}",
        body: VerifyKeyBody,
        response: { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 429: ProblemSchema },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireKey(request, reply, ["keys:verify"]);
      if (!caller) return reply;
      const { key, scopes, environment, ip } = request.body;
      // Verify cannot see the end of the caller's request: a concurrency slot is a lease that
      // expires by itself, or is freed early through POST /v1/leases/release.
      const result = await keyward.verify(key, {
        ...(scopes ? { scopes } : {}),
        ...(environment ? { environment } : {}),
        ...(ip ? { ip } : {}),
        leaseMs: ctx.config.leaseTtlMs,
      });
      return {
        valid: result.valid,
        code: result.code,
        ...(result.key ? { key: verifiedKeyJson(result.key) } : {}),
        ...(!result.valid && result.missingScopes ? { missing_scopes: result.missingScopes } : {}),
        ...(!result.valid && result.retryAfterSeconds !== undefined ? { retry_after_seconds: result.retryAfterSeconds } : {}),
        ...(result.rateLimit ? { rate_limit: rateLimitJson(result.rateLimit) } : {}),
        ...(result.valid && result.lease ? { lease: leaseJson(result.lease) } : {}),
        ...(result.valid
          ? { limited: result.record.rateLimit !== null || result.record.concurrency !== null || result.record.quota !== null }
          : {}),
      };
    },
  );

  app.route<{ Querystring: Static<typeof AuthzQuery> }>({
    method: ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    url: "/v1/authz",
    schema: {
      tags: ["verification"],
      summary: "Forward auth for nginx auth_request, Traefik ForwardAuth and Envoy ext_authz",
      querystring: AuthzQuery,
    },
    // Not an async handler: an async one that returns the reply makes Fastify wait for the
    // response to finish through a stream listener, a cost every forward-auth call would pay.
    handler: (request, reply) => {
      const scopes = splitScopes(headerValue(request.headers["x-keyward-scopes"]) ?? request.query.scopes);
      const environment = (headerValue(request.headers["x-keyward-environment"]) ?? request.query.environment) as Environment | undefined;
      if (scopes.some((scope) => !isValidScope(scope)) || (environment && environment !== "sandbox" && environment !== "production")) {
        reply
          .code(400)
          .type(PROBLEM_CONTENT_TYPE)
          .send(buildProblem("VALIDATION_FAILED", "invalid required scopes or environment", { requestId: request.id }));
        return;
      }
      authenticateRequest(
        keyward,
        { headers: readCarrierHeaders(request.raw), search: rawSearch(request), ip: request.ip, requestId: request.id },
        { scopes, ...(environment ? { environment } : {}), leaseMs: ctx.config.leaseTtlMs },
        { realm: ctx.config.realm, allowQueryKeys: ctx.config.allowQueryKeys },
      ).then(
        (decision) => answerForwardAuth(reply, decision),
        (error: unknown) => reply.send(error),
      );
    },
  });

  app.get(
    "/v1/introspect",
    { schema: { tags: ["verification"], summary: "The calling key itself: id, ref, owner, environment, scopes, expiry and limits" } },
    async (request, reply) => {
      const caller = await ctx.authenticate(request, reply, { skipLimits: true });
      if (!caller) return reply;
      return { ...toPublicKey(caller.record, keyward.clock.now()), limits: await keyward.inspectLimits(caller.record) };
    },
  );

  app.post<{ Body: Static<typeof ReleaseLeaseBody> }>(
    "/v1/leases/release",
    {
      schema: {
        tags: ["verification"],
        summary: "Free a concurrency slot taken through /v1/authz or /v1/keys/verify before its lease expires",
        body: ReleaseLeaseBody,
        response: { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema },
      },
    },
    async (request, reply) => {
      const caller = await ctx.authenticate(request, reply, { skipLimits: true });
      if (!caller) return reply;
      const { lease_id: leaseId, key_id: keyId } = request.body;
      let holder = caller.record;
      if (keyId !== undefined && keyId !== caller.key.id) {
        // Releasing another key's lease is for the services that verify keys.
        if (findMissingScopes(caller.key.scopes, ["keys:verify"]).length > 0) {
          throw new KeywardError("FORBIDDEN", "releasing another key's lease needs the keys:verify scope");
        }
        holder = await keyward.getKey(keyId);
      }
      if (!(await keyward.releaseLease(holder, leaseId))) throw new KeywardError("LEASE_NOT_FOUND");
      return reply.code(204).send();
    },
  );
}
