import { Readable } from "node:stream";
import type { Static } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import { KeywardError } from "../../core/errors.js";
import type { AuditEvent } from "../../core/model.js";
import { timestampField } from "../../core/timestamps.js";
import type { AuditFilter } from "../../ports/key-store.js";
import { enforce } from "../authority-gate.js";
import type { ServiceContext } from "../context.js";
import { ExportAuditQuery, ListAuditQuery } from "../schemas.js";

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

function auditFilter(q: Static<typeof ExportAuditQuery>): AuditFilter {
  return {
    ...(q.actor_id ? { actorId: q.actor_id } : {}),
    ...(q.key_id ? { targetId: q.key_id } : {}),
    ...(q.action ? { action: q.action } : {}),
    ...(q.since ? { since: timestampField(q.since, "querystring.since") } : {}),
    ...(q.until ? { until: timestampField(q.until, "querystring.until") } : {}),
  };
}

const EXPORT_PAGE = 500;

/** `GET /v1/audit-events` and its JSON-lines export: who did what to which key, when, from where; newest first. */
export function registerAuditRoutes(app: FastifyInstance, ctx: ServiceContext): void {
  app.get<{ Querystring: Static<typeof ListAuditQuery> }>(
    "/v1/audit-events",
    { schema: { tags: ["audit"], summary: "Audit events, newest first", querystring: ListAuditQuery } },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["audit:read"]);
      if (!caller) return reply;
      enforce(caller.authority, { type: "audit.read" });
      const q = request.query;
      if (q.cursor !== undefined && !/^\d{1,15}$/.test(q.cursor)) throw new KeywardError("INVALID_CURSOR");
      const page = await ctx.keyward.store.listAuditEvents(auditFilter(q), q.limit ?? 50, q.cursor ?? null);
      return { data: page.events.map(auditEventJson), next_cursor: page.next };
    },
  );

  app.get<{ Querystring: Static<typeof ExportAuditQuery> }>(
    "/v1/audit-events/export",
    {
      schema: {
        tags: ["audit"],
        summary: "Every matching audit event as JSON lines (application/x-ndjson), newest first; same filters as the list",
        querystring: ExportAuditQuery,
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireKeyCaller(request, reply, ["audit:read"]);
      if (!caller) return reply;
      enforce(caller.authority, { type: "audit.read" });
      const filter = auditFilter(request.query);
      const store = ctx.keyward.store;
      // Read page by page while streaming: memory stays bounded however long the trail is.
      const first = await store.listAuditEvents(filter, EXPORT_PAGE, null);
      async function* lines() {
        let page = first;
        for (;;) {
          if (page.events.length > 0) yield `${page.events.map((event) => JSON.stringify(auditEventJson(event))).join("\n")}\n`;
          if (page.next === null) return;
          page = await store.listAuditEvents(filter, EXPORT_PAGE, page.next);
        }
      }
      return reply
        .type("application/x-ndjson; charset=utf-8")
        .header("content-disposition", 'attachment; filename="keyward-audit.jsonl"')
        .header("cache-control", "no-store")
        .send(Readable.from(lines()));
    },
  );
}
