import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { generateApiKey } from "../../src/core/key-format.js";
import { createLogger } from "../../src/service/logger.js";
import { findLeaks, readDatabaseBytes } from "../helpers/canary.js";
import { rawRequest } from "../helpers/raw-http.js";
import { createKeyOverHttp, jsonHeaders, startTestService, type TestService } from "../helpers/service.js";
import { startWebhookReceiver, type WebhookReceiver } from "../helpers/webhook-receiver.js";

// Issue 19, item 5: a client's X-Request-Id is echoed, logged, stored in the append-only audit
// trail and sent in webhooks, so one that holds a key (or is otherwise unsafe) is replaced by a
// fresh id; the logger scrubs every string field; verify's `ip` must be an IP address.

let service: TestService | undefined;
let receiver: WebhookReceiver | undefined;
afterEach(async () => {
  await service?.close();
  await receiver?.close();
  service = undefined;
  receiver = undefined;
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

type AuditJson = { action: string; request_id: string | null; target: { id: string } };

describe("X-Request-Id", () => {
  it("a key sent as the request id is never echoed, logged, stored in the audit trail or sent in a webhook", async () => {
    receiver = await startWebhookReceiver();
    service = await startTestService({
      env: { KEYWARD_WEBHOOK_ALLOW_PRIVATE: "true", KEYWARD_WEBHOOK_POLL_MS: "50" },
      startWebhooks: true,
    });
    const s = service;
    const hook = await s.call("/v1/webhooks", {
      method: "POST",
      headers: jsonHeaders(s.adminKey),
      body: JSON.stringify({ url: receiver.url }),
    });
    expect(hook.status).toBe(201);
    // A real key of this deployment, and one of another prefix inside an otherwise valid id.
    const leaked = await createKeyOverHttp(s);
    const foreign = generateApiKey({ prefix: "acme", environment: "production" });
    s.plant(foreign);
    for (const sent of [leaked.key, `req-${foreign}.1`]) {
      const created = await s.call("/v1/keys", {
        method: "POST",
        headers: { ...jsonHeaders(s.adminKey), "x-request-id": sent },
        body: JSON.stringify({ owner: { type: "user", id: "bob" }, name: "by request id", environment: "sandbox", scopes: [] }),
      });
      expect(created.status).toBe(201);
      const echoed = created.headers.get("x-request-id");
      expect(echoed).toMatch(UUID);
      const id = (created.json() as { id: string }).id;
      const trail = (await s.call(`/v1/audit-events?key_id=${id}`, { headers: jsonHeaders(s.adminKey) })).json() as { data: AuditJson[] };
      expect(trail.data.map((e) => [e.action, e.request_id])).toEqual([["key.created", echoed]]);
      const [delivered] = await receiver.waitFor(1, (r) => r.body.includes(id));
      expect(JSON.parse(delivered?.body as string)).toMatchObject({ type: "key.created", data: { request_id: echoed } });
      // The fast lane (plain GET /v1/authz) and Fastify's errors decide the same way.
      for (const path of ["/v1/authz", "/v1/nowhere"]) {
        const answer = await rawRequest(s.url, { path, headers: { "x-request-id": sent } });
        expect(answer.headers["x-request-id"]).toMatch(UUID);
        expect(answer.body).not.toContain(sent);
      }
    }
    const everything = [s.logs.join(""), ...receiver.received.map((r) => r.body), readDatabaseBytes(s.dbPath)].join("\n");
    expect(findLeaks(everything, [leaked.key, foreign])).toEqual([]);
  });

  it("a plain id is kept; an overlong one, or one with spaces or bytes outside [A-Za-z0-9._-], gets a fresh id", async () => {
    service = await startTestService();
    const idOf = async (sent: string) =>
      (await rawRequest((service as TestService).url, { path: "/v1/nowhere", headers: { "x-request-id": sent } })).headers["x-request-id"];
    expect(await idOf("trace-0af7651916cd43dd.8448eb211c80319c")).toBe("trace-0af7651916cd43dd.8448eb211c80319c");
    expect(await idOf("a".repeat(64))).toBe("a".repeat(64));
    for (const unsafe of ["a".repeat(65), "two words", 'quote"d', "caf\u00e9", "tab\tinside", "<script>"])
      expect(await idOf(unsafe)).toMatch(UUID);
  });
});

describe("the log scrubber", () => {
  it("scrubs key-shaped text in every string field at any depth, in bindings, arrays and objects with toJSON, and keeps errors readable", () => {
    const key = generateApiKey({ prefix: "kw", environment: "production" });
    const lines: string[] = [];
    const logger = createLogger(
      "debug",
      new Writable({
        write(chunk, _encoding, done) {
          lines.push(String(chunk));
          done();
        },
      }),
    );
    class Detail {
      readonly note = `saw ${key}`;
    }
    const child = logger.child({ tenant: `t-${key}`, nested: { deep: [key] } });
    child.warn(
      { anything: key, nested: { list: [1, `x ${key}`, { again: key }] }, detail: new Detail(), when: { toJSON: () => key } },
      "plain",
    );
    child.info({ url: `/v1/keys?x=${key}` }, `message with ${key}`);
    logger.error(new Error(`failed on ${key}`), "with an error");
    const text = lines.join("");
    expect(lines).toHaveLength(3);
    expect(text).not.toContain(key);
    expect(text).toContain("[REDACTED]");
    expect(text).toContain("failed on [REDACTED]");
    // Nothing but the secrets is lost: the other fields are all there.
    const first = JSON.parse(lines[0] as string);
    expect(first).toMatchObject({
      tenant: "t-[REDACTED]",
      anything: "[REDACTED]",
      nested: { list: [1, "x [REDACTED]", { again: "[REDACTED]" }] },
    });
    expect(first.detail).toEqual({ note: "saw [REDACTED]" });
  });
});

describe("POST /v1/keys/verify ip", () => {
  const verify = (s: TestService, key: string, ip: unknown) =>
    s.call("/v1/keys/verify", { method: "POST", headers: jsonHeaders(s.adminKey), body: JSON.stringify({ key, ip }) });

  it("anything but an IP address is 400 naming body.ip, and a key given as the address is not echoed", async () => {
    service = await startTestService();
    const s = service;
    const key = await createKeyOverHttp(s);
    for (const ip of ["not-an-ip", "", "1.2.3", "01.2.3.4", "0x7f.1", "fe80::1%eth0", "1.2.3.4/24", " 1.2.3.4", key.key]) {
      const response = await verify(s, key.key, ip);
      expect(response.status, ip).toBe(400);
      expect(response.json()).toMatchObject({ code: "VALIDATION_FAILED", errors: [{ field: "body.ip" }] });
      expect(response.text).not.toContain(key.key.slice(8));
    }
    for (const ip of ["203.0.113.7", "2001:db8::7", "::ffff:203.0.113.8"]) expect((await verify(s, key.key, ip)).status).toBe(200);
  });

  it("one address is one throttle bucket however it is written", async () => {
    service = await startTestService({ env: { KEYWARD_FAILED_ATTEMPTS_LIMIT: "4", KEYWARD_FAILED_ATTEMPTS_WINDOW_MS: "3600000" } });
    const s = service;
    const random = () => generateApiKey({ prefix: "kw", environment: "sandbox" });
    const spellings = ["198.51.100.7", "::ffff:198.51.100.7", "::ffff:c633:6407", "0:0:0:0:0:ffff:198.51.100.7"];
    for (const ip of spellings) expect(((await verify(s, random(), ip)).json() as { code: string }).code).toBe("NOT_FOUND");
    const refused = await verify(s, random(), "198.51.100.7");
    expect([refused.status, (refused.json() as { code: string }).code]).toEqual([429, "TOO_MANY_FAILED_ATTEMPTS"]);
  });
});
