import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KeywardClient } from "../../src/client/index.js";
import { KeywardError } from "../../src/core/errors.js";
import { createKeyOverHttp, jsonHeaders, startTestService, type TestService } from "../helpers/service.js";
import { startExpressApp, startFastifyApp, startHonoApp, startNodeApp } from "../middleware/apps.js";

// The service declares a legacy format (docs/migrating.md): its imported keys verify through the client too.
const LEGACY_FORMATS = JSON.stringify([{ name: "acme", prefix: "acme_", digest: "sha256_hex" }]);
let service: TestService;
let verifierKey: string;
beforeEach(async () => {
  service = await startTestService({ env: { KEYWARD_LEGACY_FORMATS: LEGACY_FORMATS } });
  verifierKey = (await createKeyOverHttp(service, { scopes: ["keys:verify"], owner: { type: "application", id: "gw" } })).key;
});
afterEach(async () => {
  await service.close();
});

/** Counts verifications in the service (its metric): each remote call verifies the caller's key and the target, so two. */
const verifyCalls = async () => {
  const text = (await service.call("/metrics")).text;
  return [...text.matchAll(/^keyward_verifications_total\{outcome="[A-Z_]+"\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
};

describe("service up", () => {
  it("verifies remotely, caches, and re-checks scopes and environment locally on a hit", async () => {
    const target = await createKeyOverHttp(service, { scopes: ["read"] });
    const client = new KeywardClient({ url: service.url, serviceKey: verifierKey });
    expect(await client.verify(target.key, { scopes: ["read"] })).toMatchObject({ valid: true, code: "VALID", key: { id: target.id } });
    const calls = await verifyCalls();
    expect(await client.verify(target.key, { scopes: ["read"] })).toMatchObject({ valid: true });
    expect(await client.verify(target.key, { scopes: ["write"] })).toMatchObject({
      valid: false,
      code: "INSUFFICIENT_SCOPE",
      missingScopes: ["write"],
    });
    expect(await client.verify(target.key, { environment: "production" })).toMatchObject({ valid: false, code: "ENVIRONMENT_MISMATCH" });
    // /metrics itself is not a verification; three cached answers made no call.
    expect(await verifyCalls()).toBe(calls);
  });

  it("refuses malformed keys without a call, and remembers unknown ones briefly", async () => {
    const client = new KeywardClient({ url: service.url, serviceKey: verifierKey });
    const before = await verifyCalls();
    expect(await client.verify("kw_test_nope")).toEqual({ valid: false, code: "MALFORMED" });
    expect(await verifyCalls()).toBe(before);
    const target = await createKeyOverHttp(service);
    await service.call(`/v1/keys/${target.id}/revoke`, { method: "POST", headers: jsonHeaders(service.adminKey), body: "{}" });
    const atRevoke = await verifyCalls();
    expect((await client.verify(target.key)).code).toBe("REVOKED");
    expect((await client.verify(target.key)).code).toBe("REVOKED");
    expect(await verifyCalls()).toBe(atRevoke + 2);
  });

  it("sends a legacy key on to the service, which verifies it; garbage is still MALFORMED", async () => {
    const legacy = `acme_${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
    service.plant(legacy);
    const imported = await service.call("/v1/keys/import", {
      method: "POST",
      headers: { authorization: `Bearer ${service.adminKey}`, "content-type": "application/x-ndjson" },
      body: JSON.stringify({ owner: "user:carol", key: legacy, scopes: ["read"] }),
    });
    expect(imported.json()).toMatchObject({ created: 1 });
    const client = new KeywardClient({ url: service.url, serviceKey: verifierKey });
    expect(await client.verify(legacy, { scopes: ["read"] })).toMatchObject({
      valid: true,
      code: "VALID",
      key: { owner: { id: "carol" } },
    });
    expect(await client.verify(legacy, { scopes: ["write"] })).toMatchObject({ valid: false, code: "INSUFFICIENT_SCOPE" });
    // A plausible string of no declared format: the service decides, MALFORMED.
    const before = await verifyCalls();
    expect(await client.verify("garbage-token")).toEqual({ valid: false, code: "MALFORMED" });
    expect(await verifyCalls()).toBe(before + 2);
    // MALFORMED whatever the service declares: refused locally, without a call.
    const local = await verifyCalls();
    for (const garbage of ["has space", "tab\there", "ctl\u0001", "é-not-ascii", "x".repeat(257), "kw_live_typo"])
      expect(await client.verify(garbage), JSON.stringify(garbage)).toEqual({ valid: false, code: "MALFORMED" });
    expect(await verifyCalls()).toBe(local);
  });

  it("reads a legacy Bearer token as a key in the adapters when given the formats; a JWT stays foreign", async () => {
    const legacy = `acme_${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
    service.plant(legacy);
    await service.call("/v1/keys/import", {
      method: "POST",
      headers: { authorization: `Bearer ${service.adminKey}`, "content-type": "application/x-ndjson" },
      body: JSON.stringify({ owner: "user:carol", key: legacy, scopes: ["read"] }),
    });
    const client = new KeywardClient({ url: service.url, serviceKey: verifierKey, legacyFormats: JSON.parse(LEGACY_FORMATS) });
    const app = await startHonoApp(client);
    try {
      const allowed = await fetch(`${app.url}/read`, { headers: { authorization: `Bearer ${legacy}` } });
      expect(allowed.status).toBe(200);
      const jwt = await fetch(`${app.url}/optional`, { headers: { authorization: "Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln" } });
      expect(jwt.status).toBe(200);
      expect(await jwt.json()).toEqual({ key: null, owner: null });
    } finally {
      await app.close();
    }
  });

  it("single-flights concurrent misses for the same key", async () => {
    const target = await createKeyOverHttp(service);
    const client = new KeywardClient({ url: service.url, serviceKey: verifierKey });
    const before = await verifyCalls();
    const results = await Promise.all(Array.from({ length: 20 }, () => client.verify(target.key)));
    expect(results.every((r) => r.valid)).toBe(true);
    expect(await verifyCalls()).toBe(before + 2);
  });
});

describe("service slow or down", () => {
  let slow: Server;
  let slowUrl: string;
  beforeEach(async () => {
    // Accepts the request and never answers.
    slow = createServer(() => {});
    await new Promise<void>((resolve) => slow.listen(0, "127.0.0.1", resolve));
    slowUrl = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
  });
  afterEach(async () => {
    slow.closeAllConnections();
    await new Promise((resolve) => slow.close(resolve));
  });

  it("a slow service times out and is denied as unavailable (503), never as an invalid key", async () => {
    const target = await createKeyOverHttp(service);
    const client = new KeywardClient({ url: slowUrl, serviceKey: verifierKey, timeoutMs: 100 });
    const error = await client.verify(target.key).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KeywardError);
    expect((error as KeywardError).code).toBe("STORE_UNAVAILABLE");
  });

  it("a service that is down is denied by default; with `stale`, recently verified keys keep working", async () => {
    const target = await createKeyOverHttp(service);
    const strict = new KeywardClient({ url: service.url, serviceKey: verifierKey, cacheMaxAgeMs: 0 });
    const lenient = new KeywardClient({ url: service.url, serviceKey: verifierKey, cacheMaxAgeMs: 0, whenUnreachable: "stale" });
    expect((await strict.verify(target.key)).valid).toBe(true);
    expect((await lenient.verify(target.key)).valid).toBe(true);
    await service.app.close();
    await expect(strict.verify(target.key)).rejects.toMatchObject({ code: "STORE_UNAVAILABLE" });
    expect((await lenient.verify(target.key)).valid).toBe(true);
    const { generateApiKey } = await import("../../src/core/key-format.js");
    await expect(lenient.verify(generateApiKey({ environment: "sandbox" }))).rejects.toMatchObject({ code: "STORE_UNAVAILABLE" });
  });
});

// docs/middleware.md, `keyward/client`: a client the service refuses (wrong key, a key without
// keys:verify, a URL that is not Keyward) is a configuration error, answered 500
// CLIENT_MISCONFIGURED at the edge and logged once; only network failures and 5xx are an outage.
describe("a misconfigured client", () => {
  const logged = () => {
    const lines: string[] = [];
    return { lines, logger: { error: (message: string) => void lines.push(message) } };
  };

  it("with a wrong service key: CLIENT_MISCONFIGURED (500), logged once, never the key", async () => {
    const { generateApiKey } = await import("../../src/core/key-format.js");
    const target = await createKeyOverHttp(service);
    const wrongKey = generateApiKey({ environment: "production" });
    const log = logged();
    const client = new KeywardClient({ url: service.url, serviceKey: wrongKey, logger: log.logger });
    for (let i = 0; i < 3; i++) {
      const error = await client.verify(target.key).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(KeywardError);
      expect(error).toMatchObject({ code: "CLIENT_MISCONFIGURED", status: 500 });
    }
    expect(log.lines).toHaveLength(1);
    expect(log.lines[0]).toContain("refused this client's service key");
    expect(log.lines[0]).toContain("401 NOT_FOUND");
    expect(log.lines[0]).not.toContain(wrongKey);
    expect(log.lines[0]).not.toContain(target.key);
  });

  it("with a key lacking keys:verify: CLIENT_MISCONFIGURED, logged once; fixed, it verifies again", async () => {
    const target = await createKeyOverHttp(service);
    const reader = await createKeyOverHttp(service, { scopes: ["read"], owner: { type: "application", id: "gw" } });
    const log = logged();
    const client = new KeywardClient({ url: service.url, serviceKey: reader.key, logger: log.logger });
    await expect(client.verify(target.key)).rejects.toMatchObject({ code: "CLIENT_MISCONFIGURED" });
    await expect(client.verify(target.key)).rejects.toMatchObject({ code: "CLIENT_MISCONFIGURED" });
    expect(log.lines).toHaveLength(1);
    expect(log.lines[0]).toContain("it needs the keys:verify scope");
    expect(log.lines[0]).toContain("403 INSUFFICIENT_SCOPE");
    const fixed = await service.call(`/v1/keys/${reader.id}`, {
      method: "PATCH",
      headers: jsonHeaders(service.adminKey),
      body: JSON.stringify({ scopes: ["read", "keys:verify"] }),
    });
    expect(fixed.status).toBe(200);
    expect(await client.verify(target.key)).toMatchObject({ valid: true });
    expect(log.lines).toHaveLength(1);
  });

  it("stays a configuration error once the service throttles the app's address for the refused key", async () => {
    const { generateApiKey } = await import("../../src/core/key-format.js");
    const strict = await startTestService({ env: { KEYWARD_FAILED_ATTEMPTS_LIMIT: "2" } });
    try {
      const target = await createKeyOverHttp(strict);
      const log = logged();
      const client = new KeywardClient({ url: strict.url, serviceKey: generateApiKey({ environment: "production" }), logger: log.logger });
      const codes: string[] = [];
      for (let i = 0; i < 5; i++) codes.push(((await client.verify(target.key).catch((e: unknown) => e)) as KeywardError).code);
      expect(codes).toEqual(Array(5).fill("CLIENT_MISCONFIGURED"));
      expect(log.lines).toHaveLength(1);
    } finally {
      await strict.close();
    }
  });

  describe("against other servers", () => {
    let other: Server;
    let otherUrl: string;
    let status: number;
    beforeEach(async () => {
      other = createServer((_req, res) => {
        res.statusCode = status;
        res.end("not keyward");
      });
      await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
      otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    });
    afterEach(async () => {
      other.closeAllConnections();
      await new Promise((resolve) => other.close(resolve));
    });

    it("a URL that is not a Keyward service (404) is a configuration error; a 5xx is unavailable", async () => {
      const target = await createKeyOverHttp(service);
      const log = logged();
      const client = new KeywardClient({ url: otherUrl, serviceKey: verifierKey, logger: log.logger });
      status = 404;
      await expect(client.verify(target.key)).rejects.toMatchObject({ code: "CLIENT_MISCONFIGURED" });
      expect(log.lines[0]).toContain("check the client's url");
      status = 502;
      await expect(client.verify(target.key)).rejects.toMatchObject({ code: "STORE_UNAVAILABLE" });
      expect(log.lines).toHaveLength(1);
    });
  });

  it.each([
    ["Fastify", startFastifyApp],
    ["Express", startExpressApp],
    ["Hono", startHonoApp],
    ["node:http", startNodeApp],
  ])("%s answers 500 CLIENT_MISCONFIGURED, not 503, to a valid key", async (_name, startApp) => {
    const target = await createKeyOverHttp(service, { scopes: ["read"] });
    const reader = await createKeyOverHttp(service, { scopes: ["read"], owner: { type: "application", id: "gw" } });
    const log = logged();
    const app = await startApp(new KeywardClient({ url: service.url, serviceKey: reader.key, logger: log.logger }));
    try {
      const response = await fetch(`${app.url}/read`, { headers: { "x-api-key": target.key } });
      expect(response.status).toBe(500);
      expect(response.headers.get("retry-after")).toBeNull();
      expect(await response.json()).toMatchObject({ code: "CLIENT_MISCONFIGURED", status: 500, title: "Keyward client misconfigured" });
      expect(log.lines).toHaveLength(1);
    } finally {
      await app.close();
    }
  });
});
