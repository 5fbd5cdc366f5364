import { afterEach, beforeEach, expect, it } from "vitest";
import { findLeaks, readDatabaseBytes } from "../helpers/canary.js";
import { rawRequest } from "../helpers/raw-http.js";
import { createKeyOverHttp, isKeyIssuingExchange, jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

let service: TestService;
beforeEach(async () => {
  service = await startTestService();
});
afterEach(async () => {
  await service.close();
});

/**
 * SECURITY.md 11: plant known keys, drive every route with them (valid and invalid uses, error
 * paths, keys in URLs and bodies), then search every response, log line, metric and the
 * database files for them. The only hits allowed are the responses that created them.
 */
it("no plaintext key appears anywhere but the response that created it", async () => {
  const planted = await Promise.all([
    createKeyOverHttp(service, { scopes: ["read"], name: "canary one" }),
    createKeyOverHttp(service, { scopes: ["keys:verify"], owner: { type: "application", id: "gw" }, name: "canary two" }),
    createKeyOverHttp(service, { environment: "production", allowed_cidrs: ["10.0.0.0/8"], name: "canary three" }),
  ]);
  const [one, two, three] = planted as [(typeof planted)[0], (typeof planted)[0], (typeof planted)[0]];
  const h = { authorization: `ApiKey ${one.key}` };
  await service.call("/v1/introspect", { headers: h });
  await service.call("/v1/introspect", { headers: { authorization: `Basic ${Buffer.from(`${one.key}:`).toString("base64")}` } });
  await service.call("/v1/authz?scopes=write", { headers: h });
  await service.call("/v1/authz", { headers: { "x-api-key": three.key } });
  await service.call(`/v1/introspect?api_key=${one.key}`);
  await service.call(`/v1/authz?token=${encodeURIComponent(one.key)}`);
  await service.call("/v1/keys", { headers: h });
  await service.call(`/v1/keys/${one.key}`, { headers: jsonHeaders(service.adminKey) });
  await service.call("/v1/keys/verify", {
    method: "POST",
    headers: jsonHeaders(two.key),
    body: JSON.stringify({ key: one.key, scopes: ["read"] }),
  });
  await service.call("/v1/keys/verify", { method: "POST", headers: jsonHeaders(two.key), body: JSON.stringify({ key: `${one.key}x` }) });
  await service.call("/v1/keys/verify", { method: "POST", headers: jsonHeaders(two.key), body: one.key });
  await service.call("/v1/keys", { method: "POST", headers: jsonHeaders(service.adminKey), body: JSON.stringify({ name: one.key }) });
  await service.call(`/v1/keys/${one.id}`, {
    method: "PATCH",
    headers: jsonHeaders(service.adminKey),
    body: JSON.stringify({ metadata: { note: "rotating" } }),
  });
  await service.call(`/v1/keys/${one.id}/rotate`, {
    method: "POST",
    headers: jsonHeaders(service.adminKey),
    body: JSON.stringify({ grace_seconds: 60 }),
  });
  await service.call(`/v1/keys/${three.id}/revoke`, {
    method: "POST",
    headers: jsonHeaders(service.adminKey),
    body: JSON.stringify({ reason: "canary" }),
  });
  await service.call("/v1/introspect", { headers: { "x-api-key": three.key } });
  await service.call("/v1/audit-events", { headers: jsonHeaders(service.adminKey) });
  await service.call("/v1/keys?limit=200", { headers: jsonHeaders(service.adminKey) });
  await service.call("/metrics");
  await rawRequest(service.url, { path: "/v1/introspect", headers: { "x-api-key": [one.key, two.key] } });

  const issued = service.exchanges.filter(isKeyIssuingExchange).map((e) => (JSON.parse(e.body) as { key: string }).key);
  const all = [service.adminKey, ...planted.map((p) => p.key), ...issued];
  for (const exchange of service.exchanges.filter((e) => !isKeyIssuingExchange(e))) {
    expect(
      findLeaks(`${JSON.stringify(exchange.headers)}${exchange.body}`, all),
      `${exchange.method} ${exchange.url.split("?")[0]}`,
    ).toEqual([]);
  }
  expect(service.logs.length).toBeGreaterThan(0);
  expect(findLeaks(service.logs.join(""), all)).toEqual([]);
  expect(findLeaks(readDatabaseBytes(service.dbPath), all)).toEqual([]);
  // The digests are not exposed either: no list, get or audit view returns one.
  const digests = (service.store.db.prepare("SELECT digest FROM keys").all() as { digest: string }[]).map((r) => r.digest);
  for (const exchange of service.exchanges) for (const digest of digests) expect(exchange.body).not.toContain(digest);
});
