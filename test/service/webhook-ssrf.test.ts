import { createServer, type Server } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { generateId } from "../../src/core/random.js";
import { buildAuditEvent } from "../../src/engine/audit.js";
import { loadConfig } from "../../src/service/config.js";
import { WebhookDispatcher } from "../../src/service/webhook-dispatcher.js";
import { type HostResolver, refusedAddressRange } from "../../src/service/webhook-target.js";
import { SqliteWebhookStore } from "../../src/stores/sqlite/sqlite-webhook-store.js";
import { createKeyOverHttp, jsonHeaders, startTestService, type TestService } from "../helpers/service.js";
import { startWebhookReceiver, type WebhookReceiver } from "../helpers/webhook-receiver.js";

// Issue 19, item 6: webhook targets. A host name is resolved at delivery, every address it
// resolves to is checked against the deny-list, and the connection goes to a checked address
// (the agent's lookup: no second resolution); `localhost.` and IPv4-compatible IPv6 literals are
// refused at registration.

let service: TestService | undefined;
let receiver: WebhookReceiver | undefined;
let dispatcher: WebhookDispatcher | undefined;
let redirector: Server | undefined;
afterEach(async () => {
  await dispatcher?.close();
  await service?.close();
  await receiver?.close();
  if (redirector) await new Promise((resolve) => redirector?.close(resolve));
  dispatcher = undefined;
  service = undefined;
  receiver = undefined;
  redirector = undefined;
});

const FAST = { KEYWARD_WEBHOOK_POLL_MS: "50", KEYWARD_WEBHOOK_RETRY_BASE_MS: "60000", KEYWARD_WEBHOOK_TIMEOUT_MS: "5000" };

type Delivery = { status: string; attempts: number; last_error: string | null; last_status_code: number | null };

