import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeywardClient } from "../../src/client/index.js";
import type { Verifier } from "../../src/middleware/http-edge.js";
import { rawRequest } from "../helpers/raw-http.js";
import { type RunningApp, SLOW_MS, startExpressApp, startFastifyApp, startHonoApp, startNodeApp } from "./apps.js";
import { CARRIERS, carrierHeaders, createFixture, type Fixture, OUTCOME_CASES } from "./harness.js";

type Start = (verifier: Verifier) => Promise<RunningApp>;
const ADAPTERS: [string, Start][] = [
  ["fastify", startFastifyApp],
  ["express", startExpressApp],
  ["hono", startHonoApp],
  ["node:http", startNodeApp],
];

/**
 * One table for every adapter (like Unkey's runAuthTests): each carrier × each outcome over real
 * HTTP, plus duplicates, keys in URLs, optional mode and slot release.
 */
function runAdapterSuite(name: string, start: Start, verifierOf: (fixture: Fixture) => Verifier | Promise<Verifier>) {
  describe(name, () => {
    let fixture: Fixture;
    let app: RunningApp;
    beforeAll(async () => {
      fixture = await createFixture();
      app = await start(await verifierOf(fixture));
    });
    afterAll(async () => {
      await app.close();
      await fixture.close();
    });

    for (const carrier of CARRIERS) {
      it(`${carrier}: every outcome maps to its status, code and headers`, async () => {
        for (const [keyName, route, status, code] of OUTCOME_CASES) {
          const response = await rawRequest(app.url, { path: route, headers: carrierHeaders(carrier, fixture.keys[keyName] as string) });
          expect(response.status, `${keyName} on ${route}`).toBe(status);
          if (status === 200) {
            expect(JSON.parse(response.body)).toMatchObject({ owner: "alice" });
            expect(response.headers["ratelimit-limit"]).toBe("10");
            continue;
          }
          expect(response.headers["content-type"], keyName).toContain("application/problem+json");
          expect(JSON.parse(response.body).code, keyName).toBe(code);
          if (status === 401) expect(response.headers["www-authenticate"]).toMatch(/^ApiKey realm="keyward"/);
          if (code === "INSUFFICIENT_SCOPE")
            expect(response.headers["www-authenticate"]).toContain('error="insufficient_scope", scope="read"');
          if (status === 429) expect(Number(response.headers["retry-after"])).toBeGreaterThan(0);
          if (code === "RATE_LIMITED") expect(response.headers["ratelimit-remaining"]).toBe("0");
        }
      });
    }

    it("a key without limits, fresh in the cache, is decided in the request's tick: allowed, or denied by scope or environment", async () => {
      const headers = { "x-api-key": fixture.keys.plain as string };
      for (let round = 0; round < 3; round++) {
        const allowed = await rawRequest(app.url, { path: "/read", headers });
        expect(allowed.status).toBe(200);
        expect(JSON.parse(allowed.body)).toMatchObject({ owner: "alice" });
        expect(allowed.headers["ratelimit-limit"]).toBeUndefined();
        const production = await rawRequest(app.url, { path: "/production", headers });
        expect(production.status).toBe(403);
        expect(JSON.parse(production.body).code).toBe("ENVIRONMENT_MISMATCH");
      }
      // The handler's own failure after a same-tick allow is the app's error: the server goes on.
      const boom = await rawRequest(app.url, { path: "/boom", headers }).catch(() => null);
      if (boom) expect(boom.status).toBe(500);
      expect((await rawRequest(app.url, { path: "/read", headers })).status).toBe(200);
    });

    it("no key → 401 MISSING", async () => {
      const response = await rawRequest(app.url, { path: "/read" });
      expect(response.status).toBe(401);
      expect(JSON.parse(response.body).code).toBe("MISSING");
    });

    it("duplicate headers → 400 AMBIGUOUS_CREDENTIALS; a key in the URL → 400 KEY_IN_URL", async () => {
      const key = fixture.keys.valid as string;
      const duplicate = await rawRequest(app.url, { path: "/read", headers: { "x-api-key": [key, key] } });
      expect(duplicate.status).toBe(400);
      expect(JSON.parse(duplicate.body).code).toBe("AMBIGUOUS_CREDENTIALS");
      const inUrl = await rawRequest(app.url, { path: `/read?api_key=${key}` });
      expect(inUrl.status).toBe(400);
      expect(JSON.parse(inUrl.body).code).toBe("KEY_IN_URL");
    });

    it("optional mode: no key or a foreign token passes to the app's own auth; a bad key of ours is denied", async () => {
      const none = await rawRequest(app.url, { path: "/optional" });
      expect(none.status).toBe(200);
      expect(JSON.parse(none.body)).toEqual({ key: null, owner: null });
      const jwt = await rawRequest(app.url, { path: "/optional", headers: { authorization: "Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln" } });
      expect(jwt.status).toBe(200);
      const withKey = await rawRequest(app.url, { path: "/optional", headers: { "x-api-key": fixture.keys.valid as string } });
      expect(JSON.parse(withKey.body).owner).toBe("alice");
      const revoked = await rawRequest(app.url, { path: "/optional", headers: { "x-api-key": fixture.keys.revoked as string } });
      expect(revoked.status).toBe(401);
      const malformed = await rawRequest(app.url, { path: "/optional", headers: { "x-api-key": fixture.keys.badChecksum as string } });
      expect(malformed.status).toBe(401);
    });

    it("concurrency slots are released when responses finish, fail or are aborted", async () => {
      const headers = { "x-api-key": fixture.keys.valid as string };
      const before = fixture.limits.released;
      await Promise.all([rawRequest(app.url, { path: "/slow", headers }), rawRequest(app.url, { path: "/read", headers })]);
      await rawRequest(app.url, { path: "/boom", headers }).catch(() => undefined);
      const aborted = new AbortController();
      const pending = fetch(`${app.url}/slow`, { headers, signal: aborted.signal }).catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, SLOW_MS / 3));
      aborted.abort();
      await pending;
      await expect.poll(() => fixture.limits.inFlight, { timeout: 2_000 }).toBe(0);
      // Each of the four requests held a slot; a remote verifier frees its lease through the service.
      expect(fixture.limits.released - before).toBe(4);
    });
  });
}

for (const [name, start] of ADAPTERS) runAdapterSuite(name, start, (fixture) => fixture.keyward);

describe("remote verification through keyward/client", () => {
  // The remote client talks to a real service whose engine holds the fixture's keys.
  runAdapterSuite("fastify + KeywardClient", startFastifyApp, async (fixture) => {
    const { buildApp } = await import("../../src/service/app.js");
    const { loadConfig } = await import("../../src/service/config.js");
    const { createLogger } = await import("../../src/service/logger.js");
    const { ServiceMetrics } = await import("../../src/service/metrics.js");
    const remote = await buildApp({
      keyward: fixture.keyward,
      config: { ...loadConfig({}), port: 0 },
      logger: createLogger("silent"),
      metrics: new ServiceMetrics(),
    });
    await remote.listen({ port: 0, host: "127.0.0.1" });
    const port = (remote.server.address() as { port: number }).port;
    const closeFixture = fixture.close;
    fixture.close = async () => {
      await remote.close();
      await closeFixture();
    };
    return new KeywardClient({
      url: `http://127.0.0.1:${port}`,
      serviceKey: fixture.keys.verifier as string,
      cacheMaxAgeMs: 0,
      negativeCacheMaxAgeMs: 0,
    });
  });
});
