import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKeyOverHttp, jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

const FORMATS = JSON.stringify([
  { name: "acme", prefix: "acme_", digest: "sha256_hex" },
  { name: "gone", prefix: "gone_", digest: "sha256_hex", sunset: "2020-01-01T00:00:00Z" },
]);

let serial = 0;
const legacyKey = (prefix: string) =>
  `${prefix}${createHash("sha256").update(`http ${serial++} ${Math.random()}`).digest("hex").slice(0, 40)}`;
const sha256Hex = (key: string) => createHash("sha256").update(key).digest("hex");

let service: TestService;
beforeAll(async () => {
  service = await startTestService({ env: { KEYWARD_LEGACY_FORMATS: FORMATS } });
});
afterAll(async () => {
  await service.close();
});

const importOver = (key: string, body: string, query = "", type = "application/x-ndjson") =>
  service.call(`/v1/keys/import${query}`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": type }, body });

describe("POST /v1/keys/import", () => {
  it("imports JSON lines for an admin key: the keys verify, are marked legacy, and one audit event records it", async () => {
    const [plain, hashed] = [legacyKey("acme_"), legacyKey("acme_")];
    service.plant(plain);
    service.plant(hashed);
    const body = [
      JSON.stringify({ external_id: "cust-1", owner: "user:carol", key: plain, scopes: ["read"] }),
      JSON.stringify({
        external_id: "cust-2",
        owner: "application:billing",
        digest: sha256Hex(hashed),
        digest_variant: "sha256_hex",
        format: "acme",
      }),
      JSON.stringify({ external_id: "cust-3", owner: "nobody", key: legacyKey("acme_") }),
    ].join("\n");
    const response = await importOver(service.adminKey, body);
    expect(response.status).toBe(200);
    const report = response.json() as Record<string, unknown>;
    expect(report).toMatchObject({
      dry_run: false,
      completed: true,
      records: 3,
      created: 2,
      unchanged: 0,
      failed: 1,
      created_by_format: { "legacy:acme": 2 },
      errors: [{ line: 3, reason: "owner must be user:<id>, application:<id> or organization:<id>" }],
    });
    expect(response.text).not.toContain(plain);

    const introspected = await service.call("/v1/introspect", { headers: { "x-api-key": plain } });
    expect(introspected.status).toBe(200);
    expect(introspected.json()).toMatchObject({ format: "legacy:acme", external_id: "cust-1", owner: { type: "user", id: "carol" } });
    const second = await service.call("/v1/introspect", { headers: { "x-api-key": hashed } });
    expect(second.status).toBe(200);
    const id = (second.json() as { id: string }).id;
    const shown = await service.call(`/v1/keys/${id}`, { headers: jsonHeaders(service.adminKey) });
    expect(shown.json()).toMatchObject({ format: "legacy:acme", external_id: "cust-2", ref: "acme_…" });

    const audit = await service.call("/v1/audit-events?action=keys.imported", { headers: jsonHeaders(service.adminKey) });
    const events = (audit.json() as { data: Record<string, unknown>[] }).data;
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ id: report.audit_event_id, details: { source: "api", created: 2, failed: 1 } });

    // A second run of the same body changes nothing, and says so.
    const again = await importOver(service.adminKey, body);
    expect(again.json()).toMatchObject({ created: 0, unchanged: 2, failed: 1 });

    // Legacy use is counted apart.
    const metrics = await service.call("/metrics");
    expect(metrics.text).toMatch(/keyward_legacy_verifications_total\{format="acme",outcome="VALID"\} [1-9]/);
  });

  it("takes CSV, and a dry run writes nothing", async () => {
    const key = legacyKey("acme_");
    service.plant(key);
    const csv = `owner,name,scopes,key\nuser:dave,"Dave, Inc.",read write,${key}\n`;
    const dry = await importOver(service.adminKey, csv, "?dry_run=true", "text/csv");
    expect(dry.status).toBe(200);
    expect(dry.json()).toMatchObject({ dry_run: true, created: 1, audit_event_id: null });
    expect((await service.call("/v1/introspect", { headers: { "x-api-key": key } })).status).toBe(401);
    const real = await importOver(service.adminKey, csv, "", "text/csv; charset=utf-8");
    expect(real.json()).toMatchObject({ dry_run: false, created: 1 });
    const introspected = await service.call("/v1/introspect", { headers: { "x-api-key": key } });
    expect(introspected.json()).toMatchObject({ name: "Dave, Inc.", scopes: ["read", "write"] });
  });

  it("is for admin keys only: a keys:write delegate key gets 403, a keys:read key 403, no key 401", async () => {
    const body = JSON.stringify({ owner: "user:mallory", key: legacyKey("acme_"), scopes: ["admin"] });
    const delegate = await createKeyOverHttp(service, { scopes: ["keys:write", "read"], environment: "production" });
    const refused = await importOver(delegate.key, body);
    expect(refused.status).toBe(403);
    expect(refused.json()).toMatchObject({ code: "FORBIDDEN", detail: expect.stringMatching(/only an admin key or the CLI may import/) });
    const reader = await createKeyOverHttp(service, { scopes: ["keys:read"] });
    expect((await importOver(reader.key, body)).status).toBe(403);
    const anonymous = await service.call("/v1/keys/import", { method: "POST", headers: { "content-type": "application/x-ndjson" }, body });
    expect(anonymous.status).toBe(401);
    const owned = await service.call("/v1/keys?owner_id=mallory", { headers: jsonHeaders(service.adminKey) });
    expect((owned.json() as { data: unknown[] }).data).toEqual([]);
  });

  it("refuses other body types with 415", async () => {
    const response = await importOver(service.adminKey, "{}", "", "application/json");
    expect(response.status).toBe(415);
    expect(response.json()).toMatchObject({ code: "UNSUPPORTED_MEDIA_TYPE" });
  });

  it("takes a legacy key as Authorization: Bearer (API and forward auth); a JWT-looking Bearer is still MALFORMED", async () => {
    const key = legacyKey("acme_");
    service.plant(key);
    expect((await importOver(service.adminKey, JSON.stringify({ owner: "user:frank", key, scopes: ["read"] }))).json()).toMatchObject({
      created: 1,
    });
    const introspected = await service.call("/v1/introspect", { headers: { authorization: `Bearer ${key}` } });
    expect(introspected.status).toBe(200);
    expect(introspected.json()).toMatchObject({ format: "legacy:acme", owner: { type: "user", id: "frank" } });
    const authz = await service.call("/v1/authz?scopes=read", { headers: { authorization: `Bearer ${key}` } });
    expect(authz.status).toBe(200);
    const unknown = await service.call("/v1/introspect", { headers: { authorization: `Bearer ${legacyKey("acme_")}` } });
    expect(unknown.json()).toMatchObject({ code: "NOT_FOUND" });
    for (const token of ["eyJhbGciOiJIUzI1NiJ9.e30.c2ln", `eyJhbGciOiJSUzI1NiJ9.${"e".repeat(300)}.${"s".repeat(86)}`]) {
      const foreign = await service.call("/v1/introspect", { headers: { authorization: `Bearer ${token}` } });
      expect(foreign.status).toBe(401);
      expect(foreign.json()).toMatchObject({ code: "MALFORMED" });
    }
  });

  it("answers LEGACY_KEY_RETIRED (401) for a key of a format past its sunset", async () => {
    const key = legacyKey("gone_");
    service.plant(key);
    await importOver(service.adminKey, JSON.stringify({ owner: "user:erin", key }));
    const response = await service.call("/v1/introspect", { headers: { "x-api-key": key } });
    expect(response.status).toBe(401);
    expect(response.json()).toMatchObject({ code: "LEGACY_KEY_RETIRED" });
  });
});
