import type { Static } from "@sinclair/typebox";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Authority } from "../../authority/model.js";
import type { KeyRequestRecord } from "../../core/accounts.js";
import { KeywardError } from "../../core/errors.js";
import { toPublicKey } from "../../core/key-view.js";
import { findMissingScopes } from "../../core/scopes.js";
import type { Accounts } from "../../engine/accounts.js";
import { authorityOf, enforce, scopedTo } from "../authority-gate.js";
import type { ServiceContext } from "../context.js";
import {
  CreateKeyRequestBody,
  KeyRequestIdParams,
  KeyRequestSchema,
  ListKeyRequestsQuery,
  ProblemSchema,
  RejectKeyRequestBody,
} from "../schemas.js";
import {
  type Caller,
  callerContext,
  carriesApiKey,
  type OwnerScopedCaller,
  ownerScope,
  readSessionCookie,
  resolveSessionCaller,
} from "../sessions.js";

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export const keyRequestJson = (r: KeyRequestRecord) => ({
  id: r.id,
  sandbox_key_id: r.sandboxKeyId,
  owner: r.owner,
  requested_by: r.requestedBy,
  reason: r.reason,
  status: r.status,
  created_at: iso(r.createdAt) as string,
  decided_at: iso(r.decidedAt),
  decided_by: r.decidedBy,
  decision_reason: r.decisionReason,
  issued_key_id: r.issuedKeyId,
  claimed_at: iso(r.claimedAt),
  asked: r.asked
    ? {
        name: r.asked.name,
        scopes: r.asked.scopes,
        rate_limit: r.asked.rateLimit,
        concurrency: r.asked.concurrency,
        quota: r.asked.quota,
        allowed_cidrs: r.asked.allowedCidrs,
        metadata: r.asked.metadata,
        expires_after_approval_seconds: r.asked.lifetimeMs === undefined ? null : Math.floor(r.asked.lifetimeMs / 1000),
      }
    : null,
});

/** The shortest longest-expiry among the asker's bounds (a portal policy's), for the production key it asks for. */
function lifetimeOf(authority: Authority): { lifetimeMs?: number } {
  const limits = authority.bounds.flatMap((bound) => (bound.maxLifetimeMs === undefined ? [] : [bound.maxLifetimeMs]));
  return limits.length === 0 ? {} : { lifetimeMs: Math.min(...limits) };
}

const errors = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema };

/**
 * A key holder (any valid key), a dashboard session or a portal session (docs/embedding.md): who
 * may ask for, and pick up, a production key.
 */
type Requester = OwnerScopedCaller;

