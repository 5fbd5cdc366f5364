import { BlockList, connect, isIP } from "node:net";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateApiKey } from "../../src/core/key-format.js";
import { parseTimestamp, TIMESTAMP_RULE } from "../../src/core/timestamps.js";
import { fuzzAsync, requestIdText, timestampText, webhookUrlText } from "../helpers/fuzz.js";
import { rawRequest } from "../helpers/raw-http.js";
import { createKeyOverHttp, jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

// SECURITY.md 2 and 6 by fuzzing the real service: whatever arrives in carrier headers or
// management bodies, the answer is never a 5xx, and a refused write changes nothing.

let service: TestService;
beforeAll(async () => {
  // The failed-attempt throttle would answer most of these with 429 before the parser is reached.
  service = await startTestService({ env: { KEYWARD_FAILED_ATTEMPTS_LIMIT: "0" } });
});
afterAll(async () => {
  await service.close();
});

/** Sends raw bytes (header values no HTTP client would send) and returns the status code. */
function sendRaw(url: string, request: Buffer): Promise<number> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) });
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", reject);
    socket.on("close", () => {
      const status = /^HTTP\/1\.1 (\d{3})/.exec(Buffer.concat(chunks).toString("latin1"));
      resolve(status ? Number(status[1]) : 0);
    });
    socket.end(request);
  });
}

// Header value bytes: visible latin1 and tab/space, and now and then a bare CR, LF or NUL.
const headerValue = fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes.filter((b) => b === 9 || b >= 32))),
  fc.uint8Array({ maxLength: 50 }).map((bytes) => Buffer.from(bytes)),
  fc.constantFrom("Bearer", "Basic !!!", "Bearer a b", `Basic ${Buffer.from("kw_test_x").toString("base64")}`).map((s) => Buffer.from(s)),
  fc.string({ maxLength: 100 }).map((s) => Buffer.from(`Bearer ${generateApiKey({ environment: "sandbox" }).slice(0, 20)}${s}`, "latin1")),
);
const path = fc.oneof(
  fc.constantFrom("/v1/authz", "/v1/introspect", "/v1/keys", "/v1/authz?scopes=read"),
  fc.webPath().map((p) => `/v1/authz${p.startsWith("/") ? "" : "/"}${p}`),
  fc.webQueryParameters().map((q) => `/v1/authz?${q}`),
);

