import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createKeyOverHttp, jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

let service: TestService;
beforeEach(async () => {
  service = await startTestService();
});
afterEach(async () => {
  await service.close();
});

const post = (path: string, key: string, body: unknown) =>
  service.call(path, { method: "POST", headers: jsonHeaders(key), body: JSON.stringify(body) });

describe("POST /v1/keys", () => {
  it("returns the plaintext once, with no-store, and stores only a digest", async () => {
    const response = await post("/v1/keys", service.adminKey, {
      owner: { type: "application", id: "billing" },
      name: "Billing worker",
      environment: "production",
      scopes: ["read", "write"],
      metadata: { team: "payments" },
    });
    expect(response.status).toBe(201);
    expect(response.headers.get("cache-control")).toBe("no-store");
    const body = response.json() as Record<string, unknown>;
    expect(body.key).toMatch(/^kw_live_[0-9A-Za-z]{38}$/);
    expect(body.id).toMatch(/^key_[0-9A-Za-z]{16,}$/);
    expect(body.ref).toBe(`kw_live_…${String(body.key).slice(-4)}`);
    expect(body).not.toHaveProperty("digest");
    const stored = service.store.db.prepare("SELECT * FROM keys WHERE id = ?").get(body.id) as Record<string, unknown>;
    expect(JSON.stringify(stored)).not.toContain(String(body.key));
  });

  it("refuses callers without keys:write", async () => {
    const reader = await createKeyOverHttp(service, { scopes: ["keys:read"], owner: { type: "application", id: "ops" } });
    const response = await post("/v1/keys", reader.key, {
      owner: { type: "user", id: "bob" },
      name: "x",
      environment: "sandbox",
      scopes: [],
    });
    expect(response.status).toBe(403);
    expect(response.headers.get("content-type")).toContain("application/problem+json");
    expect((response.json() as { code: string }).code).toBe("INSUFFICIENT_SCOPE");
  });

  it("refuses a key that would grant management rights its creator lacks", async () => {
    const writer = await createKeyOverHttp(service, { scopes: ["keys:write"], owner: { type: "application", id: "ops" } });
    const response = await post("/v1/keys", writer.key, {
      owner: { type: "user", id: "bob" },
      name: "x",
      environment: "sandbox",
      scopes: ["admin"],
    });
    expect(response.status).toBe(403);
    expect((response.json() as { code: string }).code).toBe("FORBIDDEN");
    expect(await service.store.countKeys()).toBe(2);
  });

  it("answers 401 with WWW-Authenticate when no key is sent", async () => {
    const response = await service.call("/v1/keys");
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toBe('ApiKey realm="keyward"');
    expect((response.json() as { code: string }).code).toBe("MISSING");
  });
});

describe("GET /v1/keys", () => {
  it("pages newest first with a cursor and filters by owner, environment and status", async () => {
    for (let i = 0; i < 5; i++) await createKeyOverHttp(service, { name: `k${i}`, owner: { type: "user", id: i % 2 ? "bob" : "carol" } });
    const prod = await createKeyOverHttp(service, { name: "prod", environment: "production", owner: { type: "user", id: "bob" } });
    const auth = { headers: { authorization: `ApiKey ${service.adminKey}` } };

    const first = (await service.call("/v1/keys?limit=3", auth)).json() as { data: { id: string }[]; next_cursor: string };
    expect(first.data).toHaveLength(3);
    const second = (await service.call(`/v1/keys?limit=3&cursor=${first.next_cursor}`, auth)).json() as {
      data: { id: string }[];
      next_cursor: string | null;
    };
    const third = (await service.call(`/v1/keys?limit=3&cursor=${second.next_cursor}`, auth)).json() as {
      data: { id: string }[];
      next_cursor: string | null;
    };
    const ids = [...first.data, ...second.data, ...third.data].map((k) => k.id);
    expect(new Set(ids).size).toBe(7);
    expect(third.next_cursor).toBeNull();

    const bobs = (await service.call("/v1/keys?owner_id=bob", auth)).json() as { data: unknown[] };
    expect(bobs.data).toHaveLength(3);
    const production = (await service.call("/v1/keys?environment=production&owner_id=bob", auth)).json() as { data: { id: string }[] };
    expect(production.data.map((k) => k.id)).toEqual([prod.id]);

    await post(`/v1/keys/${prod.id}/revoke`, service.adminKey, { reason: "test" });
    const revoked = (await service.call("/v1/keys?status=revoked", auth)).json() as { data: { id: string }[] };
    expect(revoked.data.map((k) => k.id)).toEqual([prod.id]);
  });

  it("rejects a forged cursor with INVALID_CURSOR", async () => {
    const response = await service.call("/v1/keys?cursor=bm9wZQ", { headers: { authorization: `ApiKey ${service.adminKey}` } });
    expect(response.status).toBe(400);
    expect((response.json() as { code: string }).code).toBe("INVALID_CURSOR");
  });
});

