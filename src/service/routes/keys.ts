import type { Static } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import { KeywardError } from "../../core/errors.js";
import { toPublicKey } from "../../core/key-view.js";
import type { KeyChanges } from "../../core/model.js";
import { findEscalatingScopes, findMissingScopes } from "../../core/scopes.js";
import type { CreateKeyInput } from "../../engine/key-input.js";
import type { ServiceContext } from "../context.js";
import {
  CreateKeyBody,
  KeyIdParams,
  KeyObjectSchema,
  ListKeysQuery,
  ProblemSchema,
  RevokeKeyBody,
  RotateKeyBody,
  UpdateKeyBody,
} from "../schemas.js";
import { type Caller, callerContext, getVisibleKey, ownKeysOnly } from "../sessions.js";

const parseTime = (value: string | null | undefined): number | null | undefined =>
  value === undefined ? undefined : value === null ? null : Date.parse(value);

/**
 * A key may not grant management rights its creator lacks; a person signed in to the dashboard
 * may grant only the scopes their role allows (KEYWARD_MEMBER_KEY_SCOPES / KEYWARD_ADMIN_KEY_SCOPES).
 */
function refuseEscalation(ctx: ServiceContext, caller: Caller, scopes: readonly string[] | undefined): void {
  if (!scopes) return;
  const escalating = findEscalatingScopes(caller.scopes, scopes);
  if (escalating.length > 0) {
    throw new KeywardError("FORBIDDEN", `the caller cannot grant: ${escalating.join(", ")}`);
  }
  if (caller.kind === "user") {
    const allowed = caller.user.role === "admin" ? ctx.config.dashboard.adminKeyScopes : ctx.config.dashboard.memberKeyScopes;
    const refused = findMissingScopes(allowed, scopes);
    if (refused.length > 0) throw new KeywardError("FORBIDDEN", `your role may not grant: ${refused.join(", ")}`);
  }
}

/** Members mint keys for themselves only, at a capped rate counted from the audit log (exact across instances). */
async function checkMemberCreate(ctx: ServiceContext, caller: Caller, owner: { type: string; id: string }): Promise<void> {
  if (!ownKeysOnly(caller)) return;
  if (owner.type !== "user" || owner.id !== caller.user.id) throw new KeywardError("FORBIDDEN", "members create keys for themselves only");
  const cap = ctx.config.dashboard.memberKeyCreatesPerHour;
  const since = ctx.keyward.clock.now() - 3_600_000;
  if (ctx.accounts && (await ctx.accounts.store.countActions(caller.user.id, "key.created", since)) >= cap)
    throw new KeywardError("KEY_CREATION_CAPPED", `at most ${cap} keys an hour`, { retryAfterSeconds: 3600 });
}

const errors = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema };

