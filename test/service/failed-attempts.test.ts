import { afterEach, describe, expect, it } from "vitest";
import { KeywardClient } from "../../src/client/index.js";
import { generateApiKey } from "../../src/core/key-format.js";
import { ManualClock } from "../../src/ports/clock.js";
import { type RawResponse, rawRequest } from "../helpers/raw-http.js";
import { countDigestLookups, createKeyOverHttp, startTestService, type TestService, type TestServiceOptions } from "../helpers/service.js";

// SECURITY.md 7 and 9: failed attempts are throttled per client address before lookup; other
// clients and known keys are unaffected; a flood costs O(1) per request.

const ATTACKER = "127.0.0.1";
const OTHER = "127.0.0.2";

let service: TestService | undefined;
let lookups = 0;

async function start(env: Record<string, string> = {}, options: TestServiceOptions = {}): Promise<TestService> {
  lookups = 0;
  service = await startTestService({
    env: { KEYWARD_FAILED_ATTEMPTS_LIMIT: "5", ...env },
    wrapStore: (store) => countDigestLookups(store, () => lookups++),
    ...options,
  });
  return service;
}

afterEach(async () => {
  await service?.close();
  service = undefined;
});

const randomKey = () => generateApiKey({ environment: "sandbox" });
const authz = (svc: TestService, headers: Record<string, string>, localAddress = ATTACKER): Promise<RawResponse> =>
  rawRequest(svc.url, { path: "/v1/authz", headers, localAddress });
const code = (response: RawResponse) => (JSON.parse(response.body) as { code: string }).code;
const basic = (key: string) => `Basic ${Buffer.from(`${key}:`).toString("base64")}`;

