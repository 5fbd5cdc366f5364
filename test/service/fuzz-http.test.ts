import { connect } from "node:net";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateApiKey } from "../../src/core/key-format.js";
import { fuzzAsync } from "../helpers/fuzz.js";
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
