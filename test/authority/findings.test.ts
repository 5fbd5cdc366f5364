import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMember, type SignedIn, sessionHeaders, setupAdmin } from "../helpers/people.js";
import { createKeyOverHttp, jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

/**
 * One regression test per finding of the authority review (docs/authority.md): each action below
 * handed a narrow caller more than it held on the code before the authority model.
 */

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

function withKey(service: TestService, key: string) {
  return async (method: string, path: string, body?: unknown): Promise<Reply> => {
    const response = await service.call(path, {
      method,
      headers: body === undefined ? { authorization: `Bearer ${key}` } : jsonHeaders(key),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: (response.text ? response.json() : {}) as Record<string, unknown> };
  };
}

function withSession(service: TestService, who: SignedIn) {
  return async (method: string, path: string, body?: unknown): Promise<Reply> => {
    const headers = sessionHeaders(service, who);
    if (body === undefined) delete headers["content-type"];
    const response = await service.call(path, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: (response.text ? response.json() : {}) as Record<string, unknown> };
  };
}

async function keyIdOf(service: TestService, key: string): Promise<string> {
  const response = await service.call("/v1/introspect", { headers: { authorization: `Bearer ${key}` } });
  return (response.json() as { id: string }).id;
}

describe("the authority review's findings, each refused", () => {
  let service: TestService;
  let admin: ReturnType<typeof withKey>;
  let adminId: string;
  let adminSession: SignedIn;

  beforeAll(async () => {
    service = await startTestService({ env: { KEYWARD_MEMBER_KEY_SCOPES: "read,write,keys:read,keys:write" } });
    admin = withKey(service, service.adminKey);
    adminId = await keyIdOf(service, service.adminKey);
    adminSession = await setupAdmin(service);
  });
  afterAll(async () => {
    await service?.close();
  });

  const writer = async (environment: "sandbox" | "production", extra: Record<string, unknown> = {}) =>
    createKeyOverHttp(service, {
      owner: { type: "application", id: `writer-${environment}` },
      environment,
      scopes: ["keys:read", "keys:write", "read"],
      ...extra,
    });

  describe("1. a keys:write key", () => {
    it("cannot rotate the admin key and receive its plaintext", async () => {
      const narrow = withKey(service, (await writer("sandbox")).key);
      const rotated = await narrow("POST", `/v1/keys/${adminId}/rotate`, { grace_seconds: 2_592_000 });
      expect(rotated.status).toBe(403);
      expect(rotated.body.code).toBe("FORBIDDEN");
      expect(rotated.body.key).toBeUndefined();
    });

    it("cannot revoke, disable or re-enable a key beyond its reach", async () => {
      const other = await createKeyOverHttp(service, {
        owner: { type: "application", id: "ops" },
        scopes: ["admin"],
        environment: "production",
      });
      expect((await admin("PATCH", `/v1/keys/${other.id}`, { enabled: false })).status).toBe(200);
      const narrow = withKey(service, (await writer("sandbox")).key);
      expect((await narrow("PATCH", `/v1/keys/${other.id}`, { enabled: true })).status).toBe(403);
      expect((await narrow("POST", `/v1/keys/${other.id}/revoke`, {})).status).toBe(403);
      expect(((await admin("GET", `/v1/keys/${other.id}`)).body as { status: string }).status).toBe("disabled");
    });

    it("cannot approve a production copy of a sandbox key whose scopes it lacks", async () => {
      const sandbox = await createKeyOverHttp(service, { owner: { type: "application", id: "partner" }, scopes: ["payments:refund"] });
      const asked = await withKey(service, sandbox.key)("POST", "/v1/key-requests", { reason: "go live" });
      expect(asked.status).toBe(201);
      const narrow = withKey(service, (await writer("production")).key);
      const approved = await narrow("POST", `/v1/key-requests/${asked.body.id}/approve`);
      expect(approved.status).toBe(403);
      expect(approved.body.detail).toContain("payments:refund");
    });
  });

  it("2. a users:write key cannot create an administrator", async () => {
    const people = withKey(
      service,
      (await createKeyOverHttp(service, { owner: { type: "application", id: "hr" }, scopes: ["users:write"] })).key,
    );
    const created = await people("POST", "/v1/users", { email: "mallory@example.com", password: "mallory password 1", role: "admin" });
    expect(created.status).toBe(403);
    expect((await admin("GET", "/v1/users")).body.data).not.toContainEqual(expect.objectContaining({ email: "mallory@example.com" }));
  });

  it("3. a sandbox keys:write key mints no production key and no scope beyond its own", async () => {
    const narrow = withKey(service, (await writer("sandbox")).key);
    const base = { owner: { type: "application", id: "customer" }, name: "c" };
    expect((await narrow("POST", "/v1/keys", { ...base, environment: "production", scopes: ["read"] })).status).toBe(403);
    for (const scope of ["payments:refund", "*:admin", "*", "keys:write"])
      expect((await narrow("POST", "/v1/keys", { ...base, environment: "sandbox", scopes: [scope] })).status, scope).toBe(403);
    expect((await narrow("POST", "/v1/keys", { ...base, environment: "sandbox", scopes: ["read"] })).status).toBe(201);
  });

  it("a provisioning key with a ceiling mints within it, and nothing beyond", async () => {
    const provisioning = await writer("production", {
      grantable_scopes: ["read", "write"],
      grantable_environments: ["sandbox", "production"],
    });
    expect(provisioning).toMatchObject({ grantable_scopes: ["read", "write"], grantable_environments: ["sandbox", "production"] });
    const minting = withKey(service, provisioning.key);
    const base = { owner: { type: "application", id: "customer-42" }, name: "customer 42" };
    expect((await minting("POST", "/v1/keys", { ...base, environment: "production", scopes: ["read", "write"] })).status).toBe(201);
    expect((await minting("POST", "/v1/keys", { ...base, environment: "production", scopes: ["payments:refund"] })).status).toBe(403);
    // A sub-ceiling wider than its own is conferring beyond it.
    const wider = await minting("POST", "/v1/keys", { ...base, environment: "sandbox", scopes: ["read"], grantable_scopes: ["billing"] });
    expect(wider.status).toBe(403);
    // A ceiling holds no management scope the key lacks.
    const ceilingBeyondKey = await admin("POST", "/v1/keys", {
      ...base,
      environment: "sandbox",
      scopes: ["read"],
      grantable_scopes: ["keys:write"],
    });
    expect(ceilingBeyondKey.status).toBe(400);
  });

  describe("4. a member", () => {
    let member: SignedIn;
    let asMember: ReturnType<typeof withSession>;
    beforeAll(async () => {
      member = await createMember(service, adminSession, "member4@example.com");
      asMember = withSession(service, member);
    });
    const own = () => ({ owner: { type: "user", id: member.userId }, name: "mine", scopes: ["read"] });

    it("gets no production key without an approval", async () => {
      const created = await asMember("POST", "/v1/keys", { ...own(), environment: "production" });
      expect(created.status).toBe(403);
      expect((await asMember("POST", "/v1/keys", { ...own(), environment: "sandbox" })).status).toBe(201);
    });

    it("cannot lift controls an admin set, but can tighten them and undo its own", async () => {
      const key = (await asMember("POST", "/v1/keys", { ...own(), environment: "sandbox" })).body as { id: string };
      const expiry = new Date(Date.now() + 86_400_000).toISOString();
      const set = await withSession(service, adminSession)("PATCH", `/v1/keys/${key.id}`, {
        allowed_cidrs: ["10.0.0.0/8"],
        rate_limit: { requests: 5, per_seconds: 1 },
        expires_at: expiry,
        enabled: false,
      });
      expect(set.status).toBe(200);
      for (const loosen of [
        { allowed_cidrs: [] },
        { rate_limit: null },
        { expires_at: null },
        { enabled: true },
        { allowed_cidrs: ["0.0.0.0/0"] },
      ])
        expect((await asMember("PATCH", `/v1/keys/${key.id}`, loosen)).status, JSON.stringify(loosen)).toBe(403);
      expect(
        (await asMember("PATCH", `/v1/keys/${key.id}`, { allowed_cidrs: ["10.1.0.0/16"], rate_limit: { requests: 2, per_seconds: 1 } }))
          .status,
      ).toBe(200);
      // What the member set itself, it may loosen again.
      const mine = (await asMember("POST", "/v1/keys", { ...own(), environment: "sandbox" })).body as { id: string };
      expect((await asMember("PATCH", `/v1/keys/${mine.id}`, { enabled: false })).status).toBe(200);
      expect((await asMember("PATCH", `/v1/keys/${mine.id}`, { enabled: true })).status).toBe(200);
    });

    it("5. through a key it minted, still manages only its own keys", async () => {
      const minted = (await asMember("POST", "/v1/keys", { ...own(), environment: "sandbox", scopes: ["keys:read", "keys:write"] }))
        .body as { key: string };
      const viaKey = withKey(service, minted.key);
      const listed = (await viaKey("GET", "/v1/keys?limit=200")).body.data as { owner: { id: string } }[];
      expect(listed.length).toBeGreaterThan(0);
      expect(listed.every((key) => key.owner.id === member.userId)).toBe(true);
      expect((await viaKey("POST", `/v1/keys/${adminId}/rotate`, {})).status).toBe(404);
      expect((await viaKey("GET", `/v1/keys/${adminId}`)).status).toBe(404);
      expect((await viaKey("POST", "/v1/users", { email: "x@example.com", password: "xxxxxxxxxxxx", role: "member" })).status).toBe(403);
    });
  });

  describe("6. state that restores rights", () => {
    it("an owner that is a disabled user cannot be re-enabled separately", async () => {
      const member = await createMember(service, adminSession, "member6@example.com");
      await createKeyOverHttp(service, { owner: { type: "user", id: member.userId } });
      expect((await withSession(service, adminSession)("PATCH", `/v1/users/${member.userId}`, { disabled: true })).status).toBe(200);
      const revived = await admin("PATCH", `/v1/owners/user/${member.userId}`, { disabled: false });
      expect(revived.status).toBe(409);
      expect(revived.body.code).toBe("OWNER_FOLLOWS_USER");
    });

    it("a request whose sandbox key was revoked, or widened, is not approved", async () => {
      const revokedSandbox = await createKeyOverHttp(service, { owner: { type: "application", id: "stale-1" } });
      const first = (await withKey(service, revokedSandbox.key)("POST", "/v1/key-requests", {})).body.id;
      expect((await admin("POST", `/v1/keys/${revokedSandbox.id}/revoke`, {})).status).toBe(200);
      const refused = await admin("POST", `/v1/key-requests/${first}/approve`);
      expect(refused.status).toBe(409);
      expect(refused.body.code).toBe("KEY_REQUEST_STALE");

      const widened = await createKeyOverHttp(service, { owner: { type: "application", id: "stale-2" } });
      const second = (await withKey(service, widened.key)("POST", "/v1/key-requests", {})).body;
      expect(second.asked).toMatchObject({ scopes: ["read"] });
      expect((await admin("PATCH", `/v1/keys/${widened.id}`, { scopes: ["read", "payments:refund"] })).status).toBe(200);
      expect((await admin("POST", `/v1/key-requests/${second.id}/approve`)).body.code).toBe("KEY_REQUEST_STALE");
    });

    it("an approved key awaits pickup: not active, not rotatable, not revocable by its requester; revoked, it cannot be claimed", async () => {
      const member = await createMember(service, adminSession, "member7@example.com");
      const asMember = withSession(service, member);
      const sandbox = (
        await asMember("POST", "/v1/keys", {
          owner: { type: "user", id: member.userId },
          name: "s",
          environment: "sandbox",
          scopes: ["read"],
        })
      ).body as { id: string };
      const asked = (await asMember("POST", "/v1/key-requests", { key_id: sandbox.id })).body as { id: string };
      const approved = (await withSession(service, adminSession)("POST", `/v1/key-requests/${asked.id}/approve`)).body as {
        issued_key_id: string;
      };
      const issued = approved.issued_key_id;
      expect(((await asMember("GET", `/v1/keys/${issued}`)).body as { status: string }).status).toBe("awaiting_pickup");
      const active = (await asMember("GET", "/v1/keys?status=active")).body.data as { id: string }[];
      expect(active.map((key) => key.id)).not.toContain(issued);
      const rotated = await asMember("POST", `/v1/keys/${issued}/rotate`, {});
      expect(rotated.status).toBe(409);
      expect(rotated.body.code).toBe("KEY_AWAITING_PICKUP");
      expect(rotated.body.key).toBeUndefined();
      expect((await asMember("POST", `/v1/keys/${issued}/revoke`, {})).body.code).toBe("KEY_AWAITING_PICKUP");
      expect((await admin("POST", `/v1/keys/${issued}/rotate`, {})).body.code).toBe("KEY_AWAITING_PICKUP");
      expect((await admin("POST", `/v1/keys/${issued}/revoke`, {})).status).toBe(200);
      const claimed = await asMember("POST", `/v1/key-requests/${asked.id}/claim`);
      expect(claimed.status).toBe(409);
      expect(claimed.body.key).toBeUndefined();
    });

    it("found by the model test: a member cannot widen its own approved production key, nor a narrow users:write key revive its owner", async () => {
      const member = await createMember(service, adminSession, "member8@example.com");
      const asMember = withSession(service, member);
      const sandbox = (
        await asMember("POST", "/v1/keys", {
          owner: { type: "user", id: member.userId },
          name: "s8",
          environment: "sandbox",
          scopes: ["read"],
        })
      ).body as { id: string };
      const asked = (await asMember("POST", "/v1/key-requests", { key_id: sandbox.id })).body as { id: string };
      expect((await withSession(service, adminSession)("POST", `/v1/key-requests/${asked.id}/approve`)).status).toBe(200);
      const claimed = (await asMember("POST", `/v1/key-requests/${asked.id}/claim`)).body as { id: string };
      const widened = await asMember("PATCH", `/v1/keys/${claimed.id}`, { scopes: ["read", "write"] });
      expect(widened.status).toBe(403);
      expect(widened.body.detail).toContain("production");
      // A users:write key whose ceiling is sandbox-only cannot re-enable the member who holds that production key.
      const people = withKey(
        service,
        (
          await createKeyOverHttp(service, {
            owner: { type: "application", id: "hr8" },
            scopes: ["users:write", "keys:read", "keys:write", "read", "write"],
            grantable_scopes: ["read", "write"],
            grantable_environments: ["sandbox"],
          })
        ).key,
      );
      expect((await admin("PATCH", `/v1/users/${member.userId}`, { disabled: true })).status).toBe(200);
      expect((await people("PATCH", `/v1/users/${member.userId}`, { disabled: false })).status).toBe(403);
    });

    it("a claimed key is active and works", async () => {
      const sandbox = await createKeyOverHttp(service, { owner: { type: "application", id: "claimer" } });
      const holder = withKey(service, sandbox.key);
      const asked = (await holder("POST", "/v1/key-requests", {})).body as { id: string };
      expect((await admin("POST", `/v1/key-requests/${asked.id}/approve`)).status).toBe(200);
      const claimed = (await holder("POST", `/v1/key-requests/${asked.id}/claim`)).body as {
        key: string;
        status: string;
        scopes: string[];
      };
      expect(claimed).toMatchObject({ status: "active", scopes: ["read"] });
      expect((await service.call("/v1/introspect", { headers: { authorization: `Bearer ${claimed.key}` } })).status).toBe(200);
    });

    it("revoking a rotation's successor ends the predecessor's grace", async () => {
      const original = await createKeyOverHttp(service, { owner: { type: "application", id: "lineage" } });
      const successor = (await admin("POST", `/v1/keys/${original.id}/rotate`, { grace_seconds: 3600 })).body as { id: string };
      const predecessorWorks = () => service.call("/v1/introspect", { headers: { authorization: `Bearer ${original.key}` } });
      expect((await predecessorWorks()).status).toBe(200);
      const revoked = await admin("POST", `/v1/keys/${successor.id}/revoke`, { reason: "leaked" });
      expect(revoked.body.ended_grace).toEqual([original.id]);
      expect((await predecessorWorks()).status).toBe(401);
      const events = (await admin("GET", `/v1/audit-events?key_id=${successor.id}`)).body.data as { details: unknown }[];
      expect(events[0]?.details).toMatchObject({ ended_grace: [original.id] });
    });

    it("an admin ends a predecessor's grace early by revoking it; the successor keeps working", async () => {
      const original = await createKeyOverHttp(service, { owner: { type: "application", id: "early" } });
      const successor = (await admin("POST", `/v1/keys/${original.id}/rotate`, { grace_seconds: 3600 })).body as { key: string };
      expect((await admin("POST", `/v1/keys/${original.id}/revoke`, { reason: "grace over" })).status).toBe(200);
      const introspect = (key: string) => service.call("/v1/introspect", { headers: { authorization: `Bearer ${key}` } });
      expect((await introspect(original.key)).status).toBe(401);
      expect((await introspect(successor.key)).status).toBe(200);
    });

    it("the member key cap holds under concurrent creates", async () => {
      const capped = await startTestService({ env: { KEYWARD_MEMBER_KEY_CREATES_PER_HOUR: "5" } });
      try {
        const boss = await setupAdmin(capped);
        const member = await createMember(capped, boss, "capped@example.com");
        const attempts = await Promise.all(
          Array.from({ length: 12 }, (_, i) =>
            withSession(capped, member)("POST", "/v1/keys", {
              owner: { type: "user", id: member.userId },
              name: `k${i}`,
              environment: "sandbox",
              scopes: ["read"],
            }),
          ),
        );
        expect(attempts.filter((reply) => reply.status === 201)).toHaveLength(5);
        expect(attempts.filter((reply) => reply.status === 429).every((reply) => reply.body.code === "KEY_CREATION_CAPPED")).toBe(true);
      } finally {
        await capped.close();
      }
    });
  });
});
