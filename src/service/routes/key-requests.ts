import type { Static } from "@sinclair/typebox";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { KeyRequestRecord } from "../../core/accounts.js";
import { KeywardError } from "../../core/errors.js";
import { toPublicKey } from "../../core/key-view.js";
import { findMissingScopes } from "../../core/scopes.js";
import type { Accounts } from "../../engine/accounts.js";
import type { ValidResult } from "../auth.js";
import type { ServiceContext } from "../context.js";
import {
  CreateKeyRequestBody,
  KeyRequestIdParams,
  KeyRequestSchema,
  ListKeyRequestsQuery,
  ProblemSchema,
  RejectKeyRequestBody,
} from "../schemas.js";
import { type Caller, callerContext, carriesApiKey, ownKeysOnly, readSessionCookie, resolveSessionCaller } from "../sessions.js";

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
});

const errors = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema };

/** A key holder (any valid key) or a dashboard session: who may ask for, and pick up, a production key. */
type Requester = { kind: "key"; result: ValidResult } | Extract<Caller, { kind: "user" }>;

/** Production key requests (PRODUCT.md §5): asked from a sandbox key, decided by an admin, picked up once by the requester. */
export function registerKeyRequestRoutes(app: FastifyInstance, ctx: ServiceContext, accounts: Accounts): void {
  const { keyward } = ctx;

  async function requester(request: FastifyRequest, reply: FastifyReply): Promise<Requester | null> {
    if (!carriesApiKey(request) && readSessionCookie(request) !== null) return resolveSessionCaller(accounts, request, ["keys:read"]);
    const result = await ctx.authenticate(request, reply, { skipLimits: true });
    return result ? { kind: "key", result } : null;
  }

  const mayManage = (caller: Caller) => !ownKeysOnly(caller);

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
      let sandboxId: string;
      if (who.kind === "key") {
        const self = who.result.key.id;
        // A key asks for itself; an admin key (keys:write) may ask on behalf of any sandbox key.
        const admin = findMissingScopes(who.result.key.scopes, ["keys:write"]).length === 0;
        if (body.key_id && body.key_id !== self && !admin) throw new KeywardError("FORBIDDEN", "a key may ask only for itself");
        sandboxId = body.key_id ?? self;
      } else {
        if (!body.key_id)
          throw new KeywardError("VALIDATION_FAILED", "body.key_id: required", { errors: [{ field: "body.key_id", message: "required" }] });
        sandboxId = body.key_id;
      }
      const sandbox = await keyward.getKey(sandboxId);
      if (who.kind === "user" && ownKeysOnly(who) && !(sandbox.owner.type === "user" && sandbox.owner.id === who.user.id))
        throw new KeywardError("RESOURCE_NOT_FOUND", `no key ${sandboxId}`);
      const actor = who.kind === "key" ? { type: "key" as const, id: who.result.key.id } : who.actor;
      const created = await accounts.requestProductionKey(
        sandbox,
        who.kind === "key" ? { type: "key", id: who.result.key.id } : { type: "user", id: who.user.id },
        body.reason ?? null,
        { actor, ip: request.ip, userAgent: request.headers["user-agent"], requestId: request.id },
      );
      return reply.code(201).send(keyRequestJson(created));
    },
  );

  app.get<{ Querystring: Static<typeof ListKeyRequestsQuery> }>(
    "/v1/key-requests",
    {
      schema: {
        tags: ["key requests"],
        summary: "Key requests, newest first: an admin sees all, a member their own",
        querystring: ListKeyRequestsQuery,
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["keys:read"]);
      if (!caller) return reply;
      const q = request.query;
      const page = await accounts.listKeyRequests(
        {
          ...(ownKeysOnly(caller) ? { owner: { type: "user" as const, id: caller.user.id } } : {}),
          ...(q.status ? { status: q.status } : {}),
        },
        { ...(q.limit ? { limit: q.limit } : {}), ...(q.cursor ? { cursor: q.cursor } : {}) },
      );
      return { data: page.data.map(keyRequestJson), next_cursor: page.nextCursor };
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
      const caller = await ctx.requireCaller(request, reply, ["keys:read"]);
      if (!caller) return reply;
      const found = await accounts.getKeyRequest(request.params.id);
      if (ownKeysOnly(caller) && !(found.owner.type === "user" && found.owner.id === caller.user.id))
        throw new KeywardError("RESOURCE_NOT_FOUND", "no such key request");
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
      if (!mayManage(caller)) throw new KeywardError("FORBIDDEN", "only an administrator may approve");
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
      if (!mayManage(caller)) throw new KeywardError("FORBIDDEN", "only an administrator may reject");
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
      const allowed =
        who.kind === "key"
          ? who.result.key.id === found.sandboxKeyId
          : (found.requestedBy.type === "user" && found.requestedBy.id === who.user.id) ||
            (found.owner.type === "user" && found.owner.id === who.user.id);
      if (!allowed) throw new KeywardError("RESOURCE_NOT_FOUND", "no such key request");
      const actor = who.kind === "key" ? { type: "key" as const, id: who.result.key.id } : who.actor;
      const claimed = await accounts.claimKeyRequest(found.id, {
        actor,
        ip: request.ip,
        userAgent: request.headers["user-agent"],
        requestId: request.id,
      });
      reply.header("cache-control", "no-store");
      return reply.code(201).send({ key: claimed.key, ...toPublicKey(claimed.record, keyward.clock.now()) });
    },
  );
}
