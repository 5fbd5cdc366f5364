import type { Static } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import { KeywardError } from "../../core/errors.js";
import { parseKeySearch } from "../../core/key-search.js";
import { toPublicKey } from "../../core/key-view.js";
import type { DelegationCeiling, KeyChanges, KeyRecord } from "../../core/model.js";
import { timestampField } from "../../core/timestamps.js";
import type { CreateKeyInput } from "../../engine/key-input.js";
import type { CreationCap } from "../../ports/key-store.js";
import { enforce, enforceKeyUpdate, keyInReach, scopedTo } from "../authority-gate.js";
import type { ServiceContext } from "../context.js";
import { enforcePortalKeyCap } from "../portal-gate.js";
import {
  CreateKeyBody,
  EndedGraceSchema,
  KeyIdParams,
  KeyListSchema,
  KeyObjectSchema,
  ListKeysQuery,
  ProblemSchema,
  RevokedKeySchema,
  RevokeKeyBody,
  RotateKeyBody,
  UpdateKeyBody,
} from "../schemas.js";
import { callerContext, type OwnerScopedCaller, ownerScope } from "../sessions.js";

const parseTime = (value: string | null | undefined): number | null | undefined =>
  value === undefined ? undefined : value === null ? null : timestampField(value, "body.expires_at");

/** The ceiling a create body sets: either field alone takes the key's own environment, or no scopes. */
function ceilingOfNewKey(body: Static<typeof CreateKeyBody>): DelegationCeiling | null {
  if (!body.grantable_scopes && !body.grantable_environments) return null;
  return { scopes: body.grantable_scopes ?? [], environments: body.grantable_environments ?? [body.environment] };
}

/** The ceiling a PATCH leaves: null removes it; one field changes that part of the current one. */
function ceilingAfterUpdate(key: KeyRecord, body: Static<typeof UpdateKeyBody>): DelegationCeiling | null | undefined {
  if (body.grantable_scopes === undefined && body.grantable_environments === undefined) return undefined;
  if (body.grantable_scopes === null || body.grantable_environments === null) return null;
  return {
    scopes: body.grantable_scopes ?? key.delegation?.scopes ?? [],
    environments: body.grantable_environments ?? key.delegation?.environments ?? [key.environment],
  };
}

/**
 * Members (and their keys) and portal sessions create keys at a capped rate, counted in the
 * insert's own transaction.
 */
function memberCap(ctx: ServiceContext, caller: OwnerScopedCaller): CreationCap | undefined {
  const owner = ownerScope(caller);
  if (owner === null) return undefined;
  return {
    owner,
    since: ctx.keyward.clock.now() - 3_600_000,
    max: ctx.config.dashboard.memberKeyCreatesPerHour,
  };
}

const errors = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema };

