import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KeywardClient } from "../../src/client/index.js";
import { KeywardError } from "../../src/core/errors.js";
import { createKeyOverHttp, jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

let service: TestService;
let verifierKey: string;
beforeEach(async () => {
  service = await startTestService();
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
