import type { Static } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import { KeywardError } from "../../core/errors.js";
import { OWNER_TYPES, type OwnerRef, type OwnerType } from "../../core/model.js";
import { timestampField } from "../../core/timestamps.js";
import { BUCKET_MS } from "../../ports/usage-recorder.js";
import { enforce, keyInReach, scopedTo } from "../authority-gate.js";
import type { ServiceContext } from "../context.js";
import {
  KeyIdParams,
  ProblemSchema,
  RecentRequestsQuery,
  RecentRequestsResponseSchema,
  UsageQuerySchema,
  UsageResponseSchema,
} from "../schemas.js";
import { ownerScope } from "../sessions.js";

const DEFAULT_SPAN_MS = 86_400_000;

/**
 * `GET /v1/usage`: verification counts by key, owner and outcome, in minute, hour or day buckets.
 * `GET /v1/keys/{id}/requests`: a key's recent requests, one by one (docs/usage.md).
 */
export function registerUsageRoutes(app: FastifyInstance, ctx: ServiceContext): void {
  /** `type:id`, as usage rows name owners; an unknown type names no owner a member could be scoped to. */
  const ownerOfText = (text: string): OwnerRef | null => {
    const colon = text.indexOf(":");
    const type = text.slice(0, colon) as OwnerType;
    return colon > 0 && OWNER_TYPES.includes(type) ? { type, id: text.slice(colon + 1) } : null;
  };

  app.get<{ Querystring: Static<typeof UsageQuerySchema> }>(
    "/v1/usage",
    {
      schema: {
        tags: ["usage"],
        summary: "Verification counts by key, owner, outcome and time bucket",
        querystring: UsageQuerySchema,
        response: { 200: UsageResponseSchema, 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requirePortalOrCaller(request, reply, ["keys:read"]);
      if (!caller) return reply;
      const q = request.query;
      // Members and portal sessions see their own keys' usage only; another key is not there. A
      // member asking for an organization's (or one of its keys') usage does so by their role there.
      const asked = q.owner === undefined ? null : ownerOfText(q.owner);
      const scoped =
        q.key_id !== undefined ? (await keyInReach(ctx, caller, q.key_id)).caller : asked ? await scopedTo(ctx, caller, asked) : caller;
      enforce(scoped.authority, { type: "usage.read" });
      const only = ownerScope(scoped);
      const owner = only !== null ? `${only.type}:${only.id}` : q.owner;
      if (only !== null && q.owner !== undefined && q.owner !== owner) throw new KeywardError("RESOURCE_NOT_FOUND", "no such owner");
      const bucket = q.bucket ?? "hour";
      const until = q.until ? timestampField(q.until, "querystring.until") : ctx.keyward.clock.now();
      const since = q.since ? timestampField(q.since, "querystring.since") : until - DEFAULT_SPAN_MS;
      if (since >= until)
        throw new KeywardError("VALIDATION_FAILED", "since must be before until", {
          errors: [{ field: "since", message: "must be before until" }],
        });
      // Whole buckets: the first bucket starts at or before `since`.
      const from = since - (since % BUCKET_MS[bucket]);
      const groupBy = q.group_by ?? "key";
      const limit = q.limit ?? 1_000;
      // One row past the limit says whether the answer was cut short.
      const rows = await ctx.keyward.queryUsage({
        bucket,
        since: from,
        until,
        groupBy,
        limit: limit + 1,
        ...(q.key_id !== undefined ? { keyId: q.key_id } : {}),
        ...(owner !== undefined ? { owner } : {}),
        ...(q.outcome !== undefined ? { outcome: q.outcome } : {}),
      });
      return {
        bucket,
        since: new Date(from).toISOString(),
        until: new Date(until).toISOString(),
        group_by: groupBy,
        has_more: rows.length > limit,
        data: rows.slice(0, limit).map((row) => ({
          start: new Date(row.start).toISOString(),
          ...(groupBy === "key" ? { key_id: row.keyId === "" ? null : row.keyId } : {}),
          outcome: row.outcome,
          count: row.count,
        })),
      };
    },
  );

  app.get<{ Params: Static<typeof KeyIdParams>; Querystring: Static<typeof RecentRequestsQuery> }>(
    "/v1/keys/:id/requests",
    {
      schema: {
        tags: ["usage"],
        summary: "A key's recent requests, newest first: time, outcome, client address, route, missing scopes",
        params: KeyIdParams,
        querystring: RecentRequestsQuery,
        response: { 200: RecentRequestsResponseSchema, 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema },
      },
    },
    async (request, reply) => {
      // Read as the key's usage is: who may read the key (a member: their own keys only) sees its log.
      const caller = await ctx.requireCaller(request, reply, ["keys:read"]);
      if (!caller) return reply;
      const { key, caller: scoped } = await keyInReach(ctx, caller, request.params.id);
      enforce(scoped.authority, { type: "usage.read" });
      const { limit, cursor } = request.query;
      const page = await ctx.keyward.recentRequests(key.id, { ...(limit ? { limit } : {}), ...(cursor ? { cursor } : {}) });
      return {
        kept: ctx.keyward.recentRequestsKept,
        data: page.data.map((entry) => ({
          at: new Date(entry.at).toISOString(),
          outcome: entry.code,
          ip: entry.ip,
          route: entry.route,
          missing_scopes: entry.missingScopes,
        })),
        next_cursor: page.nextCursor,
      };
    },
  );
}
