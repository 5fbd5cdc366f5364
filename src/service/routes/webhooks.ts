import { isIP } from "node:net";
import type { Static } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import { KeywardError } from "../../core/errors.js";
import { generateId, generateRandomBase62 } from "../../core/random.js";
import { buildAuditEvent } from "../../engine/audit.js";
import type { WebhookDelivery, WebhookEndpoint, WebhookStore } from "../../ports/webhook-store.js";
import { enforce } from "../authority-gate.js";
import type { ServiceContext } from "../context.js";
import { CreateWebhookBody, ListWebhooksQuery, WebhookIdParams } from "../schemas.js";
import { callerContext } from "../sessions.js";
import { bareHost, isLocalhostName, refusedAddressRange } from "../webhook-target.js";

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

function endpointJson(endpoint: WebhookEndpoint) {
  return {
    id: endpoint.id,
    url: endpoint.url,
    events: endpoint.events,
    description: endpoint.description,
    created_at: iso(endpoint.createdAt),
  };
}

function deliveryJson(delivery: WebhookDelivery) {
  return {
    id: delivery.id,
    event_id: delivery.eventId,
    event_type: delivery.eventType,
    status: delivery.status,
    attempts: delivery.attempts,
    next_attempt_at: iso(delivery.nextAttemptAt),
    last_attempt_at: iso(delivery.lastAttemptAt),
    last_status_code: delivery.lastStatusCode,
    last_error: delivery.lastError,
    created_at: iso(delivery.createdAt),
    delivered_at: iso(delivery.deliveredAt),
  };
}

const invalidUrl = (message: string) =>
  new KeywardError("VALIDATION_FAILED", `body.url: ${message}`, { errors: [{ field: "body.url", message }] });

/**
 * An endpoint URL must be http(s), carry no credentials, and (unless private targets are
 * allowed) not name `localhost` (trailing dots included) or an address the deny-list refuses
 * (webhook-target.ts: loopback, private, link-local, IPv4-mapped and -compatible forms, …): a key
 * event must not become a request into the deployment's own network. Host names are resolved
 * and checked at each delivery, where the connection is made (docs/webhooks.md).
 */
export function checkWebhookUrl(raw: string, allowPrivate: boolean): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalidUrl("not a valid URL");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw invalidUrl("must be http or https");
  if (url.username || url.password) throw invalidUrl("must not carry credentials");
  if (url.hash) throw invalidUrl("must not have a fragment");
  const host = bareHost(url.hostname);
  if (host === "") throw invalidUrl("must name a host");
  if (!allowPrivate) {
    if (isLocalhostName(host))
      throw invalidUrl("loopback hosts are not allowed (KEYWARD_WEBHOOK_ALLOW_PRIVATE=true allows in-house receivers)");
    const range = isIP(host) ? refusedAddressRange(host) : null;
    if (range !== null)
      throw invalidUrl(
        `private, loopback and reserved addresses are not allowed (${range}; KEYWARD_WEBHOOK_ALLOW_PRIVATE=true allows in-house receivers)`,
      );
  }
  return url.toString();
}

function decodeSeqCursor(cursor: string | undefined): number | null {
  if (cursor === undefined) return null;
  if (!/^\d{1,15}$/.test(cursor)) throw new KeywardError("INVALID_CURSOR");
  return Number(cursor);
}

/** One page of `limit` rows from a read of `limit + 1`: the extra row only says there is more. */
function seqPage<T extends { seq: number }, J>(rows: T[], limit: number, toJson: (row: T) => J) {
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return { data: page.map(toJson), next_cursor: rows.length > limit && last ? String(last.seq) : null };
}