/** Waits for the endpoint's first delivery to have had an attempt, and returns it. */
async function firstAttempt(s: TestService, endpointId: string): Promise<Delivery> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const log = (await s.call(`/v1/webhooks/${endpointId}/deliveries`, { headers: jsonHeaders(s.adminKey) })).json() as {
      data: Delivery[];
    };
    const first = log.data[0];
    if (first && first.attempts > 0) return first;
    if (Date.now() > deadline) throw new Error(`no attempt on ${endpointId}: ${JSON.stringify(log)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Stores an endpoint as registration would have stored it before this check (or as DNS said then): the real store, no route. */
async function storeEndpoint(s: TestService, url: string): Promise<string> {
  // An endpoint gets the events at or after its creation time: let the millisecond of the
  // service's own set-up events (its admin key) pass first, so only the test's events reach it.
  await new Promise((resolve) => setTimeout(resolve, 2));
  const id = generateId("whk");
  const audit = buildAuditEvent({ actor: { type: "cli", id: "test" } }, Date.now(), "webhook.created", { type: "webhook", id });
  await new SqliteWebhookStore(s.store).createEndpoint(
    { id, url, events: ["*"], description: null, secret: "whsec_test", createdAt: Date.now() },
    audit,
  );
  return id;
}

describe("registration", () => {
  it("refuses localhost with trailing dots and every IPv6 form of a refused IPv4 address", async () => {
    service = await startTestService();
    const s = service;
    for (const url of [
      "http://localhost./hooks",
      "http://LOCALHOST../hooks",
      "https://api.localhost./hooks",
      "http://[::127.0.0.1]/hooks",
      "http://[::ffff:127.0.0.1]/hooks",
      "http://[0:0:0:0:0:ffff:7f00:1]/hooks",
      "http://[64:ff9b::127.0.0.1]/hooks",
      "http://[64:ff9b::10.0.0.1]/hooks",
      "http://[2002:a9fe:a9fe::1]/hooks",
      "http://[::]/hooks",
      "http://[fe80::1]/hooks",
      "http://[fd00::1]/hooks",
      "http://[ff02::1]/hooks",
      "http://0/hooks",
      "http://127.1/hooks",
      "http://2130706433/hooks",
      "http://169.254.169.254/latest/meta-data",
      "http://100.64.0.1/hooks",
      "http://./hooks",
    ]) {
      const response = await s.call("/v1/webhooks", { method: "POST", headers: jsonHeaders(s.adminKey), body: JSON.stringify({ url }) });
      expect(response.status, url).toBe(400);
      expect(response.json(), url).toMatchObject({ code: "VALIDATION_FAILED", errors: [{ field: "body.url" }] });
    }
    for (const url of [
      "https://hooks.example.com/k",
      "https://[2606:4700:4700::1111]/k",
      "http://[::ffff:8.8.8.8]/k",
      "http://[64:ff9b::8.8.8.8]/k",
    ]) {
      const response = await s.call("/v1/webhooks", { method: "POST", headers: jsonHeaders(s.adminKey), body: JSON.stringify({ url }) });
      expect(response.status, url).toBe(201);
    }
    expect(((await s.call("/v1/webhooks", { headers: jsonHeaders(s.adminKey) })).json() as { data: unknown[] }).data).toHaveLength(4);
  });

  it("the deny-list names the range of each refused address", () => {
    const cases: [string, string | null][] = [
      ["127.0.0.1", "loopback"],
      ["10.1.2.3", "private"],
      ["172.31.255.255", "private"],
      ["192.168.0.1", "private"],
      ["169.254.169.254", "linkLocal"],
      ["0.0.0.0", "unspecified"],
      ["224.0.0.251", "multicast"],
      ["255.255.255.255", "broadcast"],
      ["100.64.0.1", "carrierGradeNat"],
      ["::1", "loopback"],
      ["::", "unspecified"],
      ["::127.0.0.1", "IPv4-compatible"],
      ["::8.8.8.8", "IPv4-compatible"],
      ["::ffff:127.0.0.1", "loopback"],
      ["::ffff:10.0.0.1", "private"],
      ["64:ff9b::7f00:1", "loopback"],
      ["2002:7f00:1::", "loopback"],
      ["fe80::1", "linkLocal"],
      ["fc00::1", "uniqueLocal"],
      ["ff02::1", "multicast"],
      ["not an address", "not an IP address"],
      ["8.8.8.8", null],
      ["::ffff:8.8.8.8", null],
      ["64:ff9b::808:808", null],
      ["2606:4700:4700::1111", null],
    ];
    for (const [address, range] of cases) expect(refusedAddressRange(address), address).toBe(range);
  });
});

describe("delivery", () => {
  it("a host name that resolves to 127.0.0.1 (real resolution of localhost, trailing dot too) gets no delivery", async () => {
    receiver = await startWebhookReceiver();
    service = await startTestService({ env: FAST, startWebhooks: true });
    const s = service;
    const port = new URL(receiver.url).port;
    const plain = await storeEndpoint(s, `http://localhost:${port}/hooks`);
    const dotted = await storeEndpoint(s, `http://localhost.:${port}/hooks`);
    const literal = await storeEndpoint(s, `http://[::ffff:127.0.0.1]:${port}/hooks`);
    await createKeyOverHttp(s);
    for (const id of [plain, dotted, literal]) {
      const attempt = await firstAttempt(s, id);
      expect(attempt).toMatchObject({ status: "pending", last_status_code: null });
      expect(attempt.last_error).toMatch(/^address not allowed: /);
    }
    expect(receiver.received).toEqual([]);
  });

  it("every resolved address is checked: one refused address refuses the host", async () => {
    receiver = await startWebhookReceiver();
    service = await startTestService({ env: FAST });
    const s = service;
    const asked: string[] = [];
    // A name DNS does not know, resolved by a stand-in resolver: a public address and a loopback one.
    const resolve: HostResolver = async (host) => {
      asked.push(host);
      return [
        { address: "93.184.215.14", family: 4 },
        { address: "127.0.0.1", family: 4 },
      ];
    };
    const config = loadConfig(FAST);
    dispatcher = new WebhookDispatcher(new SqliteWebhookStore(s.store), config.webhooks, { resolve });
    dispatcher.start(s.keyward);
    const id = await storeEndpoint(s, `http://mixed.rebind.test:${new URL(receiver.url).port}/hooks`);
    await createKeyOverHttp(s);
    const attempt = await firstAttempt(s, id);
    expect(attempt.last_error).toBe("address not allowed: 127.0.0.1 is not allowed (loopback)");
    expect(asked).toEqual(["mixed.rebind.test"]);
    expect(receiver.received).toEqual([]);
  });

  it("the connection goes to the address the check saw: the name is resolved once, by the checked lookup", async () => {
    receiver = await startWebhookReceiver();
    service = await startTestService({ env: FAST });
    const s = service;
    let calls = 0;
    // Private targets allowed (an in-house receiver): the lookup still resolves once and connects
    // where it said. The system resolver does not know this name, so only that lookup reaches the receiver.
    const resolve: HostResolver = async () => {
      calls++;
      return calls === 1 ? [{ address: "127.0.0.1", family: 4 }] : [{ address: "127.0.0.2", family: 4 }];
    };
    const config = loadConfig({ ...FAST, KEYWARD_WEBHOOK_ALLOW_PRIVATE: "true" });
    dispatcher = new WebhookDispatcher(new SqliteWebhookStore(s.store), config.webhooks, { resolve });
    dispatcher.start(s.keyward);
    const id = await storeEndpoint(s, `http://in-house.rebind.test:${new URL(receiver.url).port}/hooks`);
    const key = await createKeyOverHttp(s);
    const [delivered] = await receiver.waitFor(1);
    expect(JSON.parse(delivered?.body as string)).toMatchObject({ type: "key.created", data: { key: { id: key.id } } });
    expect(delivered?.headers.host).toBe(`in-house.rebind.test:${new URL(receiver.url).port}`);
    expect((await firstAttempt(s, id)).status).toBe("delivered");
    expect(calls).toBe(1);
  });

  it("redirects are not followed, not even to an allowed receiver", async () => {
    receiver = await startWebhookReceiver();
    const target = receiver.url;
    redirector = createServer((_request, response) => response.writeHead(307, { location: target }).end());
    await new Promise<void>((resolve) => redirector?.listen(0, "127.0.0.1", resolve));
    const port = (redirector.address() as { port: number }).port;
    service = await startTestService({ env: { ...FAST, KEYWARD_WEBHOOK_ALLOW_PRIVATE: "true" }, startWebhooks: true });
    const s = service;
    const created = await s.call("/v1/webhooks", {
      method: "POST",
      headers: jsonHeaders(s.adminKey),
      body: JSON.stringify({ url: `http://127.0.0.1:${port}/hooks` }),
    });
    await createKeyOverHttp(s);
    const attempt = await firstAttempt(s, (created.json() as { id: string }).id);
    expect(attempt).toMatchObject({ last_status_code: 307, last_error: "HTTP 307" });
    expect(receiver.received).toEqual([]);
  });
});
