import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createMember, type SignedIn, sessionHeaders, setupAdmin, signIn } from "../helpers/people.js";
import { jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

let service: TestService;
let admin: SignedIn;
beforeEach(async () => {
  service = await startTestService({ env: { KEYWARD_MEMBER_KEY_CREATES_PER_HOUR: "3" } });
  admin = await setupAdmin(service);
});
afterEach(async () => {
  await service.close();
});

const code = (response: { json: () => unknown }) => (response.json() as { code: string }).code;
const actions = (): string[] =>
  (service.store.db.prepare("SELECT action FROM audit_events ORDER BY seq").all() as { action: string }[]).map((r) => r.action);

async function createOwnKey(who: SignedIn, body: Record<string, unknown> = {}) {
  return service.call("/v1/keys", {
    method: "POST",
    headers: sessionHeaders(service, who),
    body: JSON.stringify({ owner: { type: "user", id: who.userId }, name: "mine", environment: "sandbox", scopes: ["read"], ...body }),
  });
}

describe("setup", () => {
  it("creates the first admin once: the same token cannot be used again", async () => {
    const again = await service.call("/v1/setup", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: "A".repeat(32), email: "intruder@example.com", password: "long enough password" }),
    });
    expect(again.status).toBe(403);
    expect(code(again)).toBe("SETUP_NOT_ALLOWED");
    expect((await service.call("/v1/setup")).json()).toEqual({ needed: false });
    expect(actions()).toContain("user.created");
  });
});

describe("sessions", () => {
  it("sets an HttpOnly, SameSite=Lax session cookie (no Secure over plain HTTP)", async () => {
    const response = await service.call("/v1/session", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "admin@example.com", password: "correct horse battery" }),
    });
    const cookie = response.headers.get("set-cookie") ?? "";
    expect(cookie).toMatch(/^kw_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax; Max-Age=43200$/);
    expect(response.headers.get("cache-control")).toBe("no-store");
  });

  it("answers 401 SESSION_REQUIRED without a session", async () => {
    const response = await service.call("/v1/session");
    expect(response.status).toBe(401);
    expect(code(response)).toBe("SESSION_REQUIRED");
  });

  it("gives one generic error for a wrong password and an unknown email, and audits both", async () => {
    const wrong = await service.call("/v1/session", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "admin@example.com", password: "not the password" }),
    });
    const unknown = await service.call("/v1/session", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "nobody@example.com", password: "not the password" }),
    });
    expect([wrong.status, unknown.status]).toEqual([401, 401]);
    expect((wrong.json() as { detail: string }).detail).toBe((unknown.json() as { detail: string }).detail);
    expect(actions().filter((a) => a === "session.sign_in_failed")).toHaveLength(2);
  });

  it("throttles an account after five failures from one address, even with the right password", async () => {
    const attempt = (password: string) =>
      service.call("/v1/session", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ email: "admin@example.com", password }),
      });
    for (let i = 0; i < 5; i++) expect((await attempt("wrong password!")).status).toBe(401);
    const blocked = await attempt("correct horse battery");
    expect(blocked.status).toBe(429);
    expect(code(blocked)).toBe("SIGN_IN_THROTTLED");
    // The seconds left in the 15-minute window that began at the first failure.
    const retryAfter = Number(blocked.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(900);
  });

  it("starts a new session on sign-in and ends the one it replaces", async () => {
    const second = await service.call("/v1/session", {
      method: "POST",
      headers: { "content-type": "application/json", cookie: admin.cookie },
      body: JSON.stringify({ email: "admin@example.com", password: "correct horse battery" }),
    });
    expect(second.headers.get("set-cookie")).not.toContain(admin.cookie);
    expect((await service.call("/v1/session", { headers: { cookie: admin.cookie } })).status).toBe(401);
  });

  it("ends the session on sign-out", async () => {
    const out = await service.call("/v1/session", {
      method: "DELETE",
      headers: { cookie: admin.cookie, "x-csrf-token": admin.csrf, origin: service.url },
    });
    expect(out.status).toBe(204);
    expect(out.headers.get("set-cookie")).toContain("Max-Age=0");
    expect((await service.call("/v1/session", { headers: { cookie: admin.cookie } })).status).toBe(401);
  });

  it("ends a user's sessions and disables their keys when the user is disabled", async () => {
    const member = await createMember(service, admin, "bob@example.com");
    const key = (await createOwnKey(member)).json() as { key: string };
    const disabled = await service.call(`/v1/users/${member.userId}`, {
      method: "PATCH",
      headers: sessionHeaders(service, admin),
      body: JSON.stringify({ disabled: true }),
    });
    expect(disabled.status).toBe(200);
    expect((await service.call("/v1/session", { headers: { cookie: member.cookie } })).status).toBe(401);
    const introspect = await service.call("/v1/introspect", { headers: { authorization: `Bearer ${key.key}` } });
    expect(introspect.status).toBe(401);
    expect(code(introspect)).toBe("DISABLED");
    expect(actions()).toContain("user.disabled");
  });
});