/** Key management routes (docs/api.md). */
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
      const caller = await ctx.requirePortalOrCaller(request, reply, ["keys:write"]);
      if (!caller) return reply;
      const body = request.body;
      const delegation = ceilingOfNewKey(body);
      const scoped = await scopedTo(ctx, caller, body.owner);
      enforce(scoped.authority, {
        type: "key.create",
        rights: { owner: body.owner, environment: body.environment, scopes: body.scopes, delegation },
        expiry: { at: parseTime(body.expires_at) ?? null, now: now() },
      });
      if (caller.kind === "portal") await enforcePortalKeyCap(ctx, caller.portal);
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
        delegation,
      };
      const cap = memberCap(ctx, scoped);
      const created = await keyward.createKey(input, callerContext(request, scoped), cap ? { cap } : {});
      reply.header("cache-control", "no-store");
      return reply.code(201).send({ key: created.key, ...toPublicKey(created.record, now()) });
    },
  );

  app.get<{ Querystring: Static<typeof ListKeysQuery> }>(
    "/v1/keys",
    {
      schema: {
        tags: ["keys"],
        summary: "List keys, newest first; search and filter them",
        querystring: ListKeysQuery,
        response: { 200: KeyListSchema, ...errors },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requirePortalOrCaller(request, reply, ["keys:read"]);
      if (!caller) return reply;
      const q = request.query;
      // A member listing an organization's keys sees them by their role there.
      const scoped = q.owner_type && q.owner_id ? await scopedTo(ctx, caller, { type: q.owner_type, id: q.owner_id }) : caller;
      const only = ownerScope(scoped);
      const own = only !== null ? { ownerType: only.type, ownerId: only.id } : null;
      const search = q.q === undefined ? null : parseKeySearch(q.q);
      const filter = {
        ...(q.owner_id ? { ownerId: q.owner_id } : {}),
        ...(q.owner_type ? { ownerType: q.owner_type } : {}),
        ...own,
        ...(q.environment ? { environment: q.environment } : {}),
        ...(q.status ? { status: q.status } : {}),
        ...(search ? { search } : {}),
        ...(q.expiring_within !== undefined ? { expiresBy: now() + q.expiring_within * 1000 } : {}),
      };
      const page = await keyward.listKeys(filter, { ...(q.limit ? { limit: q.limit } : {}), ...(q.cursor ? { cursor: q.cursor } : {}) });
      const at = now();
      return {
        data: page.data.map((key) => toPublicKey(key, at)),
        next_cursor: page.nextCursor,
        has_more: page.nextCursor !== null,
        ...(q.include_total ? { total: await keyward.countKeys(filter) } : {}),
      };
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
      const caller = await ctx.requirePortalOrCaller(request, reply, ["keys:read"]);
      if (!caller) return reply;
      return toPublicKey((await keyInReach(ctx, caller, request.params.id)).key, now());
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
      const { key, caller: scoped } = await keyInReach(ctx, caller, request.params.id);
      const delegation = ceilingAfterUpdate(key, body);
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
        ...(delegation !== undefined ? { delegation } : {}),
      };
      await enforceKeyUpdate(ctx, scoped.authority, key, changes);
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
      const caller = await ctx.requirePortalOrCaller(request, reply, ["keys:write"]);
      if (!caller) return reply;
      const { key, caller: scoped } = await keyInReach(ctx, caller, request.params.id);
      enforce(scoped.authority, { type: "key.rotate", key });
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
        summary: "Revoke at once, on every instance; ends the grace of the predecessors of its rotation lineage too",
        params: KeyIdParams,
        body: RevokeKeyBody,
        response: { 200: RevokedKeySchema, ...errors },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requirePortalOrCaller(request, reply, ["keys:write"]);
      if (!caller) return reply;
      const { key, caller: scoped } = await keyInReach(ctx, caller, request.params.id);
      enforce(scoped.authority, { type: "key.revoke", key });
      const revoked = await keyward.revoke(request.params.id, request.body?.reason ?? null, callerContext(request, caller));
      return { ...toPublicKey(revoked.key, now()), ended_grace: revoked.endedGrace.map((key) => key.id) };
    },
  );

  app.post<{ Params: Static<typeof KeyIdParams>; Body: unknown }>(
    "/v1/keys/:id/end-grace",
    {
      schema: {
        tags: ["keys"],
        summary:
          "End a rotation grace now: on a successor, its predecessors stop at once; on a key in its grace, that key (and any before it)",
        params: KeyIdParams,
        response: { 200: EndedGraceSchema, ...errors },
      },
    },
    async (request, reply) => {
      // No fields: no body, or an empty JSON object (as the other key actions are sent).
      const body = request.body;
      if (body !== undefined && (typeof body !== "object" || body === null || Array.isArray(body) || Object.keys(body).length > 0))
        throw new KeywardError("VALIDATION_FAILED", "body: takes no fields", { errors: [{ field: "body", message: "takes no fields" }] });
      const caller = await ctx.requireCaller(request, reply, ["keys:write"]);
      if (!caller) return reply;
      const { caller: scoped } = await keyInReach(ctx, caller, request.params.id);
      // Whoever may revoke a key may end its grace: the same decision, for every key that stops.
      const ended = await keyward.endGrace(request.params.id, callerContext(request, caller), (ending) => {
        for (const key of ending) enforce(scoped.authority, { type: "key.revoke", key });
      });
      return { ...toPublicKey(ended.key, now()), ended_grace: ended.endedGrace.map((key) => key.id) };
    },
  );
}
