import { afterEach, describe, expect, it } from "vitest";
import { generateApiKey } from "../../src/core/key-format.js";
import { loadConfig } from "../../src/service/config.js";
import { trustProxyWarnings } from "../../src/service/trust-proxy.js";
import { rawRequest } from "../helpers/raw-http.js";
import { createKeyOverHttp, jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

// SECURITY.md 8: X-Forwarded-For is believed only from configured proxies; settings that trust
// everyone are warned about at start-up.

let service: TestService | undefined;
afterEach(async () => {
  await service?.close();
  service = undefined;
});

async function start(env: Record<string, string> = {}): Promise<TestService> {
  service = await startTestService({ env });
  return service;
}

const CLIENT = "203.0.113.5";

/** Creates a key with `X-Forwarded-For: forwardedFor` and returns the address its audit event records. */
async function auditIpOfCreateForwardedFrom(svc: TestService, forwardedFor: string): Promise<string | null> {
  const response = await svc.call("/v1/keys", {
    method: "POST",
    headers: { ...jsonHeaders(svc.adminKey), "x-forwarded-for": forwardedFor },
    body: JSON.stringify({ owner: { type: "user", id: "alice" }, name: "k", environment: "sandbox", scopes: ["read"] }),
  });
  const { id } = response.json() as { id: string };
  const audit = await svc.call(`/v1/audit-events?key_id=${id}`, { headers: jsonHeaders(svc.adminKey) });
  const events = (audit.json() as { data: { action: string; ip: string | null }[] }).data;
  return events.find((e) => e.action === "key.created")?.ip ?? null;
}

const authz = (svc: TestService, key: string, forwardedFor?: string) =>
  rawRequest(svc.url, { path: "/v1/authz", headers: { "x-api-key": key, ...(forwardedFor ? { "x-forwarded-for": forwardedFor } : {}) } });

describe("KEYWARD_TRUST_PROXY settings", () => {
  it.each(["true", "*", "0.0.0.0/0", "::/0", "10.0.0.1, 0.0.0.0/0"])("%j trusts every peer: a start-up warning says so", (value) => {
    const warnings = trustProxyWarnings(loadConfig({ KEYWARD_TRUST_PROXY: value }).trustProxy);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/trusts every peer.*X-Forwarded-For.*List only your proxies' addresses/);
  });

  it("a very wide range is warned about; proxy addresses, CIDRs and named ranges are not", () => {
    expect(trustProxyWarnings(["1.0.0.0/4"])[0]).toMatch(/very wide range/);
    expect(trustProxyWarnings(["2000::/3"])[0]).toMatch(/very wide range/);
    expect(trustProxyWarnings(["0.0.0.0/1"])[0]).toMatch(/very wide range/);
    expect(trustProxyWarnings(["10.0.0.1", "10.0.0.0/8", "fd00::/8", "loopback", "uniquelocal"])).toEqual([]);
  });

  it.each(["yes", "1", "proxy.internal", "10.0.0.0/33"])("%j is refused at start with INVALID_CONFIGURATION", (value) => {
    expect(() => loadConfig({ KEYWARD_TRUST_PROXY: value })).toThrow(/KEYWARD_TRUST_PROXY/);
  });

  it("the service logs the warning at start-up", async () => {
    const svc = await start({ KEYWARD_TRUST_PROXY: "0.0.0.0/0" });
    expect(svc.logs.join("")).toContain("KEYWARD_TRUST_PROXY trusts every peer");
  });

  it("requests with X-Forwarded-For while nothing is trusted: one warning, once", async () => {
    const svc = await start();
    const { key } = await createKeyOverHttp(svc);
    await authz(svc, key, CLIENT);
    await authz(svc, key, CLIENT);
    const warnings = svc.logs.filter((line) => line.includes("requests carry X-Forwarded-For but KEYWARD_TRUST_PROXY is empty"));
    expect(warnings).toHaveLength(1);
  });
});

describe("X-Forwarded-For from an untrusted peer is ignored", () => {
  // Loopback (the test's own address) is not a trusted proxy here.
  const env = { KEYWARD_TRUST_PROXY: "10.9.9.9" };

  it("CIDR allow-lists see the socket address, not the forwarded one", async () => {
    const svc = await start(env);
    const forClient = await createKeyOverHttp(svc, { allowed_cidrs: ["203.0.113.0/24"] });
    const forLoopback = await createKeyOverHttp(svc, { allowed_cidrs: ["127.0.0.1"] });
    const spoofed = await authz(svc, forClient.key, CLIENT);
    expect([spoofed.status, JSON.parse(spoofed.body).code]).toEqual([403, "IP_NOT_ALLOWED"]);
    expect((await authz(svc, forLoopback.key, CLIENT)).status).toBe(200);
  });

  it("the audit log records the socket address", async () => {
    expect(await auditIpOfCreateForwardedFrom(await start(env), CLIENT)).toBe("127.0.0.1");
  });

  it("changing X-Forwarded-For does not dodge the failed-attempt throttle", async () => {
    const svc = await start({ ...env, KEYWARD_FAILED_ATTEMPTS_LIMIT: "3" });
    const codes: string[] = [];
    for (let i = 0; i < 5; i++) {
      const response = await authz(svc, generateApiKey({ environment: "sandbox" }), `198.51.100.${i}`);
      codes.push(JSON.parse(response.body).code);
    }
    expect(codes).toEqual(["NOT_FOUND", "NOT_FOUND", "NOT_FOUND", "TOO_MANY_FAILED_ATTEMPTS", "TOO_MANY_FAILED_ATTEMPTS"]);
  });
});

describe("X-Forwarded-For from a trusted proxy is used", () => {
  const env = { KEYWARD_TRUST_PROXY: "127.0.0.1" };

  it("CIDR allow-lists see the forwarded client address", async () => {
    const svc = await start(env);
    const forClient = await createKeyOverHttp(svc, { allowed_cidrs: ["203.0.113.0/24"] });
    expect((await authz(svc, forClient.key, CLIENT)).status).toBe(200);
    expect((await authz(svc, forClient.key, "198.51.100.1")).status).toBe(403);
  });

  it("the audit log records the forwarded client address", async () => {
    expect(await auditIpOfCreateForwardedFrom(await start(env), CLIENT)).toBe(CLIENT);
  });

  it("the failed-attempt throttle counts each forwarded client on its own, not the proxy", async () => {
    const svc = await start({ ...env, KEYWARD_FAILED_ATTEMPTS_LIMIT: "3" });
    const guess = (client: string) => authz(svc, generateApiKey({ environment: "sandbox" }), client);
    for (let i = 0; i < 3; i++) await guess("198.51.100.1");
    expect(JSON.parse((await guess("198.51.100.1")).body).code).toBe("TOO_MANY_FAILED_ATTEMPTS");
    expect(JSON.parse((await guess("198.51.100.2")).body).code).toBe("NOT_FOUND");
  });
});
