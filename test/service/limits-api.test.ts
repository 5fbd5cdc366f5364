import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/ports/clock.js";
import type { LimitsSnapshot } from "../../src/ports/limits.js";
import { createKeyOverHttp, jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

let service: TestService;
beforeEach(async () => {
  service = await startTestService({ env: { KEYWARD_LEASE_TTL_MS: "400" } });
});
afterEach(async () => {
  await service.close();
});

const authz = (key: string, scopes = "read") => service.call("/v1/authz", { headers: { "x-api-key": key, "x-keyward-scopes": scopes } });
/** What introspection answers about limits: every part present for the keys these tests create. */
interface Introspection {
  rate_limit: unknown;
  limits: { [Part in keyof LimitsSnapshot]-?: NonNullable<LimitsSnapshot[Part]> };
}
const introspect = async (key: string) => (await service.call("/v1/introspect", { headers: { "x-api-key": key } })).json() as Introspection;
const statuses = (responses: { status: number }[]) => responses.map((r) => r.status).sort();

describe("rate limits over HTTP", () => {
  it("10 simultaneous requests to a 5/s key: exactly 5 pass, 5 get 429 with Retry-After and RateLimit headers", async () => {
    // On a loaded machine ten "simultaneous" requests can spread over more than the 200 ms in
    // which a 5/s key earns another request; a pinned clock makes them one instant.
    await service.close();
    service = await startTestService({ clock: new ManualClock(Date.now()) });
    const { key } = await createKeyOverHttp(service, { rate_limit: { requests: 5, per_seconds: 1 } });
    const responses = await Promise.all(Array.from({ length: 10 }, () => authz(key)));
    expect(responses.filter((r) => r.status === 200)).toHaveLength(5);
    const denied = responses.filter((r) => r.status === 429);
    expect(denied).toHaveLength(5);
    for (const r of denied) {
      expect(r.headers.get("content-type")).toContain("application/problem+json");
      expect((r.json() as { code: string }).code).toBe("RATE_LIMITED");
      expect(Number(r.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect(r.headers.get("ratelimit-limit")).toBe("5");
      expect(r.headers.get("ratelimit-remaining")).toBe("0");
    }
    for (const r of responses.filter((r) => r.status === 200)) expect(r.headers.get("ratelimit-limit")).toBe("5");
  });

  it("a rate-limited request spends no quota", async () => {
    const { key } = await createKeyOverHttp(service, { rate_limit: { requests: 1, per_seconds: 60 }, quota: { remaining: 5 } });
    expect(statuses(await Promise.all([authz(key), authz(key), authz(key)]))).toEqual([200, 429, 429]);
    expect((await introspect(key)).limits.quota).toMatchObject({ limit: 5, used: 1, remaining: 4 });
  });
});

describe("quotas over HTTP", () => {
  it("20 simultaneous requests against 7 remaining uses: exactly 7 pass", async () => {
    const { key } = await createKeyOverHttp(service, { quota: { remaining: 7 } });
    const responses = await Promise.all(Array.from({ length: 20 }, () => authz(key)));
    expect(responses.filter((r) => r.status === 200)).toHaveLength(7);
    const denied = responses.filter((r) => r.status === 429);
    expect(denied.every((r) => (r.json() as { code: string }).code === "QUOTA_EXCEEDED" && r.headers.get("retry-after"))).toBe(true);
  });

  it("a request denied for any other reason spends nothing", async () => {
    const { key } = await createKeyOverHttp(service, { quota: { limit: 3, period: "day" } });
    for (let i = 0; i < 4; i++) expect((await authz(key, "write")).status).toBe(403);
    expect((await service.call("/v1/authz", { headers: { "x-api-key": key, "x-keyward-environment": "production" } })).status).toBe(403);
    const quota = (await introspect(key)).limits.quota;
    expect(quota).toMatchObject({ limit: 3, used: 0, remaining: 3 });
    expect(Date.parse(String(quota.resets_at)) - Date.now()).toBeLessThanOrEqual(86_400_000);
  });

  it("a daily quota answers Retry-After up to the next UTC midnight", async () => {
    const { key } = await createKeyOverHttp(service, { quota: { limit: 1, period: "day" } });
    expect((await authz(key)).status).toBe(200);
    const denied = await authz(key);
    expect(denied.status).toBe(429);
    const midnight = Math.ceil(Date.now() / 86_400_000) * 86_400_000;
    expect(Number(denied.headers.get("retry-after"))).toBeLessThanOrEqual(Math.ceil((midnight - Date.now()) / 1000) + 1);
  });

  it("rotation keeps the counters: the successor goes on where its predecessor stood", async () => {
    const created = await createKeyOverHttp(service, { quota: { remaining: 3 } });
    expect((await authz(created.key)).status).toBe(200);
    expect((await authz(created.key)).status).toBe(200);
    const rotated = await service.call(`/v1/keys/${created.id}/rotate`, {
      method: "POST",
      headers: jsonHeaders(service.adminKey),
      body: JSON.stringify({ grace_seconds: 60 }),
    });
    const successor = (rotated.json() as { key: string }).key;
    expect((await authz(successor)).status).toBe(200);
    expect((await authz(successor)).status).toBe(429);
    expect((await authz(created.key)).status).toBe(429);
  });

  it("PATCH changes the limits of a key, and they apply at once", async () => {
    const created = await createKeyOverHttp(service);
    expect((await introspect(created.key)).limits).toEqual({});
    const patched = await service.call(`/v1/keys/${created.id}`, {
      method: "PATCH",
      headers: jsonHeaders(service.adminKey),
      body: JSON.stringify({ quota: { remaining: 1 }, rate_limit: { requests: 10, per_seconds: 1 } }),
    });
    expect(patched.status).toBe(200);
    expect((await authz(created.key)).status).toBe(200);
    expect((await authz(created.key)).status).toBe(429);
  });
});

describe("concurrency through forward auth: leases", () => {
  it("a concurrency-1 key holds one lease; a second request is 429 until the lease is released", async () => {
    const { key } = await createKeyOverHttp(service, { concurrency: 1 });
    const first = await authz(key);
    expect(first.status).toBe(200);
    const lease = first.headers.get("x-keyward-lease") as string;
    expect(lease).toMatch(/^lease_[0-9A-Za-z]{20}$/);
    const second = await authz(key);
    expect(second.status).toBe(429);
    expect((second.json() as { code: string }).code).toBe("CONCURRENCY_LIMITED");
    expect((await introspect(key)).limits.concurrency).toEqual({ limit: 1, in_flight: 1, available: 0 });
    const release = () =>
      service.call("/v1/leases/release", { method: "POST", headers: jsonHeaders(key), body: JSON.stringify({ lease_id: lease }) });
    expect((await release()).status).toBe(204);
    expect((await release()).status).toBe(404);
    expect((await authz(key)).status).toBe(200);
  });

  it("a lease nobody releases expires after KEYWARD_LEASE_TTL_MS", async () => {
    const { key } = await createKeyOverHttp(service, { concurrency: 1 });
    expect((await authz(key)).status).toBe(200);
    expect((await authz(key)).status).toBe(429);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await authz(key)).status).toBe(200);
  });

  it("POST /v1/keys/verify hands out the lease; releasing another key's lease needs keys:verify", async () => {
    const limited = await createKeyOverHttp(service, { concurrency: 1 });
    const verifier = await createKeyOverHttp(service, { scopes: ["keys:verify"], owner: { type: "application", id: "gateway" } });
    const other = await createKeyOverHttp(service, { owner: { type: "user", id: "mallory" } });
    const verified = await service.call("/v1/keys/verify", {
      method: "POST",
      headers: jsonHeaders(verifier.key),
      body: JSON.stringify({ key: limited.key }),
    });
    const body = verified.json() as { valid: boolean; limited: boolean; lease: { id: string; expires_at: string } };
    expect(body).toMatchObject({ valid: true, limited: true });
    expect(Date.parse(body.lease.expires_at)).toBeGreaterThan(Date.now());
    const releaseAs = (caller: string) =>
      service.call("/v1/leases/release", {
        method: "POST",
        headers: jsonHeaders(caller),
        body: JSON.stringify({ lease_id: body.lease.id, key_id: limited.id }),
      });
    expect((await releaseAs(other.key)).status).toBe(403);
    expect((await releaseAs(verifier.key)).status).toBe(204);
  });
});

describe("introspection shows every limit and what is left of it", () => {
  it("rate, concurrency and quota", async () => {
    const { key } = await createKeyOverHttp(service, {
      rate_limit: { requests: 5, per_seconds: 1 },
      concurrency: 2,
      quota: { limit: 100, period: "month" },
    });
    await authz(key);
    const body = await introspect(key);
    expect(body.limits.rate_limit).toMatchObject({ limit: 5 });
    expect(body.limits.rate_limit.remaining).toBeGreaterThanOrEqual(4);
    expect(body.limits.quota).toMatchObject({ limit: 100, used: 1, remaining: 99 });
    expect(body.limits.concurrency.limit).toBe(2);
    expect(body.rate_limit).toEqual({ requests: 5, per_seconds: 1 });
  });
});