describe("GET and PATCH /v1/keys/{id}", () => {
  it("changes settings, records before/after in the audit log, and applies at once", async () => {
    const created = await createKeyOverHttp(service, { scopes: ["read"] });
    const patched = await service.call(`/v1/keys/${created.id}`, {
      method: "PATCH",
      headers: jsonHeaders(service.adminKey),
      body: JSON.stringify({ scopes: ["read", "write"], name: "renamed" }),
    });
    expect(patched.status).toBe(200);
    expect(patched.json()).toMatchObject({ name: "renamed", scopes: ["read", "write"] });
    const authz = await service.call("/v1/authz?scopes=write", { headers: { "x-api-key": created.key } });
    expect(authz.status).toBe(200);
    const audit = (
      await service.call(`/v1/audit-events?key_id=${created.id}&action=key.updated`, { headers: { "x-api-key": service.adminKey } })
    ).json() as {
      data: { changes: Record<string, { from: unknown; to: unknown }> }[];
    };
    expect(audit.data).toHaveLength(1);
    expect(audit.data[0]?.changes.scopes).toEqual({ from: ["read"], to: ["read", "write"] });
  });

  it("disabling a key denies it with DISABLED; enabling restores it", async () => {
    const created = await createKeyOverHttp(service);
    await service.call(`/v1/keys/${created.id}`, {
      method: "PATCH",
      headers: jsonHeaders(service.adminKey),
      body: JSON.stringify({ enabled: false }),
    });
    const denied = await service.call("/v1/introspect", { headers: { "x-api-key": created.key } });
    expect(denied.status).toBe(401);
    expect((denied.json() as { code: string }).code).toBe("DISABLED");
    await service.call(`/v1/keys/${created.id}`, {
      method: "PATCH",
      headers: jsonHeaders(service.adminKey),
      body: JSON.stringify({ enabled: true }),
    });
    expect((await service.call("/v1/introspect", { headers: { "x-api-key": created.key } })).status).toBe(200);
  });

  it("answers 404 for an unknown id", async () => {
    const response = await service.call("/v1/keys/key_0000000000000000000000", {
      headers: { authorization: `ApiKey ${service.adminKey}` },
    });
    expect(response.status).toBe(404);
    expect((response.json() as { code: string }).code).toBe("RESOURCE_NOT_FOUND");
  });
});

