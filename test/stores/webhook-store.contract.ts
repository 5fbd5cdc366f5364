import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { verifyAuditChain } from "../../src/core/audit-chain.js";
import type { AuditEvent } from "../../src/core/model.js";
import { generateId } from "../../src/core/random.js";
import type { KeyStore } from "../../src/ports/key-store.js";
import type { NewWebhookDelivery, WebhookStore } from "../../src/ports/webhook-store.js";
import { planDeliveries } from "../../src/service/webhook-dispatcher.js";
import { makeAudit, makeKey } from "./key-store.contract.js";

const T0 = Date.UTC(2026, 0, 1);

function endpointAudit(action: string, id: string): AuditEvent {
  return { ...makeAudit(action, id), targetType: "webhook", changes: null };
}

const endpoint = (events: string[] = ["*"], createdAt = T0 - 1_000) => ({
  id: generateId("whk"),
  url: "https://hooks.example.test/keyward",
  events,
  description: null,
  secret: "whsec_test",
  createdAt,
});

/** What every WebhookStore adapter must do; a new adapter is one file plus one call of this. */
export function runWebhookStoreContract(
  name: string,
  open: () => Promise<{ keys: KeyStore; webhooks: WebhookStore; cleanup: () => Promise<void> }>,
): void {
  describe(`WebhookStore contract: ${name}`, () => {
    let keys: KeyStore;
    let webhooks: WebhookStore;
    let cleanup: () => Promise<void>;
    beforeEach(async () => {
      ({ keys, webhooks, cleanup } = await open());
      await keys.migrate();
      await webhooks.migrate();
    });
    afterEach(async () => {
      await cleanup();
    });

    it("creates, lists, gets and deletes endpoints, each change with its chained audit event", async () => {
      const a = await webhooks.createEndpoint(endpoint(), endpointAudit("webhook.created", "a"));
      const b = await webhooks.createEndpoint(endpoint(["key.revoked"]), endpointAudit("webhook.created", "b"));
      expect((await webhooks.listEndpoints(10, null)).map((e) => e.id)).toEqual([a.id, b.id]);
      expect((await webhooks.listEndpoints(10, a.seq)).map((e) => e.id)).toEqual([b.id]);
      expect(await webhooks.getEndpoint(b.id)).toEqual(b);
      expect(await webhooks.deleteEndpoint(a.id, endpointAudit("webhook.deleted", a.id))).toBe(true);
      expect(await webhooks.deleteEndpoint(a.id, endpointAudit("webhook.deleted", a.id))).toBe(false);
      expect(await webhooks.getEndpoint(a.id)).toBeNull();
      const chain = await verifyAuditChain((after, limit) => keys.readAuditChain(after, limit));
      expect(chain).toEqual({ ok: true, events: 3 });
    });

    it("turns committed audit events into one delivery per subscribed endpoint, once", async () => {
      const all = await webhooks.createEndpoint(endpoint(), endpointAudit("webhook.created", "all"));
      const revokedOnly = await webhooks.createEndpoint(endpoint(["key.revoked"]), endpointAudit("webhook.created", "r"));
      const key = makeKey();
      await keys.insertKey(key, makeAudit("key.created", key.id));
      await keys.updateKey(key.id, { revokedAt: T0 }, makeAudit("key.revoked", key.id));
      expect(await webhooks.ingestAuditEvents(100, planDeliveries)).toBe(4);
      expect(await webhooks.ingestAuditEvents(100, planDeliveries)).toBe(0);
      const toAll = await webhooks.listDeliveries(all.id, 10, null);
      expect(toAll.map((d) => d.eventType)).toEqual(["key.revoked", "key.created"]);
      expect(toAll[0]).toMatchObject({ status: "pending", attempts: 0 });
      expect(JSON.parse(toAll[0]?.payload as string)).toMatchObject({ type: "key.revoked", data: { key: { id: key.id, ref: key.ref } } });
      expect((await webhooks.listDeliveries(revokedOnly.id, 10, null)).map((d) => d.eventType)).toEqual(["key.revoked"]);
    });

    it("leases due deliveries so a second claim does not get them, and records attempts", async () => {
      const target = await webhooks.createEndpoint(endpoint(), endpointAudit("webhook.created", "t"));
      const key = makeKey();
      await keys.insertKey(key, makeAudit("key.created", key.id));
      await webhooks.ingestAuditEvents(100, planDeliveries);
      const now = Date.now() + 1_000;
      const claimed = await webhooks.claimDueDeliveries(now, 10, 60_000);
      expect(claimed).toHaveLength(1);
      expect(claimed[0]).toMatchObject({ url: target.url, secret: "whsec_test", eventType: "key.created" });
      expect(await webhooks.claimDueDeliveries(now, 10, 60_000)).toEqual([]);
      const id = claimed[0]?.id as string;
      await webhooks.recordAttempt(id, { status: "pending", at: now, nextAttemptAt: now + 5, statusCode: 500, error: "HTTP 500" });
      expect(await webhooks.claimDueDeliveries(now + 10, 10, 60_000)).toHaveLength(1);
      await webhooks.recordAttempt(id, { status: "delivered", at: now + 10, nextAttemptAt: null, statusCode: 204, error: null });
      const [logged] = await webhooks.listDeliveries(target.id, 10, null);
      expect(logged).toMatchObject({ status: "delivered", attempts: 2, lastStatusCode: 204, deliveredAt: now + 10, nextAttemptAt: null });
      expect(await webhooks.claimDueDeliveries(now + 100_000, 10, 60_000)).toEqual([]);
    });

    it("pages the delivery log newest first and prunes finished deliveries", async () => {
      const target = await webhooks.createEndpoint(endpoint(), endpointAudit("webhook.created", "t"));
      for (let i = 0; i < 3; i++) {
        const key = makeKey();
        await keys.insertKey(key, makeAudit("key.created", key.id));
      }
      await webhooks.ingestAuditEvents(100, planDeliveries);
      const first = await webhooks.listDeliveries(target.id, 2, null);
      expect(first).toHaveLength(2);
      const rest = await webhooks.listDeliveries(target.id, 2, first[1]?.seq as number);
      expect(rest).toHaveLength(1);
      await webhooks.recordAttempt(rest[0]?.id as string, {
        status: "failed",
        at: T0,
        nextAttemptAt: null,
        statusCode: null,
        error: "timed out",
      });
      expect(await webhooks.pruneDeliveries(Date.now() + 1_000)).toBe(1);
      expect(await webhooks.listDeliveries(target.id, 10, null)).toHaveLength(2);
    });

    it("finds keys about to expire and records each expiry notice once", async () => {
      const target = await webhooks.createEndpoint(endpoint(["key.expiring"]), endpointAudit("webhook.created", "t"));
      const soon = makeKey({ expiresAt: T0 + 86_400_000 });
      const later = makeKey({ expiresAt: T0 + 30 * 86_400_000 });
      const revoked = makeKey({ expiresAt: T0 + 86_400_000, revokedAt: T0 });
      for (const key of [soon, later, revoked]) await keys.insertKey(key, makeAudit("key.created", key.id));
      const found = await webhooks.findExpiringKeys(T0, T0 + 7 * 86_400_000, 10);
      expect(found.map((k) => k.id)).toEqual([soon.id]);
      const delivery: NewWebhookDelivery = {
        id: generateId("whd"),
        endpointId: target.id,
        eventId: generateId("evt"),
        eventType: "key.expiring",
        payload: "{}",
        createdAt: T0,
      };
      expect(await webhooks.enqueueExpiryNotice(soon.id, soon.expiresAt as number, [delivery])).toBe(true);
      expect(await webhooks.enqueueExpiryNotice(soon.id, soon.expiresAt as number, [{ ...delivery, id: generateId("whd") }])).toBe(false);
      expect(await webhooks.findExpiringKeys(T0, T0 + 7 * 86_400_000, 10)).toEqual([]);
      expect(await webhooks.listDeliveries(target.id, 10, null)).toHaveLength(1);
    });

    it("deleting an endpoint removes its deliveries", async () => {
      const target = await webhooks.createEndpoint(endpoint(), endpointAudit("webhook.created", "t"));
      const key = makeKey();
      await keys.insertKey(key, makeAudit("key.created", key.id));
      await webhooks.ingestAuditEvents(100, planDeliveries);
      await webhooks.deleteEndpoint(target.id, endpointAudit("webhook.deleted", target.id));
      expect(await webhooks.claimDueDeliveries(Date.now() + 1_000, 10, 1_000)).toEqual([]);
    });
  });
}
