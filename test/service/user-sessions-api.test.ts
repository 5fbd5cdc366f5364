import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { UserRecord } from "../../src/core/accounts.js";
import { generateId } from "../../src/core/random.js";
import { accountStoreFor } from "../../src/service/account-store-factory.js";
import { createMember, type SignedIn, sessionHeaders, setupAdmin, signIn } from "../helpers/people.js";
import { createKeyOverHttp, jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

let service: TestService;
let admin: SignedIn;
beforeEach(async () => {
  service = await startTestService();
  admin = await setupAdmin(service);
});
afterEach(async () => {
  await service.close();
});

const code = (response: { json: () => unknown }) => (response.json() as { code: string }).code;
const as = (who: SignedIn | string, extra: Record<string, string> = {}) =>
  typeof who === "string" ? { ...jsonHeaders(who), ...extra } : sessionHeaders(service, who, extra);
const get = (path: string, who: SignedIn | string) => service.call(path, { headers: as(who) });
/** A DELETE carries no body, so no content type (as the dashboard sends it). */
const del = (path: string, who: SignedIn | string) => {
  const { "content-type": _, ...headers } = as(who);
  return service.call(path, { method: "DELETE", headers });
};

interface SessionInfo {
  id: string;
  created_at: string;
  last_seen_at: string;
  ip: string | null;
  user_agent: string | null;
  current: boolean;
}
const sessionsOf = async (userId: string, who: SignedIn | string) =>
  ((await get(`/v1/users/${userId}/sessions`, who)).json() as { data: SessionInfo[] }).data;
const auditDetails = (action: string) =>
  (
    service.store.db.prepare("SELECT target_id, details FROM audit_events WHERE action = ? ORDER BY seq").all(action) as {
      target_id: string;
      details: string;
    }[]
  ).map((row): Record<string, unknown> => ({ target: row.target_id, ...(JSON.parse(row.details) as Record<string, unknown>) }));

describe("a person's sessions (administrators)", () => {
  it("lists live sessions with a public id and no secret, marks the caller's own, and ends one or all, audited", async () => {
    const bob = await createMember(service, admin, "bob@example.com");
    const bobAgain = await signIn(service, "bob@example.com", "member password 1");
    const listed = await get(`/v1/users/${bob.userId}/sessions`, admin);
    expect(listed.status).toBe(200);
    expect(listed.headers.get("cache-control")).toBe("no-store");
    const sessions = (listed.json() as { data: SessionInfo[] }).data;
    expect(sessions).toHaveLength(2);
    for (const session of sessions) {
      expect(Object.keys(session).sort()).toEqual(["created_at", "current", "id", "ip", "last_seen_at", "user_agent"]);
      expect(session.id).toMatch(/^ses_[0-9A-Za-z]{20}$/);
      expect(session.current).toBe(false);
      expect(session.ip).toBe("127.0.0.1");
    }
    // Neither token, digest nor CSRF token is in the answer.
    for (const secret of [bob.cookie.split("=")[1], bobAgain.cookie.split("=")[1], bob.csrf, bobAgain.csrf])
      expect(listed.text).not.toContain(secret as string);
    const digests = (service.store.db.prepare("SELECT digest FROM sessions").all() as { digest: string }[]).map((r) => r.digest);
    for (const digest of digests) expect(listed.text).not.toContain(digest);

    const mine = await sessionsOf(admin.userId, admin);
    expect(mine.map((s) => s.current)).toEqual([true]);
    expect(await sessionsOf(admin.userId, service.adminKey)).toEqual([{ ...mine[0], current: false }]);

    // End one: that session is signed out at its next request, the other still works.
    const newest = sessions[0] as SessionInfo;
    const endOne = await del(`/v1/users/${bob.userId}/sessions/${newest.id}`, admin);
    expect(endOne.status).toBe(200);
    expect(endOne.json()).toEqual({ ended: 1 });
    expect((await get("/v1/session", bobAgain)).status).toBe(401);
    expect((await get("/v1/session", bob)).status).toBe(200);
    expect((await del(`/v1/users/${bob.userId}/sessions/${newest.id}`, admin)).status).toBe(404);

    // End all: the member's next request is 401.
    const endAll = await del(`/v1/users/${bob.userId}/sessions`, admin);
    expect(endAll.json()).toEqual({ ended: 1 });
    const after = await get("/v1/keys", bob);
    expect(after.status).toBe(401);
    expect(code(after)).toBe("SESSION_REQUIRED");
    expect(await sessionsOf(bob.userId, admin)).toEqual([]);
    expect((await del(`/v1/users/${bob.userId}/sessions`, admin)).json()).toEqual({ ended: 0 });
    expect(auditDetails("session.ended")).toEqual([
      { target: bob.userId, count: 1, scope: "one", session_id: newest.id },
      { target: bob.userId, count: 1, scope: "all" },
    ]);
  });

  it("refuses members, and callers with fewer rights than the person whose sessions they would end", async () => {
    const bob = await createMember(service, admin, "bob@example.com");
    const carol = await createMember(service, admin, "carol@example.com");
    // A member may neither list nor end another person's sessions.
    const peek = await get(`/v1/users/${carol.userId}/sessions`, bob);
    expect(peek.status).toBe(403);
    expect(code(peek)).toBe("FORBIDDEN");
    expect((await del(`/v1/users/${carol.userId}/sessions`, bob)).status).toBe(403);
    // A users:write key without what a member holds ends nobody's sessions.
    const usersOnly = await createKeyOverHttp(service, {
      owner: { type: "application", id: "provisioner" },
      scopes: ["users:write"],
      environment: "sandbox",
    });
    expect((await del(`/v1/users/${carol.userId}/sessions`, usersOnly.key)).status).toBe(403);
    // A key holding a member's rights ends a member's sessions, never an administrator's.
    const manager = await createKeyOverHttp(service, {
      owner: { type: "application", id: "provisioner" },
      scopes: ["users:write", "keys:read", "keys:write", "read", "write"],
      environment: "sandbox",
    });
    expect((await del(`/v1/users/${carol.userId}/sessions`, manager.key)).json()).toEqual({ ended: 1 });
    const refused = await del(`/v1/users/${admin.userId}/sessions`, manager.key);
    expect(refused.status).toBe(403);
    expect(code(refused)).toBe("FORBIDDEN");
    expect((await get("/v1/session", admin)).status).toBe(200);
    expect((await get("/v1/session", carol)).status).toBe(401);
    expect((await get("/v1/session", bob)).status).toBe(200);
  });

  it("answers 404 for an unknown person or session and 400 for malformed ids", async () => {
    const bob = await createMember(service, admin, "bob@example.com");
    const unknownUser = generateId("usr");
    for (const response of [
      await get(`/v1/users/${unknownUser}/sessions`, admin),
      await del(`/v1/users/${unknownUser}/sessions`, admin),
      await del(`/v1/users/${unknownUser}/sessions/${generateId("ses")}`, admin),
      await del(`/v1/users/${bob.userId}/sessions/${generateId("ses")}`, admin),
    ]) {
      expect(response.status).toBe(404);
      expect(code(response)).toBe("RESOURCE_NOT_FOUND");
    }
    // Another person's session id under this person is not found either.
    const adminSession = (await sessionsOf(admin.userId, admin))[0] as SessionInfo;
    expect((await del(`/v1/users/${bob.userId}/sessions/${adminSession.id}`, admin)).status).toBe(404);
    for (const response of [
      await get("/v1/users/nobody/sessions", admin),
      await del(`/v1/users/${bob.userId}/sessions/not-a-session`, admin),
      await del(`/v1/users/${bob.userId}/sessions/key_AAAAAAAAAAAAAAAAAAAA`, admin),
      await del("/v1/session/ses_short", bob),
    ]) {
      expect(response.status).toBe(400);
      expect(code(response)).toBe("VALIDATION_FAILED");
    }
    expect((await get("/v1/session", bob)).status).toBe(200);
  });
});

describe("your own sessions", () => {
  it("lists them, signs out the others, and ends one of yours only", async () => {
    const bob = await createMember(service, admin, "bob@example.com");
    const phone = await signIn(service, "bob@example.com", "member password 1");
    const tablet = await signIn(service, "bob@example.com", "member password 1");
    const listed = await get("/v1/session/all", bob);
    expect(listed.status).toBe(200);
    const own = (listed.json() as { data: SessionInfo[] }).data;
    expect(own).toHaveLength(3);
    expect(own.filter((s) => s.current)).toHaveLength(1);
    expect((await get("/v1/session/all", "kw_AAAA")).status).toBe(401);
    // Another person's session cannot be ended through your own routes.
    const adminSession = (await sessionsOf(admin.userId, admin))[0] as SessionInfo;
    expect((await del(`/v1/session/${adminSession.id}`, bob)).status).toBe(404);
    expect((await get("/v1/session", admin)).status).toBe(200);
    // One of yours.
    const tabletId = ((await get("/v1/session/all", tablet)).json() as { data: SessionInfo[] }).data.find((s) => s.current)?.id;
    expect((await del(`/v1/session/${tabletId}`, bob)).json()).toEqual({ ended: 1 });
    expect((await get("/v1/session", tablet)).status).toBe(401);
    // Every other one.
    const others = await del("/v1/session/others", bob);
    expect(others.status).toBe(200);
    expect(others.json()).toEqual({ ended: 1 });
    expect((await get("/v1/session", phone)).status).toBe(401);
    expect((await get("/v1/session", bob)).status).toBe(200);
    expect(((await get("/v1/session/all", bob)).json() as { data: SessionInfo[] }).data.map((s) => s.current)).toEqual([true]);
    // This one: signs you out, and clears the cookie.
    const self = ((await get("/v1/session/all", bob)).json() as { data: SessionInfo[] }).data[0] as SessionInfo;
    const out = await del(`/v1/session/${self.id}`, bob);
    expect(out.json()).toEqual({ ended: 1 });
    expect(out.headers.get("set-cookie")).toMatch(/^kw_session=; /);
    expect((await get("/v1/session", bob)).status).toBe(401);
    expect(auditDetails("session.ended").map((e) => [e.scope, e.count])).toEqual([
      ["one", 1],
      ["others", 1],
      ["one", 1],
    ]);
  });
});

describe("GET /v1/users: paging and search", () => {
  it("walks 131 users page by page without duplicates or misses, with the total, and searches on the server", async () => {
    const store = accountStoreFor(service.store);
    if (!store) throw new Error("no account store");
    const base = Date.now();
    for (let i = 0; i < 130; i++) {
      const user: UserRecord = {
        id: generateId("usr"),
        email: `person${String(i).padStart(3, "0")}@${i % 2 === 0 ? "Even" : "odd"}.example`.toLowerCase(),
        role: i % 10 === 0 ? "admin" : "member",
        passwordHash: "",
        disabled: i % 3 === 0,
        mustChangePassword: false,
        // Some share an instant: the id breaks the tie.
        createdAt: base + Math.floor(i / 3),
        updatedAt: base,
      };
      await store.insertUser(user, null);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let total: number | undefined;
    let pages = 0;
    do {
      const query: string = `limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : "&include_total=true"}`;
      const response = await get(`/v1/users?${query}`, admin);
      expect(response.status).toBe(200);
      const page = response.json() as { data: { id: string }[]; next_cursor: string | null; has_more: boolean; total?: number };
      expect(page.has_more).toBe(page.next_cursor !== null);
      if (pages === 0) total = page.total;
      else expect(page.total).toBeUndefined();
      seen.push(...page.data.map((u) => u.id));
      cursor = page.next_cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(total).toBe(131);
    expect(seen).toHaveLength(131);
    expect(new Set(seen).size).toBe(131);
    expect(seen[0]).toBe(admin.userId);

    const search = async (query: string) => {
      const response = await get(`/v1/users?${query}`, admin);
      expect(response.status, query).toBe(200);
      return response.json() as { data: { id: string; email: string; role: string; disabled: boolean }[]; total?: number };
    };
    // Case-insensitive email substring; the default page is 50.
    const even = await search("q=EVEN.example&include_total=true");
    expect(even.total).toBe(65);
    expect(even.data).toHaveLength(50);
    expect(even.data.every((u) => u.email.endsWith("@even.example"))).toBe(true);
    expect((await search("q=person12")).data.map((u) => u.email).sort()).toEqual(
      Array.from({ length: 10 }, (_, i) => `person12${i}@${i % 2 === 0 ? "even" : "odd"}.example`),
    );
    // An exact id.
    const one = seen[77] as string;
    expect((await search(`q=${one}`)).data.map((u) => u.id)).toEqual([one]);
    // Wildcards are literal.
    expect((await search("q=%25")).data).toEqual([]);
    // Role and state filters.
    const disabledAdmins = await search("role=admin&disabled=true&include_total=true");
    expect(disabledAdmins.total).toBe(5);
    expect(disabledAdmins.data.every((u) => u.role === "admin" && u.disabled)).toBe(true);
    expect((await search("role=member&disabled=false&include_total=true")).total).toBe(130 - 13 - (44 - 5));
    // Validation.
    for (const query of ["limit=0", "limit=201", "role=owner", "q=", "disabled=maybe", "sort=email"]) {
      const response = await get(`/v1/users?${query}`, admin);
      expect(response.status, query).toBe(400);
      expect(code(response)).toBe("VALIDATION_FAILED");
    }
    const badCursor = await get("/v1/users?cursor=bm90LWEtY3Vyc29y", admin);
    expect(badCursor.status).toBe(400);
    expect(code(badCursor)).toBe("INVALID_CURSOR");
    // Members may not list people.
    const bob = await createMember(service, admin, "bob@example.com");
    expect((await get("/v1/users", bob)).status).toBe(403);
  });
});

describe("GET /v1/key-requests: by owner", () => {
  it("filters by owner type and id on the server, pages, and keeps members to their own", async () => {
    const bob = await createMember(service, admin, "bob@example.com");
    const carol = await createMember(service, admin, "carol@example.com");
    const ask = async (who: SignedIn) => {
      for (let i = 0; i < 2; i++) {
        const key = (
          await service.call("/v1/keys", {
            method: "POST",
            headers: sessionHeaders(service, who),
            body: JSON.stringify({ owner: { type: "user", id: who.userId }, name: `k${i}`, environment: "sandbox", scopes: ["read"] }),
          })
        ).json() as { id: string };
        const asked = await service.call("/v1/key-requests", {
          method: "POST",
          headers: sessionHeaders(service, who),
          body: JSON.stringify({ key_id: key.id }),
        });
        expect(asked.status).toBe(201);
      }
    };
    await ask(bob);
    await ask(carol);
    type Page = { data: { owner: { id: string } }[]; next_cursor: string | null; has_more: boolean };
    const list = async (query: string, who: SignedIn | string = admin) => (await get(`/v1/key-requests?${query}`, who)).json() as Page;
    const bobs = await list(`owner_type=user&owner_id=${bob.userId}&status=pending`);
    expect(bobs.data.map((r) => r.owner.id)).toEqual([bob.userId, bob.userId]);
    expect(bobs.has_more).toBe(false);
    const first = await list(`owner_type=user&owner_id=${carol.userId}&limit=1`);
    expect(first.data.map((r) => r.owner.id)).toEqual([carol.userId]);
    expect(first.has_more).toBe(true);
    const second = await list(`owner_type=user&owner_id=${carol.userId}&limit=1&cursor=${first.next_cursor}`);
    expect(second.data.map((r) => r.owner.id)).toEqual([carol.userId]);
    expect(second.has_more).toBe(false);
    expect((await list(`owner_type=application&owner_id=${bob.userId}`)).data).toEqual([]);
    expect((await list(`owner_id=${bob.userId}&status=approved`)).data).toEqual([]);
    expect((await list("")).data).toHaveLength(4);
    // A member asking for another's requests still sees only their own.
    expect((await list(`owner_type=user&owner_id=${carol.userId}`, bob)).data.map((r) => r.owner.id)).toEqual([bob.userId, bob.userId]);
    const bad = await get("/v1/key-requests?owner_type=group", admin);
    expect(bad.status).toBe(400);
    expect(code(bad)).toBe("VALIDATION_FAILED");
  });
});