describe("failed-attempt throttle over HTTP", () => {
  it("a flood of random keys from one address is cut off with 429 and Retry-After, and stops reaching the store", async () => {
    const svc = await start();
    const answers: RawResponse[] = [];
    for (let i = 0; i < 40; i++) answers.push(await authz(svc, { "x-api-key": randomKey() }));
    expect(answers.slice(0, 5).map((r) => r.status)).toEqual([401, 401, 401, 401, 401]);
    expect(answers.slice(0, 5).map(code)).toEqual(Array(5).fill("NOT_FOUND"));
    const refused = answers.slice(5);
    expect(new Set(refused.map((r) => r.status))).toEqual(new Set([429]));
    expect(new Set(refused.map(code))).toEqual(new Set(["TOO_MANY_FAILED_ATTEMPTS"]));
    for (const r of refused) {
      expect(r.headers["content-type"]).toContain("application/problem+json");
      expect(Number(r.headers["retry-after"])).toBeGreaterThanOrEqual(1);
      expect(Number(r.headers["retry-after"])).toBeLessThanOrEqual(60);
    }
    expect(lookups).toBe(5);
    const metrics = await svc.call("/metrics", { headers: { authorization: `Bearer ${svc.adminKey}` } });
    expect(metrics.text).toMatch(/^keyward_failed_attempt_refusals_total 35$/m);
  });

  it("malformed keys count as failed attempts too", async () => {
    const svc = await start();
    const answers: RawResponse[] = [];
    for (let i = 0; i < 7; i++) answers.push(await authz(svc, { authorization: `Bearer kw_test_${"x".repeat(38)}` }));
    expect(answers.map(code)).toEqual([...Array(5).fill("MALFORMED"), "TOO_MANY_FAILED_ATTEMPTS", "TOO_MANY_FAILED_ATTEMPTS"]);
  });

  it("attempts through every carrier add to one count, and once blocked every carrier is refused", async () => {
    const svc = await start();
    const carriers = [
      (k: string) => ({ authorization: `ApiKey ${k}` }),
      (k: string) => ({ authorization: `Bearer ${k}` }),
      (k: string) => ({ "x-api-key": k }),
      (k: string) => ({ authorization: basic(k) }),
      (k: string) => ({ authorization: `apikey ${k}` }),
    ];
    for (const carrier of carriers) expect((await authz(svc, carrier(randomKey()))).status).toBe(401);
    for (const carrier of carriers) {
      const refused = await authz(svc, carrier(randomKey()));
      expect([refused.status, code(refused)]).toEqual([429, "TOO_MANY_FAILED_ATTEMPTS"]);
    }
  });

  it("another address is unaffected: its unknown keys are still looked up and its valid key works", async () => {
    const svc = await start();
    const { key } = await createKeyOverHttp(svc);
    for (let i = 0; i < 8; i++) await authz(svc, { "x-api-key": randomKey() });
    expect((await authz(svc, { "x-api-key": randomKey() })).status).toBe(429);
    const before = lookups;
    const other = await authz(svc, { "x-api-key": randomKey() }, OTHER);
    expect([other.status, code(other)]).toEqual([401, "NOT_FOUND"]);
    expect(lookups).toBe(before + 1);
    expect((await authz(svc, { "x-api-key": key, "x-keyward-scopes": "read" }, OTHER)).status).toBe(200);
  });

  it("a known key keeps working from a blocked address (no lockout an attacker can cause), even when its cache entry must be refreshed", async () => {
    // Maximum age 0: every use re-reads the store, so the key passes through the lookup path.
    const svc = await start({ KEYWARD_CACHE_MAX_AGE_MS: "0" });
    const { key } = await createKeyOverHttp(svc);
    expect((await authz(svc, { "x-api-key": key }, OTHER)).status).toBe(200);
    for (let i = 0; i < 8; i++) await authz(svc, { "x-api-key": randomKey() });
    expect((await authz(svc, { "x-api-key": randomKey() })).status).toBe(429);
    for (let i = 0; i < 3; i++) expect((await authz(svc, { authorization: `Bearer ${key}` })).status).toBe(200);
  });

  it("a key this instance has never found is not looked up from a blocked address: 429 until the window ends", async () => {
    const clock = new ManualClock(Date.now());
    const svc = await start({ KEYWARD_FAILED_ATTEMPTS_WINDOW_MS: "10000" }, { clock });
    const created = await svc.keyward.createKey(
      { owner: { type: "user", id: "bob" }, name: "never used", environment: "sandbox", scopes: ["read"] },
      { actor: { type: "cli", id: "test" } },
    );
    for (let i = 0; i < 5; i++) await authz(svc, { "x-api-key": randomKey() });
    const before = lookups;
    const refused = await authz(svc, { "x-api-key": created.key });
    expect([refused.status, code(refused), refused.headers["retry-after"]]).toEqual([429, "TOO_MANY_FAILED_ATTEMPTS", "10"]);
    expect(lookups).toBe(before);
    clock.advance(10_001);
    expect((await authz(svc, { "x-api-key": created.key })).status).toBe(200);
  });

  it("concurrent guesses cannot overrun the limit: store lookups stay at the limit", async () => {
    const svc = await start();
    const answers = await Promise.all(Array.from({ length: 30 }, () => authz(svc, { "x-api-key": randomKey() })));
    expect(answers.filter((r) => r.status === 401)).toHaveLength(5);
    expect(answers.filter((r) => r.status === 429)).toHaveLength(25);
    expect(lookups).toBe(5);
  });

  it("valid keys do not count: a client using its key many times is never throttled", async () => {
    const svc = await start();
    const { key } = await createKeyOverHttp(svc);
    for (let i = 0; i < 20; i++) expect((await authz(svc, { "x-api-key": key })).status).toBe(200);
    expect((await authz(svc, { "x-api-key": randomKey() })).status).toBe(401);
  });

  it("management routes are behind the same throttle", async () => {
    const svc = await start();
    for (let i = 0; i < 5; i++) await rawRequest(svc.url, { path: "/v1/keys", headers: { authorization: `Bearer ${randomKey()}` } });
    const refused = await rawRequest(svc.url, { path: "/v1/keys", headers: { authorization: `Bearer ${randomKey()}` } });
    expect([refused.status, code(refused)]).toEqual([429, "TOO_MANY_FAILED_ATTEMPTS"]);
  });

  it("POST /v1/keys/verify counts the end client's address it is given, not the calling service's", async () => {
    const svc = await start();
    const verify = (key: string, ip?: string) =>
      svc.call("/v1/keys/verify", {
        method: "POST",
        headers: { authorization: `Bearer ${svc.adminKey}`, "content-type": "application/json" },
        body: JSON.stringify({ key, ...(ip ? { ip } : {}) }),
      });
    for (let i = 0; i < 5; i++) expect((await verify(randomKey(), "198.51.100.7")).status).toBe(200);
    const refused = await verify(randomKey(), "198.51.100.7");
    expect([refused.status, (refused.json() as { code: string }).code]).toEqual([429, "TOO_MANY_FAILED_ATTEMPTS"]);
    expect(refused.headers.get("retry-after")).not.toBeNull();
    // Another end client of the same service is unaffected, and so is the service's own key.
    expect(((await verify(randomKey(), "198.51.100.8")).json() as { code: string }).code).toBe("NOT_FOUND");
  });

  it("keyward/client passes the service's 429 on as TOO_MANY_FAILED_ATTEMPTS, not as an outage", async () => {
    const svc = await start();
    const client = new KeywardClient({ url: svc.url, serviceKey: svc.adminKey, negativeCacheMaxAgeMs: 0 });
    for (let i = 0; i < 5; i++) expect((await client.verify(randomKey(), { ip: "198.51.100.9" })).code).toBe("NOT_FOUND");
    await expect(client.verify(randomKey(), { ip: "198.51.100.9" })).rejects.toMatchObject({
      code: "TOO_MANY_FAILED_ATTEMPTS",
      status: 429,
    });
  });

  it("KEYWARD_FAILED_ATTEMPTS_LIMIT=0 turns the throttle off", async () => {
    const svc = await start({ KEYWARD_FAILED_ATTEMPTS_LIMIT: "0" });
    for (let i = 0; i < 20; i++) expect(code(await authz(svc, { "x-api-key": randomKey() }))).toBe("NOT_FOUND");
    expect(lookups).toBe(20);
  });
});