describe("fuzzing the service", () => {
  it("any carrier header bytes, on any verification path: never a 5xx", async () => {
    await fuzzAsync(
      fc.asyncProperty(
        path,
        fc.option(headerValue, { nil: undefined }),
        fc.option(headerValue, { nil: undefined }),
        async (target, authorization, apiKey) => {
          const head = Buffer.from(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n`, "latin1");
          const lines = [head];
          if (authorization) lines.push(Buffer.from("Authorization: "), authorization, Buffer.from("\r\n"));
          if (apiKey) lines.push(Buffer.from("X-API-Key: "), apiKey, Buffer.from("\r\n"));
          lines.push(Buffer.from("\r\n"));
          const status = await sendRaw(service.url, Buffer.concat(lines));
          return status >= 200 && status < 500;
        },
      ),
      { numRuns: 200 },
    );
  });

  it("any JSON body to create or change a key: never a 5xx, and a refused write changes nothing", async () => {
    const existing = await createKeyOverHttp(service);
    const body = fc.oneof(
      fc.jsonValue({ maxDepth: 6 }),
      fc.record(
        {
          owner: fc.oneof(
            fc.record({ type: fc.constantFrom("user", "application", "x"), id: fc.string({ maxLength: 20 }) }),
            fc.jsonValue(),
          ),
          name: fc.oneof(fc.string({ maxLength: 120 }), fc.jsonValue()),
          environment: fc.oneof(fc.constantFrom("sandbox", "production"), fc.jsonValue()),
          scopes: fc.oneof(fc.array(fc.string({ maxLength: 10 }), { maxLength: 5 }), fc.jsonValue()),
          metadata: fc.jsonValue({ maxDepth: 8 }),
          rate_limit: fc.jsonValue(),
          quota: fc.jsonValue(),
          allowed_cidrs: fc.jsonValue(),
          expires_at: fc.oneof(
            fc.date().map((d) => (Number.isNaN(d.getTime()) ? "x" : d.toISOString())),
            fc.jsonValue(),
          ),
        },
        { requiredKeys: [] },
      ),
    );
    await fuzzAsync(
      fc.asyncProperty(fc.constantFrom("POST /v1/keys", `PATCH /v1/keys/${existing.id}`), body, async (route, payload) => {
        const [method, url] = route.split(" ") as [string, string];
        const before = await service.store.countKeys();
        const beforeKey = JSON.stringify(await service.store.getKey(existing.id));
        const response = await service.call(url, { method, headers: jsonHeaders(service.adminKey), body: JSON.stringify(payload) });
        if (response.status >= 500) return false;
        if (response.status < 300) return true;
        return (await service.store.countKeys()) === before && JSON.stringify(await service.store.getKey(existing.id)) === beforeKey;
      }),
      { numRuns: 150 },
    );
    expect((await service.call(`/v1/keys/${existing.id}`, { headers: jsonHeaders(service.adminKey) })).status).toBe(200);
  });
});

// Issue 19: timestamp parameters, request ids and webhook URLs, 10,000 generated inputs each,
// over loopback HTTP with keep-alive (fetch's and node:http's pooled connections).
const RUNS = 10_000;
const LONG = 600_000;

/** Percent-encodes every byte of the UTF-8 text: the server's query parser sees exactly the text. */
const queryValue = (text: string) => [...Buffer.from(text, "utf8")].map((b) => `%${b.toString(16).padStart(2, "0")}`).join("");

type Problem = { code?: string; errors?: { field: string; message: string }[] };

describe("fuzzing the issue 19 inputs", () => {
  it("any timestamp parameter, query or body: never a 5xx; what the parser refuses is 400 VALIDATION_FAILED naming the field", {
    timeout: LONG,
  }, async () => {
    const existing = await createKeyOverHttp(service);
    const target = fc.constantFrom(
      { path: "/v1/usage", field: "since" },
      { path: "/v1/usage", field: "until" },
      { path: "/v1/audit-events", field: "since" },
      { path: "/v1/audit-events", field: "until" },
      { path: "/v1/audit-events/export", field: "since" },
      { path: "/v1/audit-events/export", field: "until" },
      { path: "/v1/keys", field: "expires_at", method: "POST" },
      { path: `/v1/keys/${existing.id}`, field: "expires_at", method: "PATCH" },
    );
    await fuzzAsync(
      fc.asyncProperty(target, timestampText, async (t, text) => {
        const inBody = t.method !== undefined;
        const response = inBody
          ? await fetch(service.url + t.path, {
              method: t.method,
              headers: jsonHeaders(service.adminKey),
              body: JSON.stringify({
                ...(t.method === "POST" ? { owner: { type: "user", id: "fuzz" }, name: "fuzz", environment: "sandbox", scopes: [] } : {}),
                expires_at: text,
              }),
            })
          : await fetch(`${service.url}${t.path}?${t.field}=${queryValue(text)}`, { headers: jsonHeaders(service.adminKey) });
        const body = await response.text();
        if (response.status >= 500) return false;
        const field = `${inBody ? "body" : "querystring"}.${t.field}`;
        const problem = (response.status === 400 ? JSON.parse(body) : {}) as Problem;
        const named = problem.errors?.some((e) => e.field === field && e.message === TIMESTAMP_RULE) ?? false;
        // Text the server receives as the parser's input: a lone surrogate arrives as U+FFFD (still refused).
        const accepted = parseTimestamp(Buffer.from(text, "utf8").toString("utf8")) !== null;
        return accepted ? !named : problem.code === "VALIDATION_FAILED" && named;
      }),
      { numRuns: RUNS },
    );
  });

  it("any X-Request-Id, on the fast lane, Fastify routes and errors: never a 5xx, echoed only when plainly an id, never when key-shaped", {
    timeout: LONG,
  }, async () => {
    const KEY_SHAPED = /[a-z][a-z0-9]{1,15}_(?:live|test)_[0-9A-Za-z]{8,}/;
    const path = fc.constantFrom("/v1/authz", "/v1/authz?scopes=read", "/v1/introspect", "/v1/keys?limit=1", "/v1/nowhere", "/healthz");
    await fuzzAsync(
      fc.asyncProperty(path, requestIdText, fc.boolean(), async (target, id, authenticated) => {
        const response = await rawRequest(service.url, {
          path: target,
          headers: { "x-request-id": id, ...(authenticated ? { authorization: `Bearer ${service.adminKey}` } : {}) },
        });
        if (response.status >= 500) return false;
        const echoed = response.headers["x-request-id"];
        if (typeof echoed !== "string") return false;
        // What the server read: HTTP strips spaces and tabs around a header value.
        const sent = id.replace(/^[ \t]+|[ \t]+$/g, "");
        const plainId = /^[A-Za-z0-9._-]{1,64}$/.test(sent) && !KEY_SHAPED.test(sent);
        if (KEY_SHAPED.test(echoed) || KEY_SHAPED.test(response.body)) return false;
        return plainId ? echoed === sent : echoed !== sent && /^[0-9a-f-]{36}$/.test(echoed);
      }),
      { numRuns: RUNS },
    );
  });

  it("any webhook URL at registration: never a 5xx, and no refused address or localhost name is ever stored", {
    timeout: LONG,
  }, async () => {
    // An independent oracle (node:net's BlockLists) of what must be refused when the host is an IP
    // literal; one list per family, since a BlockList matches IPv4 addresses against IPv6 rules too.
    const refused = new BlockList();
    const refused6 = new BlockList();
    for (const [net, bits] of [
      ["0.0.0.0", 8],
      ["10.0.0.0", 8],
      ["100.64.0.0", 10],
      ["127.0.0.0", 8],
      ["169.254.0.0", 16],
      ["172.16.0.0", 12],
      ["192.168.0.0", 16],
      ["224.0.0.0", 4],
      ["240.0.0.0", 4],
    ] as const)
      refused.addSubnet(net, bits, "ipv4");
    for (const [net, bits] of [
      ["::", 96],
      ["fc00::", 7],
      ["fe80::", 10],
      ["ff00::", 8],
    ] as const)
      refused6.addSubnet(net, bits, "ipv6");
    const isRefused = (host: string): boolean => {
      const family = isIP(host);
      if (family === 4) return refused.check(host, "ipv4");
      if (refused6.check(host, "ipv6")) return true;
      // 64:ff9b::a.b.c.d and ::ffff:a.b.c.d carry an IPv4 address: refused when it is.
      const embedded = /^(?:64:ff9b::|::ffff:)(?:([0-9a-f]{1,4}):)?([0-9a-f]{1,4})$/.exec(host);
      if (!embedded) return false;
      const hi = Number.parseInt(embedded[1] ?? "0", 16);
      const lo = Number.parseInt(embedded[2] as string, 16);
      return refused.check(`${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`, "ipv4");
    };
    await fuzzAsync(
      fc.asyncProperty(webhookUrlText, async (url) => {
        const response = await fetch(`${service.url}/v1/webhooks`, {
          method: "POST",
          headers: jsonHeaders(service.adminKey),
          body: JSON.stringify({ url }),
        });
        const body = (await response.json()) as Problem & { url?: string };
        if (response.status >= 500) return false;
        if (response.status !== 201) return response.status === 400 && body.code === "VALIDATION_FAILED";
        const host = new URL(body.url as string).hostname
          .replace(/^\[|\]$/g, "")
          .replace(/\.+$/, "")
          .toLowerCase();
        if (host === "localhost" || host.endsWith(".localhost")) return false;
        return isIP(host) === 0 || !isRefused(host);
      }),
      { numRuns: RUNS },
    );
  });
});
