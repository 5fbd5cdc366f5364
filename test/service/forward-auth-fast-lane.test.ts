import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateApiKey } from "../../src/core/key-format.js";
import { rawRequest } from "../helpers/raw-http.js";
import { createKeyOverHttp, jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

// Plain `GET /v1/authz` over HTTP takes the fast lane (src/service/forward-auth.ts); `inject()`
// enters Fastify directly, so the same request through it takes the Fastify route. Each case
// sends one request each way and the answers must be the same, header by header.

let service: TestService;
beforeAll(async () => {
  service = await startTestService({ env: { KEYWARD_TRUST_PROXY: "127.0.0.1" } });
});
afterAll(async () => service.close());

/** Header values that differ between two answers by nature: time, and fresh ids where the client sent none. */
const VARYING = new Set(["date", "connection", "keep-alive", "transfer-encoding"]);

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

function normalise(answer: { status: number; headers: Record<string, unknown>; body: string }, clientRequestId: boolean): Answer {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(answer.headers)) {
    if (VARYING.has(name) || value === undefined) continue;
    headers[name] = String(value);
  }
  const dropId = (json: string) => {
    const parsed = JSON.parse(json) as Record<string, unknown>;
    if (!clientRequestId) delete parsed.request_id;
    return JSON.stringify(parsed);
  };
  if (!clientRequestId) headers["x-request-id"] = headers["x-request-id"] ? "(fresh)" : "(none)";
  if (headers["x-keyward-problem"]) headers["x-keyward-problem"] = dropId(headers["x-keyward-problem"]);
  // A lease is a fresh slot each time: same headers, different ids.
  if (headers["x-keyward-lease"]) headers["x-keyward-lease"] = "(lease)";
  if (headers["x-keyward-lease-expires"]) headers["x-keyward-lease-expires"] = "(expiry)";
  return { status: answer.status, headers, body: answer.body ? dropId(answer.body) : "" };
}

async function bothWays(headers: Record<string, string>, keys?: [string, string]): Promise<{ fast: Answer; route: Answer }> {
  const clientRequestId = "x-request-id" in headers;
  const withKey = (key: string | undefined) => (key ? { ...headers, "x-api-key": key } : headers);
  const fast = await rawRequest(service.url, { path: "/v1/authz", headers: withKey(keys?.[0]) });
  const injected = await service.app.inject({ method: "GET", url: "/v1/authz", headers: withKey(keys?.[1]), remoteAddress: "127.0.0.1" });
  return {
    fast: normalise(fast, clientRequestId),
    route: normalise({ status: injected.statusCode, headers: injected.headers, body: injected.body }, clientRequestId),
  };
}

/** Two keys made alike, one for each way, so limits and counters start equal. */
async function twin(body: Record<string, unknown> = {}): Promise<[string, string]> {
  const a = await createKeyOverHttp(service, body);
  const b = await createKeyOverHttp(service, body);
  return [a.key, b.key];
}