describe("rotate and revoke", () => {
  it("rotation keeps settings, the old key works during the grace period, and a second rotation conflicts", async () => {
    const created = await createKeyOverHttp(service, { scopes: ["read", "write"], metadata: { tier: "gold" } });
    const rotated = await post(`/v1/keys/${created.id}/rotate`, service.adminKey, { grace_seconds: 3600 });
    expect(rotated.status).toBe(201);
    expect(rotated.headers.get("cache-control")).toBe("no-store");
    const successor = rotated.json() as { key: string; id: string; scopes: string[]; metadata: unknown; rotated_from: string };
    expect(successor.scopes).toEqual(["read", "write"]);
    expect(successor.metadata).toEqual({ tier: "gold" });
    expect(successor.rotated_from).toBe(created.id);
    expect((await service.call("/v1/introspect", { headers: { "x-api-key": created.key } })).status).toBe(200);
    expect((await service.call("/v1/introspect", { headers: { "x-api-key": successor.key } })).status).toBe(200);
    const again = await post(`/v1/keys/${created.id}/rotate`, service.adminKey, { grace_seconds: 0 });
    expect(again.status).toBe(409);
  });

  it("two concurrent rotations give one successor and one 409", async () => {
    const created = await createKeyOverHttp(service);
    const results = await Promise.all([0, 1].map(() => post(`/v1/keys/${created.id}/rotate`, service.adminKey, {})));
    expect(results.map((r) => r.status).sort()).toEqual([201, 409]);
  });

  it("rotation with no grace stops the old key at once", async () => {
    const created = await createKeyOverHttp(service);
    await post(`/v1/keys/${created.id}/rotate`, service.adminKey, { grace_seconds: 0 });
    const old = await service.call("/v1/introspect", { headers: { "x-api-key": created.key } });
    expect((old.json() as { code: string }).code).toBe("REVOKED");
  });

  it("revocation denies the very next request", async () => {
    const created = await createKeyOverHttp(service);
    expect((await service.call("/v1/introspect", { headers: { "x-api-key": created.key } })).status).toBe(200);
    const revoked = await post(`/v1/keys/${created.id}/revoke`, service.adminKey, { reason: "laptop stolen" });
    expect(revoked.json()).toMatchObject({ status: "revoked", revoked_reason: "laptop stolen" });
    const after = await service.call("/v1/introspect", { headers: { "x-api-key": created.key } });
    expect(after.status).toBe(401);
    expect((after.json() as { code: string }).code).toBe("REVOKED");
  });

  it("disabling an owner disables every key it holds, at once", async () => {
    const a = await createKeyOverHttp(service, { owner: { type: "user", id: "dave" } });
    const b = await createKeyOverHttp(service, { owner: { type: "user", id: "dave" }, environment: "production" });
    await service.call("/v1/introspect", { headers: { "x-api-key": a.key } });
    const response = await service.call("/v1/owners/user/dave", {
      method: "PATCH",
      headers: jsonHeaders(service.adminKey),
      body: JSON.stringify({ disabled: true }),
    });
    expect(response.status).toBe(200);
    for (const key of [a.key, b.key]) {
      const denied = await service.call("/v1/introspect", { headers: { "x-api-key": key } });
      expect((denied.json() as { code: string }).code).toBe("DISABLED");
    }
  });
});

describe("POST /v1/keys/verify", () => {
  it("needs keys:verify and always answers 200 with the outcome", async () => {
    const verifier = await createKeyOverHttp(service, { scopes: ["keys:verify"], owner: { type: "application", id: "gateway" } });
    const target = await createKeyOverHttp(service, { scopes: ["read"] });
    const ok = await post("/v1/keys/verify", verifier.key, { key: target.key, scopes: ["read"] });
    expect(ok.status).toBe(200);
    expect(ok.json()).toMatchObject({ valid: true, code: "VALID", key: { id: target.id, scopes: ["read"] } });
    const scope = await post("/v1/keys/verify", verifier.key, { key: target.key, scopes: ["write"] });
    expect(scope.json()).toMatchObject({ valid: false, code: "INSUFFICIENT_SCOPE" });
    const env = await post("/v1/keys/verify", verifier.key, { key: target.key, environment: "production" });
    expect(env.json()).toMatchObject({ valid: false, code: "ENVIRONMENT_MISMATCH" });
    const bad = await post("/v1/keys/verify", verifier.key, { key: "kw_test_nope" });
    expect(bad.json()).toEqual({ valid: false, code: "MALFORMED" });
    const noRight = await post("/v1/keys/verify", target.key, { key: target.key });
    expect(noRight.status).toBe(403);
  });
});

