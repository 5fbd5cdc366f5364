import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/ports/clock.js";
import { buildApp } from "../../src/service/app.js";
import { loadConfig } from "../../src/service/config.js";
import { createLogger } from "../../src/service/logger.js";
import { ServiceMetrics } from "../../src/service/metrics.js";
import { assembleKeyward, createAdminKey } from "../../src/service/open-keyward.js";
import { storesBeside } from "../../src/service/store-factory.js";
import { PostgresKeyStore } from "../../src/stores/postgres/postgres-key-store.js";
import { backendsAvailable, createTestSchema, DATABASE_URL } from "../helpers/backends.js";
import { startTestService } from "../helpers/service.js";

// Portal sessions (docs/embedding.md) over real HTTP, on SQLite and on PostgreSQL: opening one as
// an admin and as a portal:create key (never beyond its ceiling), using its token within the
// policy and being refused outside it, expiry and revocation, and CORS for configured origins.

const HOST = "https://app.example.com";
const ENV = { KEYWARD_PORTAL_ORIGINS: `${HOST},http://127.0.0.1:9`, KEYWARD_FAILED_ATTEMPTS_LIMIT: "0" };
const DAY = 86_400_000;

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: <T = Record<string, unknown>>() => T;
}
interface Harness {
  url: string;
  adminKey: string;
  clock: ManualClock;
  call(path: string, init?: RequestInit): Promise<Reply>;
  close(): Promise<void>;
}

const wrap = async (response: Response): Promise<Reply> => {
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, json: <T>() => JSON.parse(text) as T };
};

async function sqliteHarness(): Promise<Harness> {
  const clock = new ManualClock(Date.now());
  const service = await startTestService({ env: ENV, clock });
  return {
    url: service.url,
    adminKey: service.adminKey,
    clock,
    call: async (path, init = {}) => {
      const reply = await service.call(path, init);
      return { ...reply, json: <T>() => reply.json() as T };
    },
    close: () => service.close(),
  };
}