/** Production key requests (docs/api.md): asked from a sandbox key, decided by an admin, picked up once by the requester. */
export function registerKeyRequestRoutes(app: FastifyInstance, ctx: ServiceContext, accounts: Accounts): void {
  const { keyward } = ctx;

  async function requester(request: FastifyRequest, reply: FastifyReply): Promise<Requester | null> {
    const portal = await ctx.portalCaller(request, ["keys:read"]);
    if (portal) return portal;
    let caller: Caller;
    if (!carriesApiKey(request) && readSessionCookie(request) !== null)
      caller = await resolveSessionCaller(accounts, request, ["keys:read"]);
    else {
      const result = await ctx.authenticate(request, reply, { skipLimits: true });
      if (!result) return null;
      caller = { kind: "key", actor: { type: "key", id: result.key.id }, scopes: result.key.scopes, result };
    }
    return { ...caller, authority: await authorityOf(ctx, caller) };
  }

  app.post<{ Body: Static<typeof CreateKeyRequestBody> | undefined }>(
    "/v1/key-requests",
    {
      schema: {
        tags: ["key requests"],
        summary: "Ask for a production key: by the sandbox key itself, or by its owner in the dashboard",
        body: CreateKeyRequestBody,
        response: { 201: KeyRequestSchema, ...errors },
      },
    },
    async (request, reply) => {
      const who = await requester(request, reply);
      if (!who) return reply;
      const body = request.body ?? {};
      // A key asks for itself; on behalf of another key it needs keys:write and that key within its reach.
      const self = who.kind === "key" ? who.result.key.id : null;
      if (who.kind !== "key" && !body.key_id)
        throw new KeywardError("VALIDATION_FAILED", "body.key_id: required", { errors: [{ field: "body.key_id", message: "required" }] });
      const sandboxId = body.key_id ?? (self as string);
      const forItself = sandboxId === self;
      if (!forItself && who.kind === "key" && findMissingScopes(who.result.key.scopes, ["keys:write"]).length > 0)
        throw new KeywardError("FORBIDDEN", "a key may ask only for itself");
      const sandbox = await keyward.getKey(sandboxId);
      // A member asks for an organization's key by their role there (docs/organizations.md).
      const scoped = await scopedTo(ctx, who, sandbox.owner, sandbox);
      enforce(scoped.authority, { type: "key_request.create", sandbox, forItself });
      const actor = who.actor;
      const created = await accounts.requestProductionKey(
        sandbox,
        // A portal session asks on behalf of the sandbox key (its audit event names the session).
        who.kind === "key"
          ? { type: "key", id: who.result.key.id }
          : who.kind === "portal"
            ? { type: "key", id: sandbox.id }
            : { type: "user", id: who.user.id },
        body.reason ?? null,
        who.kind === "portal"
          ? callerContext(request, who)
          : { actor, ip: request.ip, userAgent: request.headers["user-agent"], requestId: request.id },
        lifetimeOf(scoped.authority),
      );
      return reply.code(201).send(keyRequestJson(created));
    },
  );

  app.get<{ Querystring: Static<typeof ListKeyRequestsQuery> }>(
    "/v1/key-requests",
    {
      schema: {
        tags: ["key requests"],
        summary: "Key requests, newest first, filtered by owner and status: an admin sees all, a member their own",
        querystring: ListKeyRequestsQuery,
      },
    },
    async (request, reply) => {
      const caller = await ctx.requirePortalOrCaller(request, reply, ["keys:read"]);
      if (!caller) return reply;
      const q = request.query;
      const scoped =
        q.owner_type === "organization" && q.owner_id ? await scopedTo(ctx, caller, { type: q.owner_type, id: q.owner_id }) : caller;
      const only = ownerScope(scoped);
      const page = await accounts.listKeyRequests(
        {
          ...(q.owner_type ? { ownerType: q.owner_type } : {}),
          ...(q.owner_id ? { ownerId: q.owner_id } : {}),
          // A member's own requests, whatever owner was asked for (as GET /v1/keys does).
          ...(only !== null ? { owner: only } : {}),
          ...(q.status ? { status: q.status } : {}),
        },
        { ...(q.limit ? { limit: q.limit } : {}), ...(q.cursor ? { cursor: q.cursor } : {}) },
      );
      return { data: page.data.map(keyRequestJson), next_cursor: page.nextCursor, has_more: page.nextCursor !== null };
    },
  );

  app.get<{ Params: Static<typeof KeyRequestIdParams> }>(
    "/v1/key-requests/:id",
    {
      schema: {
        tags: ["key requests"],
        summary: "One key request",
        params: KeyRequestIdParams,
        response: { 200: KeyRequestSchema, ...errors },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requirePortalOrCaller(request, reply, ["keys:read"]);
      if (!caller) return reply;
      const found = await accounts.getKeyRequest(request.params.id);
      enforce((await scopedTo(ctx, caller, found.owner)).authority, { type: "key_request.read", request: found });
      return keyRequestJson(found);
    },
  );

  app.post<{ Params: Static<typeof KeyRequestIdParams> }>(
    "/v1/key-requests/:id/approve",
    {
      schema: {
        tags: ["key requests"],
        summary: "Approve (admin): issues a production key with the sandbox key's scopes and limits, for the requester to pick up",
        params: KeyRequestIdParams,
        response: { 200: KeyRequestSchema, ...errors },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["keys:write"]);
      if (!caller) return reply;
      const found = await accounts.getKeyRequest(request.params.id);
      // A request without a record of what was asked is refused by the engine as stale.
      if (found.asked) enforce(caller.authority, { type: "key_request.approve", request: found, asked: found.asked });
      else enforce(caller.authority, { type: "key_request.reject", request: found });
      const approved = await accounts.approveKeyRequest(request.params.id, callerContext(request, caller));
      return keyRequestJson(approved.request);
    },
  );

  app.post<{ Params: Static<typeof KeyRequestIdParams>; Body: Static<typeof RejectKeyRequestBody> }>(
    "/v1/key-requests/:id/reject",
    {
      schema: {
        tags: ["key requests"],
        summary: "Reject with a reason (admin)",
        params: KeyRequestIdParams,
        body: RejectKeyRequestBody,
        response: { 200: KeyRequestSchema, ...errors },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["keys:write"]);
      if (!caller) return reply;
      enforce(caller.authority, { type: "key_request.reject", request: await accounts.getKeyRequest(request.params.id) });
      return keyRequestJson(await accounts.rejectKeyRequest(request.params.id, request.body.reason, callerContext(request, caller)));
    },
  );

  app.post<{ Params: Static<typeof KeyRequestIdParams> }>(
    "/v1/key-requests/:id/claim",
    {
      schema: {
        tags: ["key requests"],
        summary:
          "Pick up the approved production key, once: by the requester (session) or the sandbox key; the plaintext is in this response only",
        params: KeyRequestIdParams,
        response: { ...errors },
      },
    },
    async (request, reply) => {
      const who = await requester(request, reply);
      if (!who) return reply;
      const found = await accounts.getKeyRequest(request.params.id);
      const claimant =
        who.kind === "key"
          ? { type: "key" as const, id: who.result.key.id }
          : who.kind === "portal"
            ? { type: "portal" as const, id: who.portal.id, owner: who.portal.owner }
            : { type: "user" as const, id: who.user.id };
      enforce((await scopedTo(ctx, who, found.owner)).authority, { type: "key_request.claim", request: found, claimant });
      const actor = who.actor;
      const claimed = await accounts.claimKeyRequest(
        found.id,
        who.kind === "portal"
          ? callerContext(request, who)
          : { actor, ip: request.ip, userAgent: request.headers["user-agent"], requestId: request.id },
      );
      reply.header("cache-control", "no-store");
      return reply.code(201).send({ key: claimed.key, ...toPublicKey(claimed.record, keyward.clock.now()) });
    },
  );
}
