import { afterEach, expect, it } from "vitest";
import { verifyWebhookSignature } from "../../src/core/webhook-signature.js";
import { findLeaks } from "../helpers/canary.js";
import { createKeyOverHttp, jsonHeaders, startTestService, type TestService } from "../helpers/service.js";
import { startWebhookReceiver, type WebhookReceiver } from "../helpers/webhook-receiver.js";

const WEBHOOK_ENV = {
  KEYWARD_WEBHOOK_ALLOW_PRIVATE: "true",
  KEYWARD_WEBHOOK_POLL_MS: "50",
  KEYWARD_WEBHOOK_RETRY_BASE_MS: "50",
  KEYWARD_WEBHOOK_MAX_ATTEMPTS: "3",
  KEYWARD_WEBHOOK_TIMEOUT_MS: "2000",
};

let service: TestService | undefined;
let receiver: WebhookReceiver | undefined;
afterEach(async () => {
  await service?.close();
  await receiver?.close();
  service = undefined;
  receiver = undefined;
});

async function setUp(env: Record<string, string> = {}) {
  receiver = await startWebhookReceiver();
  service = await startTestService({ env: { ...WEBHOOK_ENV, ...env }, startWebhooks: true });
  return { service, receiver };
}

async function addEndpoint(s: TestService, url: string, events?: string[]) {
  const response = await s.call("/v1/webhooks", {
    method: "POST",
    headers: jsonHeaders(s.adminKey),
    body: JSON.stringify({ url, ...(events ? { events } : {}) }),
  });
  expect(response.status).toBe(201);
  return response.json() as { id: string; secret: string; url: string; events: string[] };
}

const ofType = (type: string) => (r: { headers: Record<string, unknown> }) => r.headers["keyward-event-type"] === type;

it("a receiver on loopback gets signed key events, verifiable with the endpoint's secret and never holding a key", async () => {
  const { service, receiver } = await setUp();
  const endpoint = await addEndpoint(service, receiver.url);
  expect(endpoint.secret).toMatch(/^whsec_[0-9A-Za-z]{32}$/);
  const key = await createKeyOverHttp(service);
  await service.call(`/v1/keys/${key.id}/revoke`, { method: "POST", headers: jsonHeaders(service.adminKey), body: '{"reason":"test"}' });

  const [created] = await receiver.waitFor(1, ofType("key.created"));
  const [revoked] = await receiver.waitFor(1, ofType("key.revoked"));
  for (const delivery of [created, revoked]) {
    const signature = delivery?.headers["keyward-signature"] as string;
    expect(signature).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(verifyWebhookSignature(delivery?.body as string, signature, endpoint.secret)).toBe(true);
    expect(findLeaks(delivery?.body as string, [key.key, service.adminKey])).toEqual([]);
  }
  const body = JSON.parse(revoked?.body as string);
  expect(body).toMatchObject({
    type: "key.revoked",
    data: {
      actor: { type: "admin_key" },
      target: { type: "key", id: key.id },
      key: { id: key.id, ref: key.ref },
      details: { reason: "test" },
    },
  });
  expect(revoked?.headers["keyward-event-id"]).toBe(body.id);
});

it("a signature fails for a changed body, another secret, or a replay outside the tolerance", async () => {
  const { service, receiver } = await setUp();
  const endpoint = await addEndpoint(service, receiver.url);
  await createKeyOverHttp(service);
  const [delivery] = await receiver.waitFor(1, ofType("key.created"));
  const signature = delivery?.headers["keyward-signature"] as string;
  const body = delivery?.body as string;
  expect(verifyWebhookSignature(`${body} `, signature, endpoint.secret)).toBe(false);
  expect(verifyWebhookSignature(body, signature, "whsec_other")).toBe(false);
  expect(verifyWebhookSignature(body, signature, endpoint.secret, { now: Date.now() + 301_000 })).toBe(false);
});

it("a failing receiver gets retries with back-off, and the delivery log shows each attempt", async () => {
  const { service, receiver } = await setUp();
  receiver.respond = (_request, index) => (index < 2 ? 503 : 204);
  const endpoint = await addEndpoint(service, receiver.url, ["key.created"]);
  await createKeyOverHttp(service);
  const attempts = await receiver.waitFor(3);
  expect(attempts.map((a) => a.headers["keyward-delivery-attempt"])).toEqual(["1", "2", "3"]);
  expect(new Set(attempts.map((a) => a.headers["keyward-event-id"])).size).toBe(1);
  const deadline = Date.now() + 5_000;
  let log: { data: { status: string; attempts: number; last_status_code: number }[] };
  do {
    log = (await service.call(`/v1/webhooks/${endpoint.id}/deliveries`, { headers: jsonHeaders(service.adminKey) })).json() as typeof log;
  } while (log.data[0]?.status !== "delivered" && Date.now() < deadline);
  expect(log.data).toEqual([
    expect.objectContaining({ event_type: "key.created", status: "delivered", attempts: 3, last_status_code: 204 }),
  ]);
  const counts = Object.fromEntries((await service.metrics.webhookDeliveries.get()).values.map((v) => [v.labels.outcome, v.value]));
  expect(counts).toMatchObject({ retry: 2, delivered: 1 });
});