describe("forward-auth fast lane answers as the Fastify route does", () => {
  it("a valid key: 200 with the caller's identity, the request id and the security headers", async () => {
    const { fast, route } = await bothWays({ "x-keyward-scopes": "read" }, await twin({ owner: { type: "user", id: "same" } }));
    expect(fast.status).toBe(200);
    expect(fast.headers["x-keyward-owner"]).toBe("user:same");
    expect(fast.headers["x-content-type-options"]).toBe("nosniff");
    // Key ids differ between the twins; everything else is the same.
    expect({ ...fast.headers, "x-keyward-key-id": "" }).toEqual({ ...route.headers, "x-keyward-key-id": "" });
    expect(fast.body).toBe(route.body);
  });

  it("the same key both ways, with a client request id", async () => {
    const { key } = await createKeyOverHttp(service);
    const { fast, route } = await bothWays({ "x-request-id": "trace-42.a", "x-keyward-scopes": "read" }, [key, key]);
    expect(fast.headers["x-request-id"]).toBe("trace-42.a");
    expect(fast).toEqual(route);
  });

  const denials: [string, () => Promise<[Record<string, string>, [string, string] | undefined]>, number][] = [
    ["no key", async () => [{}, undefined], 401],
    ["a malformed key", async () => [{ "x-api-key": "kw_test_nope" }, undefined], 401],
    ["an unknown key", async () => [{ "x-api-key": generateApiKey({ prefix: "kw", environment: "sandbox" }) }, undefined], 401],
    ["a missing scope", async () => [{ "x-keyward-scopes": "read admin" }, await twin()], 403],
    ["the wrong environment", async () => [{ "x-keyward-environment": "production" }, await twin()], 403],
    ["an invalid scope requirement", async () => [{ "x-keyward-scopes": "read, NOT A SCOPE!" }, await twin()], 400],
    ["an invalid environment requirement", async () => [{ "x-keyward-environment": "staging" }, await twin()], 400],
    ["an unreadable Basic header", async () => [{ authorization: "Basic !!!" }, undefined], 401],
    [
      "two different keys",
      async () => {
        const [a, b] = await twin();
        return [{ "x-api-key": a, authorization: `Bearer ${b}` }, undefined];
      },
      400,
    ],
  ];
  for (const [name, make, status] of denials) {
    it(`${name}: ${status}, with the code and problem in headers and body`, async () => {
      const [headers, keys] = await make();
      const { fast, route } = await bothWays(headers, keys);
      expect(fast.status).toBe(status);
      expect(fast).toEqual(route);
    });
  }

  it("a revoked key", async () => {
    const [a, b] = await Promise.all([createKeyOverHttp(service), createKeyOverHttp(service)]);
    for (const id of [a.id, b.id]) {
      const revoked = await service.call(`/v1/keys/${id}/revoke`, { method: "POST", headers: jsonHeaders(service.adminKey), body: "{}" });
      expect(revoked.status).toBe(200);
    }
    const { fast, route } = await bothWays({}, [a.key, b.key]);
    expect(fast.status).toBe(401);
    expect(fast.headers["x-keyward-code"]).toBe("REVOKED");
    expect(fast).toEqual(route);
  });

  it("rate limits: RateLimit headers while allowed, then 429 with Retry-After", async () => {
    const keys = await twin({ rate_limit: { requests: 2, per_seconds: 60 } });
    for (const expected of [200, 200, 429]) {
      const { fast, route } = await bothWays({}, keys);
      expect(fast.status).toBe(expected);
      expect(fast.headers["ratelimit-limit"]).toBe("2");
      expect({ ...fast.headers, "x-keyward-key-id": "" }).toEqual({ ...route.headers, "x-keyward-key-id": "" });
      expect(fast.body).toBe(route.body);
    }
  });

  it("a concurrency limit: a lease with its expiry, then 429 while it is held", async () => {
    const keys = await twin({ concurrency: 1 });
    const first = await bothWays({}, keys);
    expect(first.fast.status).toBe(200);
    expect(first.fast.headers["x-keyward-lease"]).toBe("(lease)");
    expect({ ...first.fast.headers, "x-keyward-key-id": "" }).toEqual({ ...first.route.headers, "x-keyward-key-id": "" });
    const second = await bothWays({}, keys);
    expect(second.fast.status).toBe(429);
    expect(second.fast).toEqual(second.route);
  });

  it("the client address follows the trust-proxy setting, as the route's does", async () => {
    // A CIDR allow-list that only the forwarded address satisfies.
    const keys = await twin({ allowed_cidrs: ["198.51.100.0/24"] });
    const forwarded = await bothWays({ "x-forwarded-for": "198.51.100.7" }, keys);
    expect(forwarded.fast.status).toBe(200);
    const direct = await bothWays({}, keys);
    expect(direct.fast.status).toBe(403);
    expect(direct.fast).toEqual(direct.route);
  });

  it("takes only plain GET /v1/authz: a query string or another method goes to the route", async () => {
    const [key] = await twin();
    const query = await rawRequest(service.url, { path: "/v1/authz?scopes=read", headers: { "x-api-key": key } });
    expect(query.status).toBe(200);
    const withScopeInQuery = await rawRequest(service.url, { path: "/v1/authz?scopes=admin", headers: { "x-api-key": key } });
    expect(withScopeInQuery.status).toBe(403);
    const post = await rawRequest(service.url, { method: "POST", path: "/v1/authz", headers: { "x-api-key": key } });
    expect(post.status).toBe(200);
  });
});
