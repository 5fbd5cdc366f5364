import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { rawRequest } from "../helpers/raw-http.js";
import { countDigestLookups, createKeyOverHttp, jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

let service: TestService;
let storeLookups = 0;

beforeEach(async () => {
  storeLookups = 0;
  service = await startTestService({ wrapStore: (store) => countDigestLookups(store, () => storeLookups++) });
});
afterEach(async () => {
  await service.close();
});

const code = (body: string) => (JSON.parse(body) as { code: string }).code;

describe("carriers (SECURITY.md 1)", () => {
  it("every carrier, scheme in any case, gives the same principal", async () => {
    const created = await createKeyOverHttp(service);
    const basicUser = Buffer.from(`${created.key}:`).toString("base64");
    const basicPassword = Buffer.from(`:${created.key}`).toString("base64");
    const carriers: Record<string, string>[] = [
      { authorization: `ApiKey ${created.key}` },
      { authorization: `apikey ${created.key}` },
      { authorization: `Bearer ${created.key}` },
      { authorization: `BEARER   ${created.key}  ` },
      { "x-api-key": created.key },
      { "x-api-key": `  ${created.key} ` },
      { authorization: `Basic ${basicUser}` },
      { authorization: `basic ${basicPassword}` },
    ];
    for (const headers of carriers) {
      const response = await rawRequest(service.url, { path: "/v1/introspect", headers });
      expect(response.status, JSON.stringify(headers)).toBe(200);
      expect(JSON.parse(response.body).id).toBe(created.id);
    }
  });

  it("never case-folds the key", async () => {
    const created = await createKeyOverHttp(service);
    const flipped =
      created.key.slice(0, -10) +
      [...created.key.slice(-10)].map((c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase())).join("");
    const response = await rawRequest(service.url, { path: "/v1/introspect", headers: { "x-api-key": flipped } });
    expect(response.status).toBe(401);
  });
});

describe("malformed carriers (SECURITY.md 2)", () => {
  const cases: [string, Record<string, string>][] = [
    ["bare Bearer", { authorization: "Bearer" }],
    ["Bearer with two tokens", { authorization: "Bearer a b" }],
    ["Basic with bad base64", { authorization: "Basic !!!" }],
    ["Basic without colon", { authorization: `Basic ${Buffer.from("kw_test_abc").toString("base64")}` }],
    ["non-ASCII key", { "x-api-key": "kw_test_ünïcødé" }],
    ["4 KB key", { "x-api-key": `kw_test_${"a".repeat(4096)}` }],
    ["4 KB bearer", { authorization: `Bearer kw_test_${"a".repeat(4096)}` }],
    ["unknown scheme", { authorization: "Digest username=x" }],
  ];
  for (const [name, headers] of cases) {
    it(`${name} → 401 MALFORMED, never 5xx, no lookup`, async () => {
      const response = await rawRequest(service.url, {
        path: "/v1/introspect",
        headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, Buffer.from(v, "utf8").toString("latin1")])),
      });
      expect(response.status).toBe(401);
      expect(code(response.body)).toBe("MALFORMED");
      expect(storeLookups).toBe(0);
    });
  }
});

describe("duplicates and ambiguity (SECURITY.md 3)", () => {
  it("a repeated X-API-Key header is 400 AMBIGUOUS_CREDENTIALS", async () => {
    const created = await createKeyOverHttp(service);
    const response = await rawRequest(service.url, { path: "/v1/introspect", headers: { "x-api-key": [created.key, created.key] } });
    expect(response.status).toBe(400);
    expect(code(response.body)).toBe("AMBIGUOUS_CREDENTIALS");
  });

  it("a repeated Authorization header is 400, not silently the first", async () => {
    const created = await createKeyOverHttp(service);
    const response = await rawRequest(service.url, {
      path: "/v1/introspect",
      headers: { authorization: [`Bearer ${created.key}`, "Bearer kw_test_other"] },
    });
    expect(response.status).toBe(400);
    expect(code(response.body)).toBe("AMBIGUOUS_CREDENTIALS");
  });

  it("two different keys in two carriers is 400", async () => {
    const a = await createKeyOverHttp(service);
    const b = await createKeyOverHttp(service);
    const response = await rawRequest(service.url, {
      path: "/v1/introspect",
      headers: { authorization: `Bearer ${a.key}`, "x-api-key": b.key },
    });
    expect(response.status).toBe(400);
    expect(code(response.body)).toBe("AMBIGUOUS_CREDENTIALS");
  });

  it("the same key in two carriers is accepted", async () => {
    const a = await createKeyOverHttp(service);
    const response = await rawRequest(service.url, {
      path: "/v1/introspect",
      headers: { authorization: `ApiKey ${a.key}`, "x-api-key": a.key },
    });
    expect(response.status).toBe(200);
  });
});

describe("keys in URLs (SECURITY.md 4)", () => {
  for (const parameter of ["api_key", "apikey", "key", "access_token", "anything"]) {
    it(`?${parameter}=<key> → 400 KEY_IN_URL and the key is not logged`, async () => {
      const created = await createKeyOverHttp(service);
      const response = await rawRequest(service.url, { path: `/v1/introspect?${parameter}=${created.key}` });
      expect(response.status).toBe(400);
      expect(code(response.body)).toBe("KEY_IN_URL");
      expect(response.body).not.toContain(created.key);
      expect(service.logs.join("")).not.toContain(created.key);
    });
  }
});