async function postgresHarness(): Promise<Harness> {
  const clock = new ManualClock(Date.now());
  const schema = await createTestSchema();
  const store = new PostgresKeyStore({ connectionString: DATABASE_URL, schema: schema.schema, maxConnections: 4 });
  await store.migrate();
  const config = { ...loadConfig({ KEYWARD_DATABASE_URL: DATABASE_URL, ...ENV }), port: 0, host: "127.0.0.1" };
  const metrics = new ServiceMetrics();
  const logger = createLogger("error");
  const keyward = assembleKeyward(config, await storesBeside(store), { metrics, logger, clock });
  const app = await buildApp({ keyward, config, logger, metrics });
  await app.listen({ port: 0, host: "127.0.0.1" });
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  const admin = await createAdminKey(keyward, "portal test admin", { type: "cli", id: "test" });
  return {
    url,
    adminKey: admin.key,
    clock,
    call: async (path, init = {}) => wrap(await fetch(url + path, init)),
    async close() {
      await app.close();
      await keyward.close();
      await schema.drop();
    },
  };
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}`, "content-type": "application/json" });
const portal = (token: string, extra: Record<string, string> = {}) => ({
  authorization: `Portal ${token}`,
  "content-type": "application/json",
  ...extra,
});

function suite(name: string, make: () => Promise<Harness>) {
  describe(name, () => {
    let h: Harness;
    let provisioning: string;
    let provisioningOther: string;
    let delegate: string;
    let tag = 0;

    const post = (path: string, headers: Record<string, string>, body: unknown = {}) =>
      h.call(path, { method: "POST", headers, body: JSON.stringify(body) });
    const get = (path: string, headers: Record<string, string>) => h.call(path, { headers });

    async function adminKey(body: Record<string, unknown>): Promise<string> {
      const reply = await post("/v1/keys", bearer(h.adminKey), { name: "setup", environment: "production", ...body });
      if (reply.status !== 201) throw new Error(`setup key: ${reply.status} ${reply.text}`);
      return reply.json<{ key: string }>().key;
    }

    /** A fresh owner per test: tests do not see each other's keys. */
    const owner = () => ({ type: "application" as const, id: `cust-${++tag}` });

    async function open(
      by: string,
      body: Record<string, unknown>,
    ): Promise<{ id: string; token: string; url: string; expires_at: string }> {
      const reply = await post("/v1/portal-sessions", bearer(by), {
        actor: { id: "host-user-7", email: "person@example.com" },
        policy: { scopes: ["read"] },
        ...body,
      });
      if (reply.status !== 201) throw new Error(`open: ${reply.status} ${reply.text}`);
      return reply.json();
    }

    const inDays = (days: number) => new Date(h.clock.now() + days * DAY).toISOString();

    beforeAll(async () => {
      h = await make();
      // A host backend's key: it may open portal sessions handing out read/write, sandbox or production.
      provisioning = await adminKey({
        owner: { type: "application", id: "host-backend" },
        scopes: ["portal:create"],
        grantable_scopes: ["read", "write"],
        grantable_environments: ["sandbox", "production"],
      });
      provisioningOther = await adminKey({
        owner: { type: "application", id: "other-backend" },
        scopes: ["portal:create"],
        grantable_scopes: ["read"],
        grantable_environments: ["sandbox"],
      });
      delegate = await adminKey({ owner: { type: "application", id: "deleg" }, scopes: ["keys:read", "keys:write", "read"] });
    }, 60_000);
    afterAll(async () => {
      await h?.close();
    });

    it("an admin key opens a session: a kwp_ token once, a hosted-page URL, the owner created on first use", async () => {
      const who = owner();
      const reply = await post("/v1/portal-sessions", bearer(h.adminKey), {
        owner: who,
        policy: { scopes: ["read", "write"], max_expires_in_days: 30, max_keys: 3 },
        actor: { id: "u-1", email: "u1@example.com" },
        return_url: "https://app.example.com/settings",
        app_name: "Example App",
      });
      expect(reply.status, reply.text).toBe(201);
      expect(reply.headers.get("cache-control")).toBe("no-store");
      const body = reply.json<Record<string, unknown> & { token: string; id: string; url: string; expires_at: string }>();
      expect(body.id).toMatch(/^pts_[0-9A-Za-z]{20}$/);
      expect(body.token).toMatch(/^kwp_[A-Za-z0-9_-]{43}$/);
      expect(body.url).toBe(`${h.url}/portal#token=${body.token}`);
      expect(Date.parse(body.expires_at) - h.clock.now()).toBe(900_000);
      expect(body.policy).toEqual({
        scopes: ["read", "write"],
        environments: ["sandbox"],
        max_expires_in_days: 30,
        may_request_production: false,
        max_keys: 3,
      });
      const owners = await get(`/v1/owners/application/${who.id}`, bearer(h.adminKey));
      expect(owners.status).toBe(200);
      const read = await get(`/v1/portal-sessions/${body.id}`, bearer(h.adminKey));
      expect(read.status).toBe(200);
      expect(read.text).not.toContain(body.token);
      expect(read.json()).toMatchObject({ id: body.id, status: "active", actor: { id: "u-1", email: "u1@example.com" } });
      const self = await get("/v1/portal/session", portal(body.token));
      expect(self.status).toBe(200);
      expect(self.json()).toMatchObject({
        id: body.id,
        owner: who,
        return_url: "https://app.example.com/settings",
        app_name: "Example App",
      });
    });

    it("a portal:create key opens sessions within its ceiling only, decided as delegation is", async () => {
      const who = owner();
      await open(provisioning, { owner: who, policy: { scopes: ["read", "write"], environments: ["sandbox", "production"] } });
      const beyond = await post("/v1/portal-sessions", bearer(provisioning), {
        owner: who,
        actor: { id: "x" },
        policy: { scopes: ["read", "payments:refund"] },
      });
      expect(beyond.status).toBe(403);
      expect(beyond.json()).toMatchObject({ code: "FORBIDDEN" });
      expect(beyond.text).toContain("payments:refund");
      const production = await post("/v1/portal-sessions", bearer(provisioningOther), {
        owner: who,
        actor: { id: "x" },
        policy: { scopes: ["read"], environments: ["production"] },
      });
      expect(production.status).toBe(403);
      const management = await post("/v1/portal-sessions", bearer(h.adminKey), {
        owner: who,
        actor: { id: "x" },
        policy: { scopes: ["keys:write"] },
      });
      expect(management.status).toBe(400);
      const wildcard = await post("/v1/portal-sessions", bearer(h.adminKey), { owner: who, actor: { id: "x" }, policy: { scopes: ["*"] } });
      expect(wildcard.status).toBe(400);
      const noScope = await post("/v1/portal-sessions", bearer(delegate), { owner: who, actor: { id: "x" }, policy: { scopes: ["read"] } });
      expect(noScope.status).toBe(403);
      const badReturn = await post("/v1/portal-sessions", bearer(h.adminKey), {
        owner: who,
        actor: { id: "x" },
        policy: { scopes: ["read"] },
        return_url: "http://app.example.com/",
      });
      expect(badReturn.status).toBe(400);
      const tooLong = await post("/v1/portal-sessions", bearer(h.adminKey), {
        owner: who,
        actor: { id: "x" },
        policy: { scopes: ["read"] },
        expires_in_seconds: 4 * 3600 + 1,
      });
      expect(tooLong.status).toBe(400);
    });

    it("the token lists, creates, rotates and revokes its owner's keys within the policy, audited as the portal with the host's person", async () => {
      const who = owner();
      const session = await open(provisioning, { owner: who, policy: { scopes: ["read", "write"], max_expires_in_days: 30 } });
      const headers = portal(session.token);
      const empty = await get("/v1/keys", headers);
      expect(empty.status).toBe(200);
      expect(empty.json<{ data: unknown[] }>().data).toEqual([]);

      const created = await post("/v1/keys", headers, {
        owner: who,
        name: "ci",
        environment: "sandbox",
        scopes: ["read"],
        expires_at: inDays(30),
      });
      expect(created.status, created.text).toBe(201);
      const key = created.json<{ id: string; key: string; environment: string }>();
      expect(key.key).toMatch(/_test_/);
      const listed = await get("/v1/keys", headers);
      expect(listed.json<{ data: Array<{ id: string }> }>().data.map((k) => k.id)).toEqual([key.id]);
      expect((await get(`/v1/keys/${key.id}`, headers)).status).toBe(200);

      const rotated = await post(`/v1/keys/${key.id}/rotate`, headers, { grace_seconds: 0 });
      expect(rotated.status, rotated.text).toBe(201);
      const successor = rotated.json<{ id: string }>();
      const revoked = await post(`/v1/keys/${successor.id}/revoke`, headers, {});
      expect(revoked.status, revoked.text).toBe(200);
      expect(revoked.json()).toMatchObject({ status: "revoked" });

      const usage = await get("/v1/usage", headers);
      expect(usage.status).toBe(200);

      const audit = await get(`/v1/audit-events?key_id=${key.id}`, bearer(h.adminKey));
      const events = audit.json<{
        data: Array<{ action: string; actor: { type: string; id: string }; details: Record<string, unknown> | null }>;
      }>().data;
      const creation = events.find((event) => event.action === "key.created");
      expect(creation?.actor).toEqual({ type: "portal", id: session.id });
      expect(creation?.details).toMatchObject({ host_actor: { id: "host-user-7", email: "person@example.com" } });
    });

    it("refuses everything outside the owner and the policy, as the authority model says", async () => {
      const who = owner();
      const other = owner();
      const session = await open(h.adminKey, { owner: who, policy: { scopes: ["read"], max_expires_in_days: 30, max_keys: 1 } });
      const headers = portal(session.token);
      const otherKey = (
        await post("/v1/keys", bearer(h.adminKey), { owner: other, name: "theirs", environment: "sandbox", scopes: ["read"] })
      ).json<{ id: string }>().id;
      const base = { owner: who, name: "k", environment: "sandbox", scopes: ["read"], expires_at: inDays(10) };
      const cases: Array<[string, Promise<Reply>, number]> = [
        ["a scope outside the policy", post("/v1/keys", headers, { ...base, scopes: ["write"] }), 403],
        ["production without permission", post("/v1/keys", headers, { ...base, environment: "production" }), 403],
        ["no expiry", post("/v1/keys", headers, { ...base, expires_at: null }), 403],
        ["an expiry beyond the maximum", post("/v1/keys", headers, { ...base, expires_at: inDays(31) }), 403],
        ["another owner", post("/v1/keys", headers, { ...base, owner: other }), 403],
        ["a delegation ceiling", post("/v1/keys", headers, { ...base, grantable_scopes: ["read"] }), 403],
        ["another owner's key", get(`/v1/keys/${otherKey}`, headers), 404],
        ["rotating another owner's key", post(`/v1/keys/${otherKey}/rotate`, headers, {}), 404],
        ["revoking another owner's key", post(`/v1/keys/${otherKey}/revoke`, headers, {}), 404],
        [
          "changing a key (not a portal route)",
          h.call(`/v1/keys/${otherKey}`, { method: "PATCH", headers, body: JSON.stringify({ name: "x" }) }),
          403,
        ],
        ["users", get("/v1/users", headers), 403],
        [
          "opening a portal session",
          post("/v1/portal-sessions", headers, { owner: who, actor: { id: "x" }, policy: { scopes: ["read"] } }),
          403,
        ],
        ["reading its own session as a manager", get(`/v1/portal-sessions/${session.id}`, headers), 403],
        ["the audit log", get("/v1/audit-events", headers), 403],
        ["owners", h.call(`/v1/owners/application/${who.id}`, { method: "PATCH", headers, body: JSON.stringify({ disabled: true }) }), 403],
        ["the audit export (key-only)", get("/v1/audit-events/export", headers), 403],
        [
          "importing keys",
          h.call("/v1/keys/import", { method: "POST", headers: { ...headers, "content-type": "application/x-ndjson" }, body: "{}" }),
          403,
        ],
        ["another owner's usage", get(`/v1/usage?key_id=${otherKey}`, headers), 404],
        ["production requests", post("/v1/key-requests", headers, { key_id: otherKey }), 403],
      ];
      for (const [what, pending, status] of cases) {
        const reply = await pending;
        expect(reply.status, `${what}: ${reply.text}`).toBe(status);
      }
      // Nothing was created, and the other owner's key is untouched.
      expect((await get("/v1/keys", headers)).json<{ data: unknown[] }>().data).toEqual([]);
      expect((await get(`/v1/keys/${otherKey}`, bearer(h.adminKey))).json()).toMatchObject({ status: "active" });
      // max_keys: one live key, then no more.
      expect((await post("/v1/keys", headers, base)).status).toBe(201);
      const second = await post("/v1/keys", headers, { ...base, name: "k2" });
      expect(second.status).toBe(403);
    });

    it("asks for a production key only when the policy allows it, and picks it up after an admin approves", async () => {
      const who = owner();
      const denied = await open(h.adminKey, { owner: who, policy: { scopes: ["read"] } });
      const allowed = await open(h.adminKey, {
        owner: who,
        policy: { scopes: ["read"], may_request_production: true, max_expires_in_days: 30 },
      });
      const sandbox = await post("/v1/keys", portal(allowed.token), {
        owner: who,
        name: "app",
        environment: "sandbox",
        scopes: ["read"],
        expires_at: inDays(30),
      });
      expect(sandbox.status, sandbox.text).toBe(201);
      const sandboxId = sandbox.json<{ id: string }>().id;
      expect((await post("/v1/key-requests", portal(denied.token), { key_id: sandboxId })).status).toBe(403);
      const asked = await post("/v1/key-requests", portal(allowed.token), { key_id: sandboxId, reason: "going live" });
      expect(asked.status, asked.text).toBe(201);
      // The production key will expire as the policy's keys must: 30 days after approval, not never.
      expect(asked.json<{ asked: { expires_after_approval_seconds: number } }>().asked.expires_after_approval_seconds).toBe(30 * 86_400);
      const requestId = asked.json<{ id: string }>().id;
      expect((await get("/v1/key-requests", portal(allowed.token))).json<{ data: Array<{ id: string }> }>().data.map((r) => r.id)).toEqual([
        requestId,
      ]);
      // Not before approval; never by itself.
      expect((await post(`/v1/key-requests/${requestId}/claim`, portal(allowed.token))).status).toBe(409);
      expect((await post(`/v1/key-requests/${requestId}/approve`, portal(allowed.token))).status).toBe(403);
      const approved = await post(`/v1/key-requests/${requestId}/approve`, bearer(h.adminKey));
      expect(approved.status, approved.text).toBe(200);
      expect((await post(`/v1/key-requests/${requestId}/claim`, portal(denied.token))).status).toBe(403);
      const claimed = await post(`/v1/key-requests/${requestId}/claim`, portal(allowed.token));
      expect(claimed.status, claimed.text).toBe(201);
      expect(claimed.json()).toMatchObject({ environment: "production", owner: who });
      const expiresAt = Date.parse(claimed.json<{ expires_at: string }>().expires_at);
      expect(expiresAt - Date.now()).toBeGreaterThan(29 * 86_400_000);
      expect(expiresAt - Date.now()).toBeLessThanOrEqual(30 * 86_400_000);
      // Another owner's session cannot claim it.
      const stranger = await open(h.adminKey, { owner: owner(), policy: { scopes: ["read"], may_request_production: true } });
      expect((await post(`/v1/key-requests/${requestId}/claim`, portal(stranger.token))).status).toBe(404);
    });

    it("answers 401 with a clear code for an unknown, revoked or expired token, and when the opening key stops", async () => {
      const who = owner();
      const garbage = await get("/v1/keys", portal("kwp_nope"));
      expect(garbage.status).toBe(401);
      expect(garbage.json()).toMatchObject({ code: "PORTAL_TOKEN_INVALID" });

      const revoked = await open(provisioning, { owner: who });
      expect(
        (await h.call(`/v1/portal-sessions/${revoked.id}`, { method: "DELETE", headers: { authorization: `Bearer ${provisioningOther}` } }))
          .status,
      ).toBe(404);
      const deleted = await h.call(`/v1/portal-sessions/${revoked.id}`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${provisioning}` },
      });
      expect(deleted.status, deleted.text).toBe(200);
      expect(deleted.json()).toMatchObject({ status: "revoked" });
      const afterRevoke = await get("/v1/keys", portal(revoked.token));
      expect(afterRevoke.status).toBe(401);
      expect(afterRevoke.json()).toMatchObject({ code: "PORTAL_SESSION_REVOKED" });

      const expiring = await open(h.adminKey, { owner: who, expires_in_seconds: 60 });
      expect((await get("/v1/keys", portal(expiring.token))).status).toBe(200);
      h.clock.advance(61_000);
      const expired = await get("/v1/keys", portal(expiring.token));
      expect(expired.status).toBe(401);
      expect(expired.json()).toMatchObject({ code: "PORTAL_SESSION_EXPIRED" });

      // A session lives no longer than the key that opened it.
      const opener = await adminKey({
        owner: { type: "application", id: `opener-${tag}` },
        scopes: ["portal:create"],
        grantable_scopes: ["read"],
        grantable_environments: ["sandbox"],
      });
      const openerId = (await get("/v1/introspect", { authorization: `Bearer ${opener}` })).json<{ id: string }>().id;
      const orphan = await open(opener, { owner: who });
      expect((await post(`/v1/keys/${openerId}/revoke`, bearer(h.adminKey))).status).toBe(200);
      const orphaned = await get("/v1/keys", portal(orphan.token));
      expect(orphaned.status).toBe(401);
      expect(orphaned.json()).toMatchObject({ code: "PORTAL_SESSION_REVOKED" });
    });

    it("pins a session to its allowed origin", async () => {
      const session = await open(h.adminKey, { owner: owner(), allowed_origin: HOST });
      expect((await get("/v1/keys", portal(session.token, { origin: HOST }))).status).toBe(200);
      expect((await get("/v1/keys", portal(session.token))).status).toBe(200);
      expect((await get("/v1/keys", portal(session.token, { origin: "https://evil.example" }))).status).toBe(403);
    });

    it("gives CORS headers to configured origins on the portal routes only, with no credentials mode", async () => {
      const session = await open(h.adminKey, { owner: owner() });
      const preflight = await h.call("/v1/keys", {
        method: "OPTIONS",
        headers: { origin: HOST, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get("access-control-allow-origin")).toBe(HOST);
      expect(preflight.headers.get("access-control-allow-headers")).toContain("authorization");
      expect(preflight.headers.get("access-control-allow-credentials")).toBeNull();
      const rotate = await h.call("/v1/keys/key_AAAAAAAAAAAAAAAAAAAA/rotate", {
        method: "OPTIONS",
        headers: { origin: HOST, "access-control-request-method": "POST" },
      });
      expect(rotate.headers.get("access-control-allow-origin")).toBe(HOST);

      const unknown = await h.call("/v1/keys", {
        method: "OPTIONS",
        headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
      });
      expect(unknown.headers.get("access-control-allow-origin")).toBeNull();
      const management = await h.call("/v1/users", {
        method: "OPTIONS",
        headers: { origin: HOST, "access-control-request-method": "GET" },
      });
      expect(management.headers.get("access-control-allow-origin")).toBeNull();

      const list = await get("/v1/keys", portal(session.token, { origin: HOST }));
      expect(list.status).toBe(200);
      expect(list.headers.get("access-control-allow-origin")).toBe(HOST);
      expect(list.headers.get("vary")).toContain("Origin");
      const foreign = await get("/v1/keys", portal(session.token, { origin: "https://evil.example" }));
      expect(foreign.headers.get("access-control-allow-origin")).toBeNull();
      const users = await get("/v1/users", { ...bearer(h.adminKey), origin: HOST });
      expect(users.headers.get("access-control-allow-origin")).toBeNull();
    });

    it("serves the element with an ETag, and the hosted page under a strict CSP", async () => {
      const script = await h.call("/embed/keys.js");
      expect(script.status).toBe(200);
      expect(script.headers.get("content-type")).toContain("text/javascript");
      const etag = script.headers.get("etag") as string;
      expect(etag).toMatch(/^"/);
      expect(script.text).toContain("export class KeywardKeys");
      expect((await h.call("/embed/keys.js", { headers: { "if-none-match": etag } })).status).toBe(304);
      expect((await h.call("/embed/nope.js")).status).toBe(404);
      const page = await h.call("/portal");
      expect(page.status).toBe(200);
      expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
      expect(page.headers.get("content-security-policy")).not.toContain("unsafe-inline");
      expect(page.text).toContain('src="/embed/portal.js"');
      expect(page.text).not.toMatch(/<script>(?!<\/script>)/);
    });
  });
}

suite("portal sessions on SQLite", sqliteHarness);

const available = await backendsAvailable();
if (available) suite("portal sessions on PostgreSQL", postgresHarness);
else describe.skip("portal sessions on PostgreSQL (no PostgreSQL)", () => it("skipped", () => undefined));