describe("password change", () => {
  const change = (who: SignedIn, current: string, next: string) =>
    service.call("/v1/session/password", {
      method: "POST",
      headers: sessionHeaders(service, who),
      body: JSON.stringify({ current_password: current, new_password: next }),
    });

  it("ends every other session of the user, and the old password stops working", async () => {
    const other = await signIn(service, "admin@example.com", "correct horse battery");
    const changed = await change(admin, "correct horse battery", "a brand new password");
    expect(changed.status).toBe(201);
    expect((await service.call("/v1/session", { headers: { cookie: other.cookie } })).status).toBe(401);
    expect((await service.call("/v1/session", { headers: { cookie: admin.cookie } })).status).toBe(401);
    await expect(signIn(service, "admin@example.com", "correct horse battery")).rejects.toThrow(/401/);
    await signIn(service, "admin@example.com", "a brand new password");
    expect(actions()).toContain("user.password_changed");
  });

  it("needs the current password", async () => {
    const refused = await change(admin, "not my password", "a brand new password");
    expect(refused.status).toBe(401);
    expect((await service.call("/v1/session", { headers: { cookie: admin.cookie } })).status).toBe(200);
  });
});

describe("CSRF", () => {
  it("refuses a cross-site POST carrying the victim's cookie, and creates nothing", async () => {
    const before = await service.store.countKeys();
    const response = await service.call("/v1/keys", {
      method: "POST",
      headers: sessionHeaders(service, admin, { origin: "https://evil.example", "sec-fetch-site": "cross-site" }),
      body: JSON.stringify({ owner: { type: "user", id: admin.userId }, name: "csrf", environment: "sandbox", scopes: [] }),
    });
    expect(response.status).toBe(403);
    expect(code(response)).toBe("CSRF_FAILED");
    expect(await service.store.countKeys()).toBe(before);
  });

  it("refuses a same-origin session POST without the X-CSRF-Token", async () => {
    const response = await service.call("/v1/keys", {
      method: "POST",
      headers: { cookie: admin.cookie, "content-type": "application/json", origin: service.url },
      body: JSON.stringify({ owner: { type: "user", id: admin.userId }, name: "csrf", environment: "sandbox", scopes: [] }),
    });
    expect(response.status).toBe(403);
    expect(code(response)).toBe("CSRF_FAILED");
  });
});

