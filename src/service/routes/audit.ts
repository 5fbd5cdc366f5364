import type { Static } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import { KeywardError } from "../../core/errors.js";
import type { AuditEvent } from "../../core/model.js";
import type { ServiceContext } from "../context.js";
import { ListAuditQuery } from "../schemas.js";

export function auditEventJson(event: AuditEvent) {
  return {
    id: event.id,
    at: new Date(event.at).toISOString(),
    actor: event.actor,
    action: event.action,
    target: { type: event.targetType, id: event.targetId },
    ip: event.ip,
    user_agent: event.userAgent,
    request_id: event.requestId,
    changes: event.changes,
    details: event.details,
  };
}

/** `GET /v1/audit-events`: who did what to which key, when, from where; newest first. */
export function registerAuditRoutes(app: FastifyInstance, ctx: ServiceContext): void {
  app.get<{ Querystring: Static<typeof ListAuditQuery> }>(
    "/v1/audit-events",
    { schema: { tags: ["audit"], summary: "Audit events, newest first", querystring: ListAuditQuery } },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["audit:read"]);
      if (!caller) return reply;
      const q = request.query;
      if (q.cursor !== undefined && !/^\d{1,15}$/.test(q.cursor)) throw new KeywardError("INVALID_CURSOR");
      const page = await ctx.keyward.store.listAuditEvents(
        {
          ...(q.actor_id ? { actorId: q.actor_id } : {}),
          ...(q.key_id ? { targetId: q.key_id } : {}),
          ...(q.action ? { action: q.action } : {}),
          ...(q.since ? { since: Date.parse(q.since) } : {}),
          ...(q.until ? { until: Date.parse(q.until) } : {}),
        },
        q.limit ?? 50,
        q.cursor ?? null,
      );
      return { data: page.events.map(auditEventJson), next_cursor: page.next };
    },
  );
}