describe("GET /v1/authz", () => {
  it("passes identity headers on success and maps denials to 401/403", async () => {
    const created = await createKeyOverHttp(service, { scopes: ["read"], environment: "production" });
    const ok = await service.call("/v1/authz", {
      headers: { authorization: `ApiKey ${created.key}`, "x-keyward-scopes": "read", "x-keyward-environment": "production" },
    });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("x-keyward-key-id")).toBe(created.id);
    expect(ok.headers.get("x-keyward-owner")).toBe("user:alice");
    expect(ok.headers.get("x-keyward-scopes")).toBe("read");
    const missing = await service.call("/v1/authz");
    expect(missing.status).toBe(401);
    const env = await service.call("/v1/authz?environment=sandbox", { headers: { authorization: `ApiKey ${created.key}` } });
    expect(env.status).toBe(403);
    expect((env.json() as { code: string }).code).toBe("ENVIRONMENT_MISMATCH");
  });

  it("checks the key's CIDR allow-list against the client address", async () => {
    const inside = await createKeyOverHttp(service, { allowed_cidrs: ["127.0.0.0/8"] });
    const outside = await createKeyOverHttp(service, { allowed_cidrs: ["10.0.0.0/8", "2001:db8::/32"] });
    expect((await service.call("/v1/authz", { headers: { "x-api-key": inside.key } })).status).toBe(200);
    const denied = await service.call("/v1/authz", { headers: { "x-api-key": outside.key } });
    expect(denied.status).toBe(403);
    expect((denied.json() as { code: string }).code).toBe("IP_NOT_ALLOWED");
  });
});

describe("GET /v1/introspect", () => {
  it("tells the holder who it is, its scopes, ref and expiry", async () => {
    const expires = new Date(Date.now() + 86_400_000).toISOString();
    const created = await createKeyOverHttp(service, {
      scopes: ["read", "approvals:*"],
      expires_at: expires,
      rate_limit: { requests: 5, per_seconds: 1 },
    });
    const response = await service.call("/v1/introspect", { headers: { authorization: `Bearer ${created.key}` } });
    expect(response.status).toBe(200);
    expect(response.json()).toMatchObject({
      id: created.id,
      ref: created.ref,
      owner: { type: "user", id: "alice" },
      environment: "sandbox",
      scopes: ["read", "approvals:*"],
      expires_at: expires,
      rate_limit: { requests: 5, per_seconds: 1 },
    });
    expect(response.text).not.toContain(created.key);
  });
});

describe("operations", () => {
  it("serves health, readiness, metrics, the OpenAPI document and docs", async () => {
    expect((await service.call("/healthz")).status).toBe(200);
    expect((await service.call("/readyz")).json()).toMatchObject({ status: "ready" });
    const metrics = await service.call("/metrics");
    expect(metrics.text).toContain("keyward_verifications_total");
    const spec = (await service.call("/openapi.json")).json() as { openapi: string; paths: Record<string, unknown> };
    expect(spec.openapi).toBe("3.1.0");
    for (const path of [
      "/v1/keys",
      "/v1/keys/{id}",
      "/v1/keys/{id}/rotate",
      "/v1/keys/{id}/revoke",
      "/v1/keys/verify",
      "/v1/authz",
      "/v1/introspect",
      "/v1/audit-events",
    ]) {
      expect(spec.paths).toHaveProperty([path]);
    }
    const docs = await service.call("/docs");
    expect(docs.headers.get("content-type")).toContain("text/html");
    expect(docs.text).toContain("/v1/keys");
  });

  it("answers unknown routes with a problem document", async () => {
    const response = await service.call("/nope");
    expect(response.status).toBe(404);
    expect((response.json() as { code: string }).code).toBe("ROUTE_NOT_FOUND");
  });
});