/** Key management routes (PRODUCT.md §5). */
export function registerKeyRoutes(app: FastifyInstance, ctx: ServiceContext): void {
  const { keyward } = ctx;
  const now = () => keyward.clock.now();

  app.post<{ Body: Static<typeof CreateKeyBody> }>(
    "/v1/keys",
    {
      schema: {
        tags: ["keys"],
        summary: "Create a key; the plaintext is in this response only",
        body: CreateKeyBody,
        response: { ...errors },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["keys:write"]);
      if (!caller) return reply;
      const body = request.body;
      refuseEscalation(ctx, caller, body.scopes);
      await checkMemberCreate(ctx, caller, body.owner);
      const input: CreateKeyInput = {
        owner: body.owner,
        name: body.name,
        environment: body.environment,
        scopes: body.scopes,
        expiresAt: parseTime(body.expires_at) ?? null,
        rateLimit: body.rate_limit ?? null,
        concurrency: body.concurrency ?? null,
        quota: body.quota ?? null,
        allowedCidrs: body.allowed_cidrs ?? [],
        metadata: (body.metadata as Record<string, unknown>) ?? {},
      };
      const created = await keyward.createKey(input, callerContext(request, caller));
      reply.header("cache-control", "no-store");
      return reply.code(201).send({ key: created.key, ...toPublicKey(created.record, now()) });
    },
  );

  app.get<{ Querystring: Static<typeof ListKeysQuery> }>(
    "/v1/keys",
    { schema: { tags: ["keys"], summary: "List keys, newest first", querystring: ListKeysQuery, response: { ...errors } } },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["keys:read"]);
      if (!caller) return reply;
      const q = request.query;
      const own = ownKeysOnly(caller) ? { ownerType: "user" as const, ownerId: caller.user.id } : null;
      const page = await keyward.listKeys(
        {
          ...(q.owner_id ? { ownerId: q.owner_id } : {}),
          ...(q.owner_type ? { ownerType: q.owner_type } : {}),
          ...own,
          ...(q.environment ? { environment: q.environment } : {}),
          ...(q.status ? { status: q.status } : {}),
        },
        { ...(q.limit ? { limit: q.limit } : {}), ...(q.cursor ? { cursor: q.cursor } : {}) },
      );
      const at = now();
      return { data: page.data.map((key) => toPublicKey(key, at)), next_cursor: page.nextCursor };
    },
  );

  app.get<{ Params: Static<typeof KeyIdParams> }>(
    "/v1/keys/:id",
    {
      schema: {
        tags: ["keys"],
        summary: "One key (never its secret or digest)",
        params: KeyIdParams,
        response: { 200: KeyObjectSchema, ...errors },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["keys:read"]);
      if (!caller) return reply;
      return toPublicKey(await getVisibleKey(ctx.keyward, caller, request.params.id), now());
    },
  );

  app.patch<{ Params: Static<typeof KeyIdParams>; Body: Static<typeof UpdateKeyBody> }>(
    "/v1/keys/:id",
    {
      schema: {
        tags: ["keys"],
        summary: "Change a key's settings",
        params: KeyIdParams,
        body: UpdateKeyBody,
        response: { 200: KeyObjectSchema, ...errors },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["keys:write"]);
      if (!caller) return reply;
      const body = request.body;
      await getVisibleKey(ctx.keyward, caller, request.params.id);
      refuseEscalation(ctx, caller, body.scopes);
      if (ownKeysOnly(caller) && (body.rate_limit !== undefined || body.concurrency !== undefined || body.quota !== undefined))
        throw new KeywardError("FORBIDDEN", "limits are set by an administrator");
      const changes: KeyChanges = {
        ...(body.name !== undefined ? { name: body.name } : {}),
        ...(body.scopes !== undefined ? { scopes: body.scopes } : {}),
        ...(body.expires_at !== undefined ? { expiresAt: parseTime(body.expires_at) ?? null } : {}),
        ...(body.rate_limit !== undefined ? { rateLimit: body.rate_limit } : {}),
        ...(body.concurrency !== undefined ? { concurrency: body.concurrency } : {}),
        ...(body.quota !== undefined ? { quota: body.quota } : {}),
        ...(body.allowed_cidrs !== undefined ? { allowedCidrs: body.allowed_cidrs } : {}),
        ...(body.metadata !== undefined ? { metadata: body.metadata as Record<string, unknown> } : {}),
        ...(body.enabled !== undefined ? { enabled: body.enabled } : {}),
      };
      const updated = await keyward.updateKey(request.params.id, changes, callerContext(request, caller));
      return toPublicKey(updated, now());
    },
  );

  app.post<{ Params: Static<typeof KeyIdParams>; Body: Static<typeof RotateKeyBody> | undefined }>(
    "/v1/keys/:id/rotate",
    {
      schema: {
        tags: ["keys"],
        summary: "Rotate: a successor with the same settings; the old key works until the grace ends",
        params: KeyIdParams,
        body: RotateKeyBody,
        response: { ...errors },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["keys:write"]);
      if (!caller) return reply;
      await getVisibleKey(ctx.keyward, caller, request.params.id);
      const rotated = await keyward.rotateKey(request.params.id, request.body?.grace_seconds ?? 0, callerContext(request, caller));
      reply.header("cache-control", "no-store");
      const at = now();
      return reply.code(201).send({ key: rotated.key, ...toPublicKey(rotated.record, at), previous: toPublicKey(rotated.previous, at) });
    },
  );

  app.post<{ Params: Static<typeof KeyIdParams>; Body: Static<typeof RevokeKeyBody> | undefined }>(
    "/v1/keys/:id/revoke",
    {
      schema: {
        tags: ["keys"],
        summary: "Revoke at once, on every instance",
        params: KeyIdParams,
        body: RevokeKeyBody,
        response: { 200: KeyObjectSchema, ...errors },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["keys:write"]);
      if (!caller) return reply;
      await getVisibleKey(ctx.keyward, caller, request.params.id);
      const revoked = await keyward.revokeKey(request.params.id, request.body?.reason ?? null, callerContext(request, caller));
      return toPublicKey(revoked, now());
    },
  );
}