describe("members", () => {
  it("never see another member's key: 404 on read, list and revoke", async () => {
    const alice = await createMember(service, admin, "alice@example.com");
    const bob = await createMember(service, admin, "bob@example.com");
    const alicesKey = (await createOwnKey(alice)).json() as { id: string };
    expect((await service.call(`/v1/keys/${alicesKey.id}`, { headers: { cookie: bob.cookie } })).status).toBe(404);
    const revoke = await service.call(`/v1/keys/${alicesKey.id}/revoke`, {
      method: "POST",
      headers: sessionHeaders(service, bob),
      body: "{}",
    });
    expect(revoke.status).toBe(404);
    const list = (await service.call(`/v1/keys?owner_id=${alice.userId}`, { headers: { cookie: bob.cookie } })).json() as {
      data: unknown[];
    };
    expect(list.data).toEqual([]);
  });

  it("create keys for themselves only", async () => {
    const bob = await createMember(service, admin, "bob@example.com");
    const response = await createOwnKey(bob, { owner: { type: "user", id: admin.userId } });
    expect(response.status).toBe(403);
    expect(code(response)).toBe("FORBIDDEN");
  });

  it("may grant only the scopes their role allows", async () => {
    const bob = await createMember(service, admin, "bob@example.com");
    for (const scopes of [["admin"], ["billing:read"]]) {
      const response = await createOwnKey(bob, { scopes });
      expect(response.status).toBe(403);
    }
    expect(await service.store.countKeys()).toBe(1);
  });

  it("mint keys at a capped rate", async () => {
    const bob = await createMember(service, admin, "bob@example.com");
    for (let i = 0; i < 3; i++) expect((await createOwnKey(bob)).status).toBe(201);
    const capped = await createOwnKey(bob);
    expect(capped.status).toBe(429);
    expect(code(capped)).toBe("KEY_CREATION_CAPPED");
  });

  it("cannot read the audit log or manage users", async () => {
    const bob = await createMember(service, admin, "bob@example.com");
    expect((await service.call("/v1/audit-events", { headers: { cookie: bob.cookie } })).status).toBe(403);
    expect((await service.call("/v1/users", { headers: { cookie: bob.cookie } })).status).toBe(403);
  });
});