/** Webhook endpoints and their delivery log (admin scope); docs/webhooks.md. */
export function registerWebhookRoutes(app: FastifyInstance, ctx: ServiceContext, store: WebhookStore): void {
  const { keyward } = ctx;

  app.post<{ Body: Static<typeof CreateWebhookBody> }>(
    "/v1/webhooks",
    {
      schema: {
        tags: ["webhooks"],
        summary: "Add a webhook endpoint; its signing secret is in this response only",
        body: CreateWebhookBody,
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireKeyCaller(request, reply, ["admin"]);
      if (!caller) return reply;
      enforce(caller.authority, { type: "webhooks.manage" });
      const url = checkWebhookUrl(request.body.url, ctx.config.webhooks.allowPrivate);
      const now = keyward.clock.now();
      const endpoint = {
        id: generateId("whk"),
        url,
        events: request.body.events ?? ["*"],
        description: request.body.description ?? null,
        secret: `whsec_${generateRandomBase62(32)}`,
        createdAt: now,
      };
      const audit = buildAuditEvent(callerContext(request, caller), now, "webhook.created", { type: "webhook", id: endpoint.id }, null, {
        // The origin only: a URL's path or query may itself be a credential.
        origin: new URL(url).origin,
        events: endpoint.events,
      });
      const created = await store.createEndpoint(endpoint, audit);
      keyward.publishCommitted(audit);
      return reply
        .code(201)
        .header("cache-control", "no-store")
        .send({ ...endpointJson(created), secret: created.secret });
    },
  );

  app.get<{ Querystring: Static<typeof ListWebhooksQuery> }>(
    "/v1/webhooks",
    {
      schema: { tags: ["webhooks"], summary: "Webhook endpoints, oldest first (secrets are never listed)", querystring: ListWebhooksQuery },
    },
    async (request, reply) => {
      const caller = await ctx.requireKeyCaller(request, reply, ["admin"]);
      if (!caller) return reply;
      enforce(caller.authority, { type: "webhooks.manage" });
      const limit = request.query.limit ?? 50;
      return seqPage(await store.listEndpoints(limit + 1, decodeSeqCursor(request.query.cursor)), limit, endpointJson);
    },
  );

  app.get<{ Params: Static<typeof WebhookIdParams> }>(
    "/v1/webhooks/:id",
    { schema: { tags: ["webhooks"], summary: "One webhook endpoint", params: WebhookIdParams } },
    async (request, reply) => {
      const caller = await ctx.requireKeyCaller(request, reply, ["admin"]);
      if (!caller) return reply;
      enforce(caller.authority, { type: "webhooks.manage" });
      const endpoint = await store.getEndpoint(request.params.id);
      if (!endpoint) throw new KeywardError("RESOURCE_NOT_FOUND", `no webhook ${request.params.id}`);
      return endpointJson(endpoint);
    },
  );

  app.delete<{ Params: Static<typeof WebhookIdParams> }>(
    "/v1/webhooks/:id",
    { schema: { tags: ["webhooks"], summary: "Remove a webhook endpoint and its pending deliveries", params: WebhookIdParams } },
    async (request, reply) => {
      const caller = await ctx.requireKeyCaller(request, reply, ["admin"]);
      if (!caller) return reply;
      enforce(caller.authority, { type: "webhooks.manage" });
      const audit = buildAuditEvent(callerContext(request, caller), keyward.clock.now(), "webhook.deleted", {
        type: "webhook",
        id: request.params.id,
      });
      if (!(await store.deleteEndpoint(request.params.id, audit)))
        throw new KeywardError("RESOURCE_NOT_FOUND", `no webhook ${request.params.id}`);
      keyward.publishCommitted(audit);
      return reply.code(204).send();
    },
  );

  app.get<{ Params: Static<typeof WebhookIdParams>; Querystring: Static<typeof ListWebhooksQuery> }>(
    "/v1/webhooks/:id/deliveries",
    {
      schema: {
        tags: ["webhooks"],
        summary: "The delivery log of one endpoint, newest first: status, attempts, last response",
        params: WebhookIdParams,
        querystring: ListWebhooksQuery,
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireKeyCaller(request, reply, ["admin"]);
      if (!caller) return reply;
      enforce(caller.authority, { type: "webhooks.manage" });
      if (!(await store.getEndpoint(request.params.id))) throw new KeywardError("RESOURCE_NOT_FOUND", `no webhook ${request.params.id}`);
      const limit = request.query.limit ?? 50;
      return seqPage(await store.listDeliveries(request.params.id, limit + 1, decodeSeqCursor(request.query.cursor)), limit, deliveryJson);
    },
  );
}