it("a receiver that keeps failing is given up after the last attempt", async () => {
  const { service, receiver } = await setUp();
  receiver.respond = () => 500;
  const endpoint = await addEndpoint(service, receiver.url, ["key.created"]);
  await createKeyOverHttp(service);
  await receiver.waitFor(3);
  const deadline = Date.now() + 5_000;
  let status = "";
  while (status !== "failed" && Date.now() < deadline) {
    const log = (await service.call(`/v1/webhooks/${endpoint.id}/deliveries`, { headers: jsonHeaders(service.adminKey) })).json() as {
      data: { status: string; last_error: string }[];
    };
    status = log.data[0]?.status ?? "";
    if (status === "failed") expect(log.data[0]?.last_error).toBe("HTTP 500");
  }
  expect(status).toBe("failed");
  const warnings = service.logs
    .join("")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as { msg?: string; request_id?: string; delivery_id?: string })
    .filter((line) => line.msg?.startsWith("webhook delivery"));
  expect(warnings).toHaveLength(3);
  for (const line of warnings) expect(line).toMatchObject({ request_id: expect.any(String), delivery_id: expect.stringMatching(/^whd_/) });
});

it("a hanging receiver never holds up the request that caused the event", async () => {
  const { service, receiver } = await setUp();
  receiver.respond = () => "hold";
  await addEndpoint(service, receiver.url, ["key.created"]);
  await createKeyOverHttp(service);
  await receiver.waitFor(1);
  // The first delivery is still unanswered, and the next change is acknowledged all the same.
  const second = await createKeyOverHttp(service, { name: "second" });
  expect(second.id).toMatch(/^key_/);
});

it("key.expiring is sent once for a key that expires within the window", async () => {
  const { service, receiver } = await setUp({ KEYWARD_WEBHOOK_EXPIRY_SWEEP_MS: "50", KEYWARD_WEBHOOK_EXPIRING_DAYS: "7" });
  await addEndpoint(service, receiver.url, ["key.expiring"]);
  const soon = await createKeyOverHttp(service, { expires_at: new Date(Date.now() + 2 * 86_400_000).toISOString() });
  await createKeyOverHttp(service, { expires_at: new Date(Date.now() + 30 * 86_400_000).toISOString() });
  const [expiring] = await receiver.waitFor(1, ofType("key.expiring"));
  expect(JSON.parse(expiring?.body as string)).toMatchObject({ type: "key.expiring", data: { key: { id: soon.id, ref: soon.ref } } });
  await new Promise((resolve) => setTimeout(resolve, 300));
  expect(receiver.received.filter(ofType("key.expiring"))).toHaveLength(1);
});

it("endpoints: the secret is shown once, private targets are refused by default, bad input changes nothing", async () => {
  service = await startTestService();
  const refused = await service.call("/v1/webhooks", {
    method: "POST",
    headers: jsonHeaders(service.adminKey),
    body: JSON.stringify({ url: "http://127.0.0.1:9/hooks" }),
  });
  expect(refused.status).toBe(400);
  expect(refused.json()).toMatchObject({ code: "VALIDATION_FAILED", errors: [{ field: "body.url" }] });
  for (const body of [
    { url: "ftp://hooks.example.test/x" },
    { url: "https://u:p@hooks.example.test/" },
    { url: "https://hooks.example.test/", events: ["nope"] },
    { url: "https://hooks.example.test/", extra: 1 },
  ]) {
    const response = await service.call("/v1/webhooks", {
      method: "POST",
      headers: jsonHeaders(service.adminKey),
      body: JSON.stringify(body),
    });
    expect(response.status, JSON.stringify(body)).toBe(400);
  }
  const list = async () => (await service?.call("/v1/webhooks", { headers: jsonHeaders(service.adminKey) }))?.json() as { data: unknown[] };
  expect((await list()).data).toEqual([]);

  const created = await addEndpoint(service, "https://hooks.example.test/keyward", ["key.revoked", "key.leaked"]);
  const shown = await service.call(`/v1/webhooks/${created.id}`, { headers: jsonHeaders(service.adminKey) });
  expect(shown.json()).toEqual({
    id: created.id,
    url: created.url,
    events: ["key.revoked", "key.leaked"],
    description: null,
    created_at: expect.any(String),
  });
  expect(shown.text).not.toContain(created.secret);
  expect(JSON.stringify(await list())).not.toContain(created.secret);
  expect(
    (await service.call(`/v1/webhooks/${created.id}`, { method: "DELETE", headers: { authorization: `Bearer ${service.adminKey}` } }))
      .status,
  ).toBe(204);
  expect((await service.call(`/v1/webhooks/${created.id}`, { headers: jsonHeaders(service.adminKey) })).status).toBe(404);
});

it("endpoints need the admin scope", async () => {
  service = await startTestService();
  const writer = await createKeyOverHttp(service, { scopes: ["keys:write", "keys:read"], owner: { type: "application", id: "ops" } });
  const response = await service.call("/v1/webhooks", { headers: jsonHeaders(writer.key) });
  expect(response.status).toBe(403);
});