describe("key requests", () => {
  const limits = {
    rate_limit: { requests: 10, per_seconds: 60 },
    concurrency: 3,
    quota: { limit: 1000, period: "day" },
    allowed_cidrs: ["127.0.0.0/8"],
    metadata: { team: "growth" },
  };

  async function requestWithSandboxKey(member: SignedIn) {
    const sandbox = (await createOwnKey(member, { scopes: ["read", "write"] })).json() as { id: string; key: string };
    // Limits are set by an admin (members may not raise their own).
    const patched = await service.call(`/v1/keys/${sandbox.id}`, {
      method: "PATCH",
      headers: jsonHeaders(service.adminKey),
      body: JSON.stringify(limits),
    });
    expect(patched.status).toBe(200);
    const asked = await service.call("/v1/key-requests", {
      method: "POST",
      headers: jsonHeaders(sandbox.key),
      body: JSON.stringify({ reason: "going live" }),
    });
    expect(asked.status).toBe(201);
    return { sandbox, request: asked.json() as { id: string; status: string } };
  }

  it("are asked by the sandbox key, approved by an admin and picked up once, with the same scopes and limits", async () => {
    const bob = await createMember(service, admin, "bob@example.com");
    const { sandbox, request } = await requestWithSandboxKey(bob);
    // The sandbox key has been used (asking counts); a usage query writes that out.
    expect((await service.call("/v1/usage", { headers: jsonHeaders(service.adminKey) })).status).toBe(200);
    const used = (await service.call(`/v1/keys/${sandbox.id}`, { headers: jsonHeaders(service.adminKey) })).json() as Record<
      string,
      unknown
    >;
    expect(used.last_used_ip).toBe("127.0.0.1");
    const approved = await service.call(`/v1/key-requests/${request.id}/approve`, {
      method: "POST",
      headers: sessionHeaders(service, admin),
      body: "{}",
    });
    expect(approved.status).toBe(200);
    expect(approved.text).not.toMatch(/kw_live_[0-9A-Za-z]{38}/);
    const claimed = await service.call(`/v1/key-requests/${request.id}/claim`, {
      method: "POST",
      headers: sessionHeaders(service, bob),
      body: "{}",
    });
    expect(claimed.status).toBe(201);
    const production = claimed.json() as Record<string, unknown> & { key: string };
    expect(production.key).toMatch(/^kw_live_/);
    expect(production).toMatchObject({
      environment: "production",
      scopes: ["read", "write"],
      owner: { type: "user", id: bob.userId },
      ...limits,
    });
    // The sandbox key's permissions, not its history: never used, no expiry, a lineage of its own.
    expect(production).toMatchObject({ last_used_at: null, last_used_ip: null, expires_at: null });
    const introspect = await service.call("/v1/introspect", { headers: { authorization: `Bearer ${production.key}` } });
    expect(introspect.status).toBe(200);
    const again = await service.call(`/v1/key-requests/${request.id}/claim`, {
      method: "POST",
      headers: sessionHeaders(service, bob),
      body: "{}",
    });
    expect(again.status).toBe(409);
    expect(actions()).toEqual(expect.arrayContaining(["key_request.created", "key_request.approved", "key_request.claimed"]));
  });

  it("allow one pending request per sandbox key", async () => {
    const bob = await createMember(service, admin, "bob@example.com");
    const { sandbox } = await requestWithSandboxKey(bob);
    const twice = await service.call("/v1/key-requests", { method: "POST", headers: jsonHeaders(sandbox.key), body: "{}" });
    expect(twice.status).toBe(409);
  });

  it("are rejected with a reason the requester sees", async () => {
    const bob = await createMember(service, admin, "bob@example.com");
    const { request } = await requestWithSandboxKey(bob);
    const rejected = await service.call(`/v1/key-requests/${request.id}/reject`, {
      method: "POST",
      headers: sessionHeaders(service, admin),
      body: JSON.stringify({ reason: "use the shared key" }),
    });
    expect(rejected.status).toBe(200);
    const mine = (await service.call("/v1/key-requests", { headers: { cookie: bob.cookie } })).json() as {
      data: Record<string, unknown>[];
    };
    expect(mine.data[0]).toMatchObject({ status: "rejected", decision_reason: "use the shared key" });
    expect(actions()).toContain("key_request.rejected");
  });

  it("cannot be approved by a member", async () => {
    const bob = await createMember(service, admin, "bob@example.com");
    const { request } = await requestWithSandboxKey(bob);
    const response = await service.call(`/v1/key-requests/${request.id}/approve`, {
      method: "POST",
      headers: sessionHeaders(service, bob),
      body: "{}",
    });
    expect(response.status).toBe(403);
  });

  it("are not visible to other members", async () => {
    const bob = await createMember(service, admin, "bob@example.com");
    const carol = await createMember(service, admin, "carol@example.com");
    const { request } = await requestWithSandboxKey(bob);
    expect((await service.call(`/v1/key-requests/${request.id}`, { headers: { cookie: carol.cookie } })).status).toBe(404);
    const claim = await service.call(`/v1/key-requests/${request.id}/claim`, {
      method: "POST",
      headers: sessionHeaders(service, carol),
      body: "{}",
    });
    expect(claim.status).toBe(404);
  });

  it("refuse a production key as the source", async () => {
    const production = await service.call("/v1/keys", {
      method: "POST",
      headers: jsonHeaders(service.adminKey),
      body: JSON.stringify({ owner: { type: "application", id: "svc" }, name: "p", environment: "production", scopes: [] }),
    });
    const key = (production.json() as { key: string }).key;
    const response = await service.call("/v1/key-requests", { method: "POST", headers: jsonHeaders(key), body: "{}" });
    expect(response.status).toBe(400);
  });
});

describe("sign-in with a member's password", () => {
  it("opens a session that sees the member's own keys only", async () => {
    await createMember(service, admin, "dora@example.com", "dora's password!");
    const dora = await signIn(service, "DORA@example.com", "dora's password!");
    await createOwnKey(dora);
    const list = (await service.call("/v1/keys", { headers: { cookie: dora.cookie } })).json() as { data: { owner: { id: string } }[] };
    expect(list.data.map((k) => k.owner.id)).toEqual([dora.userId]);
  });
});
