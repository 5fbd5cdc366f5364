import { isIP } from "node:net";
import type { Static } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import ipaddr from "ipaddr.js";
import { KeywardError } from "../../core/errors.js";
import { toPublicKey, type VerifiedKey } from "../../core/key-view.js";
import { findMissingScopes } from "../../core/scopes.js";
import { readCarrierHeaders } from "../../middleware/node-http.js";
import { PROBLEM_CONTENT_TYPE } from "../../middleware/problem.js";
import type { Lease, RateLimitState } from "../../ports/limits.js";
import { rawSearch } from "../auth.js";
import type { ServiceContext } from "../context.js";
import { answerForwardAuth, headerValue, proxiedMethod, proxiedTarget } from "../forward-auth.js";
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

const NOT_AN_ADDRESS = "must be an IPv4 or IPv6 address, such as 203.0.113.7 or 2001:db8::7";

/**
 * Verify's `ip`, the end client's address: it is stored as a key's last use and keys the
 * failed-attempt throttle, so only an IP address is taken (docs/hardening.md), written one way
 * (`::ffff:1.2.3.4` is `1.2.3.4`, IPv6 compressed) so that one client is one throttle bucket.
 */
function endClientAddress(raw: string): string {
  if (isIP(raw) === 0 || raw.includes("%"))
    throw new KeywardError("VALIDATION_FAILED", `body.ip: ${NOT_AN_ADDRESS}`, { errors: [{ field: "body.ip", message: NOT_AN_ADDRESS }] });
  return ipaddr.process(raw).toString();
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
      const { key, scopes, environment } = request.body;
      const ip = request.body.ip === undefined ? undefined : endClientAddress(request.body.ip);
      // Verify cannot see the end of the caller's request: a concurrency slot is a lease that
      // expires by itself, or is freed early through POST /v1/leases/release.
      const result = await keyward.verify(key, {
        ...(scopes ? { scopes } : {}),
        ...(environment ? { environment } : {}),
        ...(ip ? { ip } : {}),
        leaseMs: ctx.config.leaseTtlMs,
        route: "verify",
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
    // response to finish through a stream listener. Plain `GET /v1/authz` takes the fast lane
    // (forward-auth.ts) and never gets here; this route answers the rest the same way.
    handler: (request, reply) => {
      const envoyPath = (request.query as Record<string, unknown>)._path;
      const target = proxiedTarget(request.headers, envoyPath);
      answerForwardAuth(
        keyward,
        ctx.config,
        {
          headers: readCarrierHeaders(request.raw),
          // Both sources count: the header adds to the query's requirement, never replaces it.
          scopesHeader: headerValue(request.headers["x-keyward-scopes"]),
          scopesQuery: request.query.scopes,
          environmentHeader: headerValue(request.headers["x-keyward-environment"]),
          environmentQuery: request.query.environment,
          search: rawSearch(request),
          ip: request.ip,
          requestId: request.id,
          method: target === undefined ? undefined : proxiedMethod(request.headers, request.method, envoyPath),
          route: target ?? "authz",
        },
        (answer) => {
          reply.code(answer.status).headers(answer.headers);
          if (answer.problem) reply.type(PROBLEM_CONTENT_TYPE).send(answer.problem);
          else reply.send();
        },
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