describe("format checks before storage (SECURITY.md 5)", () => {
  it("a bad checksum and a foreign prefix are rejected with no lookup", async () => {
    const created = await createKeyOverHttp(service);
    const last = created.key.at(-1) === "A" ? "B" : "A";
    const badChecksum = created.key.slice(0, -1) + last;
    const foreign = created.key.replace(/^kw_/, "xy_");
    storeLookups = 0;
    for (const key of [badChecksum, foreign]) {
      const response = await rawRequest(service.url, { path: "/v1/introspect", headers: { "x-api-key": key } });
      expect(code(response.body)).toBe("MALFORMED");
    }
    expect(storeLookups).toBe(0);
  });
});

describe("management payloads (SECURITY.md 6)", () => {
  const valid = { owner: { type: "user", id: "alice" }, name: "ok", environment: "sandbox", scopes: ["read"] };
  const invalid: [string, string][] = [
    ["unknown field", JSON.stringify({ ...valid, admin: true })],
    ["wrong type", JSON.stringify({ ...valid, name: 123 })],
    ["huge number", JSON.stringify({ ...valid, concurrency: 1e308 })],
    ["NaN as a string", JSON.stringify({ ...valid, rate_limit: { requests: "NaN", per_seconds: 1 } })],
    [
      "__proto__ in metadata",
      `{"owner":{"type":"user","id":"alice"},"name":"ok","environment":"sandbox","scopes":["read"],"metadata":{"__proto__":{"admin":true}}}`,
    ],
    [
      "constructor.prototype",
      `{"owner":{"type":"user","id":"alice"},"name":"ok","environment":"sandbox","scopes":[],"metadata":{"constructor":{"prototype":{"x":1}}}}`,
    ],
    ["over-deep metadata", JSON.stringify({ ...valid, metadata: { a: { b: { c: { d: { e: { f: 1 } } } } } } })],
    ["over-large metadata", JSON.stringify({ ...valid, metadata: { blob: "x".repeat(5000) } })],
    ["too many scopes", JSON.stringify({ ...valid, scopes: Array.from({ length: 65 }, (_, i) => `s${i}`) })],
    ["bad scope grammar", JSON.stringify({ ...valid, scopes: ["READ ALL"] })],
    ["CR/LF in name", JSON.stringify({ ...valid, name: "evil\r\nINFO fake log line" })],
    ["HTML in name", JSON.stringify({ ...valid, name: "<script>alert(1)</script>" })],
    ["past expiry", JSON.stringify({ ...valid, expires_at: "2001-01-01T00:00:00Z" })],
    ["bad CIDR", JSON.stringify({ ...valid, allowed_cidrs: ["10.0.0.0/33"] })],
    ["bad owner type", JSON.stringify({ ...valid, owner: { type: "robot", id: "x" } })],
    ["malformed JSON", "{not json"],
  ];
  for (const [name, body] of invalid) {
    it(`${name} → 400 with field errors and nothing written`, async () => {
      const keysBefore = await service.store.countKeys();
      const auditBefore = (await service.store.listAuditEvents({}, 200, null)).events.length;
      const response = await rawRequest(service.url, { method: "POST", path: "/v1/keys", headers: jsonHeaders(service.adminKey), body });
      expect(response.status).toBe(400);
      expect(response.headers["content-type"]).toContain("application/problem+json");
      const problem = JSON.parse(response.body) as { code: string; errors?: unknown[] };
      expect(["VALIDATION_FAILED", "INVALID_JSON"]).toContain(problem.code);
      if (problem.code === "VALIDATION_FAILED") expect(problem.errors?.length).toBeGreaterThan(0);
      expect(await service.store.countKeys()).toBe(keysBefore);
      expect((await service.store.listAuditEvents({}, 200, null)).events.length).toBe(auditBefore);
    });
  }

  it("an oversized body → 413", async () => {
    const response = await rawRequest(service.url, {
      method: "POST",
      path: "/v1/keys",
      headers: jsonHeaders(service.adminKey),
      body: JSON.stringify({ ...valid, name: "x".repeat(70_000) }),
    });
    expect(response.status).toBe(413);
    expect(code(response.body)).toBe("PAYLOAD_TOO_LARGE");
  });

  it("a wrong content type → 415", async () => {
    const response = await rawRequest(service.url, {
      method: "POST",
      path: "/v1/keys",
      headers: { authorization: `Bearer ${service.adminKey}`, "content-type": "text/plain" },
      body: JSON.stringify(valid),
    });
    expect(response.status).toBe(415);
    expect(code(response.body)).toBe("UNSUPPORTED_MEDIA_TYPE");
  });

  it("invalid JSON quoting a key never echoes it", async () => {
    const created = await createKeyOverHttp(service);
    const response = await rawRequest(service.url, {
      method: "POST",
      path: "/v1/keys/verify",
      headers: jsonHeaders(service.adminKey),
      body: `${created.key}`,
    });
    expect(response.status).toBe(400);
    expect(response.body).not.toContain(created.key);
    expect(service.logs.join("")).not.toContain(created.key);
  });

  it("PATCH with an empty object or unknown field → 400, key unchanged", async () => {
    const created = await createKeyOverHttp(service);
    for (const body of ["{}", JSON.stringify({ digest: "x" })]) {
      const response = await rawRequest(service.url, {
        method: "PATCH",
        path: `/v1/keys/${created.id}`,
        headers: jsonHeaders(service.adminKey),
        body,
      });
      expect(response.status).toBe(400);
    }
    expect((await service.keyward.getKey(created.id)).name).toBe("test key");
  });
});
