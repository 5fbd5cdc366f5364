import { describe, expect, it } from "vitest";
import type { KeyRequestRecord, UserRecord } from "../../src/core/accounts.js";
import type { AuditEvent, KeyRecord } from "../../src/core/model.js";
import { generateId } from "../../src/core/random.js";
import { buildAuditEvent } from "../../src/engine/audit.js";
import type { AccountStore } from "../../src/ports/account-store.js";
import type { KeyStore } from "../../src/ports/key-store.js";
import { makeKey } from "./key-store.contract.js";

export interface AccountStoreFixture {
  keys: KeyStore;
  accounts: AccountStore;
  close(): Promise<void>;
}

const NOW = Date.UTC(2026, 0, 1);
const audit = (action: string, id = "x"): AuditEvent =>
  buildAuditEvent({ actor: { type: "system", id: "test" } }, NOW, action, { type: "user", id });

function user(email: string, role: UserRecord["role"] = "member"): UserRecord {
  return {
    id: generateId("usr"),
    email,
    role,
    passwordHash: "scrypt$x",
    disabled: false,
    mustChangePassword: false,
    createdAt: NOW,
    updatedAt: NOW,
  };
}

const sandboxKey = (): KeyRecord =>
  makeKey({ owner: { type: "user", id: "usr_owner" }, rateLimit: { requests: 5, per_seconds: 1 }, concurrency: 2 });

function request(sandbox: KeyRecord, createdAt = NOW): KeyRequestRecord {
  return {
    id: generateId("kreq"),
    sandboxKeyId: sandbox.id,
    owner: sandbox.owner,
    requestedBy: { type: "user", id: sandbox.owner.id },
    reason: null,
    status: "pending",
    createdAt,
    decidedAt: null,
    decidedBy: null,
    decisionReason: null,
    issuedKeyId: null,
    claimedAt: null,
    asked: { name: sandbox.name, scopes: sandbox.scopes, rateLimit: null, concurrency: null, quota: null, allowedCidrs: [], metadata: {} },
  };
}

async function auditActions(keys: KeyStore): Promise<string[]> {
  return (await keys.readAuditChain(0, 1000)).map((entry) => String(entry.values[4]));
}

/** One contract for every AccountStore adapter: a new adapter is one file plus one line in its test. */
export function describeAccountStoreContract(name: string, open: () => Promise<AccountStoreFixture>): void {
  describe(`AccountStore contract: ${name}`, () => {
    const withStore = (test: (f: AccountStoreFixture) => Promise<void>) => async () => {
      const fixture = await open();
      try {
        await test(fixture);
      } finally {
        await fixture.close();
      }
    };

    it(
      "keeps organization members by role, audited, and never leaves an organization that had an owner without one",
      withStore(async ({ keys, accounts }) => {
        const [olga, ada] = [user("olga@example.com"), user("ada@example.com")];
        for (const u of [olga, ada]) await accounts.insertUser(u, null);
        const member = (u: UserRecord, role: "owner" | "admin" | "developer" | "viewer") => ({
          organizationId: "acme",
          userId: u.id,
          role,
          addedAt: NOW,
          addedBy: "user:usr_admin",
        });
        expect(await accounts.saveMembership(member(olga, "owner"), audit("organization.member_added"))).toBe("done");
        expect(await accounts.saveMembership(member(ada, "developer"), audit("organization.member_added"))).toBe("done");
        expect(await accounts.getMembership("acme", ada.id)).toEqual(member(ada, "developer"));
        // The only owner can neither step down nor go; nothing is written or audited when refused.
        expect(await accounts.saveMembership(member(olga, "admin"), audit("organization.member_role_changed"))).toBe("last_owner");
        expect(await accounts.removeMembership("acme", olga.id, audit("organization.member_removed"))).toBe("last_owner");
        expect(await accounts.saveMembership(member(ada, "owner"), audit("organization.member_role_changed"))).toBe("done");
        expect(await accounts.removeMembership("acme", olga.id, audit("organization.member_removed"))).toBe("done");
        expect(await accounts.removeMembership("acme", olga.id, audit("organization.member_removed"))).toBe("not_found");
        expect((await accounts.listOrganizationMembers("acme")).map((m) => [m.userId, m.role])).toEqual([[ada.id, "owner"]]);
        expect((await accounts.listMembershipsOfUser(ada.id)).map((m) => m.organizationId)).toEqual(["acme"]);
        expect(await accounts.listMembershipsOfUser(olga.id)).toEqual([]);
        expect(await auditActions(keys)).toEqual([
          "organization.member_added",
          "organization.member_added",
          "organization.member_role_changed",
          "organization.member_removed",
        ]);
      }),
    );

    it(
      "inserts a user with its audit event, and refuses a second user with the same email",
      withStore(async ({ keys, accounts }) => {
        expect(await accounts.insertUser(user("a@example.com"), audit("user.created"))).toBe(true);
        expect(await accounts.insertUser(user("a@example.com"), audit("user.created"))).toBe(false);
        expect(await accounts.countUsers()).toBe(1);
        expect(await auditActions(keys)).toEqual(["user.created"]);
      }),
    );

    it(
      "creates the first admin only with the current, unexpired token, and only once",
      withStore(async ({ accounts }) => {
        await accounts.setSetupToken("old", NOW + 1000);
        await accounts.setSetupToken("token", NOW + 1000);
        expect(await accounts.createFirstAdmin("old", user("a@example.com", "admin"), audit("user.created"), NOW)).toBe(false);
        expect(await accounts.createFirstAdmin("token", user("a@example.com", "admin"), audit("user.created"), NOW + 1000)).toBe(false);
        expect(await accounts.createFirstAdmin("token", user("a@example.com", "admin"), audit("user.created"), NOW)).toBe(true);
        expect(await accounts.createFirstAdmin("token", user("b@example.com", "admin"), audit("user.created"), NOW)).toBe(false);
        expect(await accounts.countUsers()).toBe(1);
      }),
    );

    it(
      "ends a user's sessions when the user is disabled",
      withStore(async ({ accounts }) => {
        const u = user("a@example.com");
        await accounts.insertUser(u, null);
        const session = {
          id: generateId("ses"),
          digest: "d1",
          userId: u.id,
          csrfToken: "c",
          createdAt: NOW,
          lastSeenAt: NOW,
          ip: null,
          userAgent: null,
        };
        await accounts.insertSession(session, audit("session.signed_in"));
        expect(await accounts.getSession("d1")).toEqual(session);
        const updated = await accounts.updateUser(u.id, { disabled: true }, audit("user.disabled"), NOW + 1);
        expect(updated?.disabled).toBe(true);
        expect(await accounts.getSession("d1")).toBeNull();
      }),
    );

    it(
      "keeps one link per user, uses it once (setting the password, ending sessions), and drops it when expired or the user is disabled",
      withStore(async ({ keys, accounts }) => {
        const u = { ...user("a@example.com"), passwordHash: "", mustChangePassword: true };
        await accounts.insertUser(u, null);
        expect(await accounts.getUser(u.id)).toMatchObject({ passwordHash: "", mustChangePassword: true });
        const link = (digest: string, purpose: "invite" | "reset" = "invite", expiresAt = NOW + 1000) => ({
          digest,
          userId: u.id,
          purpose,
          createdAt: NOW,
          expiresAt,
        });
        await accounts.insertUserLink(link("old"), audit("user.invited", u.id));
        await accounts.insertUserLink(link("new"), audit("user.invited", u.id));
        expect(await accounts.getUserLink("old")).toBeNull();
        expect(await accounts.getUserLink("new")).toEqual(link("new"));
        await accounts.insertSession(
          { id: generateId("ses"), digest: "s1", userId: u.id, csrfToken: "c", createdAt: NOW, lastSeenAt: NOW, ip: null, userAgent: null },
          audit("session.signed_in"),
        );
        // Wrong purpose, or expired at `now`: nothing changes.
        expect(await accounts.consumeUserLink("new", u.id, "reset", "scrypt$y", audit("user.invite_accepted", u.id), NOW)).toBeNull();
        expect(
          await accounts.consumeUserLink("new", u.id, "invite", "scrypt$y", audit("user.invite_accepted", u.id), NOW + 1000),
        ).toBeNull();
        const used = await accounts.consumeUserLink("new", u.id, "invite", "scrypt$y", audit("user.invite_accepted", u.id), NOW + 1);
        expect(used).toMatchObject({ passwordHash: "scrypt$y", mustChangePassword: false });
        expect(await accounts.consumeUserLink("new", u.id, "invite", "scrypt$z", audit("user.invite_accepted", u.id), NOW + 1)).toBeNull();
        expect(await accounts.getSession("s1")).toBeNull();
        expect(await accounts.getUserLink("new")).toBeNull();
        expect(await auditActions(keys)).toEqual(["user.invited", "user.invited", "session.signed_in", "user.invite_accepted"]);

        await accounts.insertUserLink(link("reset", "reset"), audit("user.password_reset_issued", u.id));
        await accounts.updateUser(u.id, { disabled: true }, audit("user.disabled", u.id), NOW + 2);
        expect(await accounts.getUserLink("reset")).toBeNull();
        await accounts.insertUserLink(link("late", "reset"), audit("user.password_reset_issued", u.id));
        expect(await accounts.consumeUserLink("late", u.id, "reset", "scrypt$w", audit("user.password_reset", u.id), NOW + 3)).toBeNull();
        await accounts.updateUser(u.id, { disabled: false, mustChangePassword: true }, audit("user.enabled", u.id), NOW + 4);
        expect((await accounts.getUser(u.id))?.mustChangePassword).toBe(true);
        expect(await accounts.deleteExpiredUserLinks(NOW + 999)).toBe(0);
        expect(await accounts.deleteExpiredUserLinks(NOW + 1000)).toBe(1);
        expect(await accounts.getUserLink("late")).toBeNull();
      }),
    );

    it(
      "caps a user's sessions at insert, ending the oldest and never the new one",
      withStore(async ({ accounts }) => {
        const u = user("a@example.com");
        const other = user("b@example.com");
        await accounts.insertUser(u, null);
        await accounts.insertUser(other, null);
        const session = (digest: string, userId: string, createdAt: number) => ({
          id: generateId("ses"),
          digest,
          userId,
          csrfToken: "c",
          createdAt,
          lastSeenAt: createdAt,
          ip: "203.0.113.1",
          userAgent: "ua",
        });
        await accounts.insertSession(session("theirs", other.id, NOW), audit("session.signed_in"), 2);
        for (let i = 1; i <= 3; i++) await accounts.insertSession(session(`d${i}`, u.id, NOW + i), audit("session.signed_in"), 2);
        expect(await accounts.getSession("d1")).toBeNull();
        expect(await accounts.getSession("d2")).not.toBeNull();
        expect(await accounts.getSession("d3")).not.toBeNull();
        // Same instant as the newest: the new session is kept whatever its digest sorts as.
        await accounts.insertSession(session("a0", u.id, NOW + 3), audit("session.signed_in"), 2);
        expect(await accounts.getSession("a0")).not.toBeNull();
        expect(await accounts.getSession("d2")).toBeNull();
        expect(await accounts.getSession("theirs")).not.toBeNull();
        // Without a cap nothing ends.
        await accounts.insertSession(session("d9", u.id, NOW + 9), audit("session.signed_in"));
        expect(await accounts.getSession("d3")).not.toBeNull();
      }),
    );

    it(
      "deletes expired sessions (idle or past the absolute timeout) and keeps live ones",
      withStore(async ({ accounts }) => {
        const u = user("a@example.com");
        await accounts.insertUser(u, null);
        const base = { userId: u.id, csrfToken: "c", ip: "203.0.113.1", userAgent: "ua" };
        await accounts.insertSession(
          { ...base, id: generateId("ses"), digest: "idle", createdAt: NOW, lastSeenAt: NOW },
          audit("session.signed_in"),
        );
        await accounts.insertSession(
          { ...base, id: generateId("ses"), digest: "old", createdAt: NOW - 100, lastSeenAt: NOW + 50 },
          audit("session.signed_in"),
        );
        await accounts.insertSession(
          { ...base, id: generateId("ses"), digest: "live", createdAt: NOW, lastSeenAt: NOW + 50 },
          audit("session.signed_in"),
        );
        expect(await accounts.deleteExpiredSessions(NOW + 10, NOW - 10)).toBe(2);
        expect(await accounts.getSession("idle")).toBeNull();
        expect(await accounts.getSession("old")).toBeNull();
        expect(await accounts.getSession("live")).not.toBeNull();
        expect(await accounts.deleteExpiredSessions(NOW + 10, NOW - 10)).toBe(0);
      }),
    );

    it(
      "keeps one pending request per sandbox key",
      withStore(async ({ accounts }) => {
        const sandbox = sandboxKey();
        expect(await accounts.insertKeyRequest(request(sandbox), audit("key_request.created"))).toBe("created");
        expect(await accounts.insertKeyRequest(request(sandbox), audit("key_request.created"))).toBe("conflict");
      }),
    );

    it(
      "approves once, inserting the key and both audit events in one transaction",
      withStore(async ({ keys, accounts }) => {
        const sandbox = sandboxKey();
        await keys.insertKey(sandbox, audit("key.created"));
        const pending = request(sandbox);
        await accounts.insertKeyRequest(pending, audit("key_request.created"));
        const production: KeyRecord = { ...sandboxKey(), environment: "production", ref: "kw_live_…wxyz" };
        const events = [audit("key.created"), audit("key_request.approved")];
        expect(await accounts.approveKeyRequest(pending.id, "usr_admin", NOW, production, events)).toBe("done");
        expect(await accounts.approveKeyRequest(pending.id, "usr_admin", NOW, { ...production, id: generateId("key") }, events)).toBe(
          "conflict",
        );
        expect(await accounts.rejectKeyRequest(pending.id, "usr_admin", NOW, "late", audit("key_request.rejected"))).toBe("conflict");
        expect(await keys.getKey(production.id)).toMatchObject({ environment: "production", rateLimit: { requests: 5, per_seconds: 1 } });
        expect(await accounts.getKeyRequest(pending.id)).toMatchObject({ status: "approved", issuedKeyId: production.id });
        expect(await auditActions(keys)).toEqual(["key.created", "key_request.created", "key.created", "key_request.approved"]);
      }),
    );

    it(
      "lets an approved key be claimed once, setting its secret",
      withStore(async ({ keys, accounts }) => {
        const sandbox = sandboxKey();
        const pending = request(sandbox);
        await accounts.insertKeyRequest(pending, audit("key_request.created"));
        const production: KeyRecord = { ...sandboxKey(), environment: "production", awaitingPickup: true };
        await accounts.approveKeyRequest(pending.id, "usr_admin", NOW, production, [audit("key_request.approved")]);
        expect((await keys.getKey(production.id))?.awaitingPickup).toBe(true);
        const secret = { digest: "new-digest", hashVersion: 0, ref: "kw_live_…new1" };
        expect(await accounts.claimKeyRequest(pending.id, NOW, secret, audit("key_request.claimed"))).toBe("done");
        expect((await keys.getKey(production.id))?.awaitingPickup).toBe(false);
        expect(await accounts.claimKeyRequest(pending.id, NOW, { ...secret, digest: "other" }, audit("key_request.claimed"))).toBe(
          "conflict",
        );
        expect((await keys.findKeyByDigest("new-digest"))?.key.id).toBe(production.id);
        expect(await accounts.claimKeyRequest(generateId("kreq"), NOW, secret, audit("key_request.claimed"))).toBe("not_found");
      }),
    );

    it(
      "lists requests newest first, by owner and status, page by page",
      withStore(async ({ accounts }) => {
        const ids: string[] = [];
        for (let i = 0; i < 3; i++) {
          const r = request(sandboxKey(), NOW + i);
          ids.unshift(r.id);
          await accounts.insertKeyRequest(r, audit("key_request.created"));
        }
        const first = await accounts.listKeyRequests({ owner: { type: "user", id: "usr_owner" }, status: "pending" }, 2, null);
        expect(first.requests.map((r) => r.id)).toEqual(ids.slice(0, 2));
        const second = await accounts.listKeyRequests({}, 2, first.next);
        expect(second.requests.map((r) => r.id)).toEqual(ids.slice(2));
        expect(second.next).toBeNull();
        expect((await accounts.listKeyRequests({ status: "approved" }, 10, null)).requests).toEqual([]);
      }),
    );

    it(
      "pages users oldest first, searches email (case-insensitive) or an exact id, filters role and state, and counts",
      withStore(async ({ accounts }) => {
        const made: UserRecord[] = [];
        for (let i = 0; i < 23; i++) {
          const u = { ...user(`person${String(i).padStart(2, "0")}@Example.com`.toLowerCase(), i % 5 === 0 ? "admin" : "member") };
          u.createdAt = NOW + Math.floor(i / 2); // pairs share an instant: the id breaks the tie
          u.disabled = i % 7 === 0;
          made.push(u);
          await accounts.insertUser(u, null);
        }
        const order = [...made].sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1)).map((u) => u.id);
        const seen: string[] = [];
        let after = null;
        do {
          const page: Awaited<ReturnType<AccountStore["listUsers"]>> = await accounts.listUsers({}, 5, after);
          seen.push(...page.users.map((u) => u.id));
          after = page.next;
        } while (after);
        expect(seen).toEqual(order);
        expect(await accounts.countUsers({})).toBe(23);
        const search = await accounts.listUsers({ search: { email: "PERSON1" } }, 50, null);
        expect(search.users.map((u) => u.email).sort()).toEqual(made.filter((u) => u.email.startsWith("person1")).map((u) => u.email));
        expect(await accounts.countUsers({ search: { email: "person1" } })).toBe(10);
        // LIKE's wildcards are literal.
        expect((await accounts.listUsers({ search: { email: "%" } }, 50, null)).users).toEqual([]);
        const target = made[17] as UserRecord;
        expect((await accounts.listUsers({ search: { email: target.id, id: target.id } }, 50, null)).users.map((u) => u.id)).toEqual([
          target.id,
        ]);
        const admins = await accounts.listUsers({ role: "admin", disabled: false }, 50, null);
        expect(admins.users.map((u) => u.id).sort()).toEqual(
          made
            .filter((u) => u.role === "admin" && !u.disabled)
            .map((u) => u.id)
            .sort(),
        );
        expect(await accounts.countUsers({ disabled: true })).toBe(made.filter((u) => u.disabled).length);
      }),
    );

    it(
      "lists a user's live sessions newest first, and ends one, the others or all with one audit event in the same transaction",
      withStore(async ({ keys, accounts }) => {
        const u = user("a@example.com");
        const other = user("b@example.com");
        await accounts.insertUser(u, null);
        await accounts.insertUser(other, null);
        const session = (digest: string, userId: string, createdAt: number, lastSeenAt = createdAt) => ({
          id: generateId("ses"),
          digest,
          userId,
          csrfToken: "c",
          createdAt,
          lastSeenAt,
          ip: "203.0.113.1",
          userAgent: "ua",
        });
        const s1 = session("d1", u.id, NOW + 1);
        const s2 = session("d2", u.id, NOW + 2);
        const s3 = session("d3", u.id, NOW + 3);
        const idle = session("d4", u.id, NOW - 50, NOW - 50);
        const theirs = session("d5", other.id, NOW + 1);
        for (const s of [s1, s2, s3, idle, theirs]) await accounts.insertSession(s, audit("session.signed_in"));
        const live = await accounts.listUserSessions(u.id, NOW, NOW - 10);
        expect(live.map((s) => s.id)).toEqual([s3.id, s2.id, s1.id]);
        expect(live[0]).toEqual(s3);
        const ended = (n: number) =>
          buildAuditEvent({ actor: { type: "system", id: "test" } }, NOW, "session.ended", { type: "user", id: u.id }, null, { count: n });
        // Another user's session id ends nothing and writes nothing.
        expect(await accounts.endUserSessions(u.id, { sessionId: theirs.id }, ended)).toBe(0);
        expect(await accounts.endUserSessions(u.id, { sessionId: s1.id }, ended)).toBe(1);
        expect(await accounts.getSession("d1")).toBeNull();
        expect(await accounts.endUserSessions(u.id, { exceptDigest: "d3" }, ended)).toBe(2);
        expect(await accounts.getSession("d3")).not.toBeNull();
        expect(await accounts.endUserSessions(u.id, {}, ended)).toBe(1);
        expect(await accounts.endUserSessions(u.id, {}, ended)).toBe(0);
        expect(await accounts.getSession("d5")).not.toBeNull();
        expect((await auditActions(keys)).filter((a) => a === "session.ended")).toHaveLength(3);
        const counts = (await keys.listAuditEvents({ action: "session.ended" }, 10, null)).events.map((e) => e.details?.count);
        expect(counts).toEqual([1, 2, 1]);
      }),
    );

    it(
      "lists requests by owner type and id apart",
      withStore(async ({ accounts }) => {
        const mine = request(makeKey({ owner: { type: "user", id: "usr_a" } }));
        const app = request(makeKey({ owner: { type: "application", id: "usr_a" } }), NOW + 1);
        const theirs = request(makeKey({ owner: { type: "user", id: "usr_b" } }), NOW + 2);
        for (const r of [mine, app, theirs]) await accounts.insertKeyRequest(r, audit("key_request.created"));
        const ids = async (filter: Parameters<AccountStore["listKeyRequests"]>[0]) =>
          (await accounts.listKeyRequests(filter, 10, null)).requests.map((r) => r.id);
        expect(await ids({ ownerType: "user", ownerId: "usr_a" })).toEqual([mine.id]);
        expect(await ids({ ownerId: "usr_a" })).toEqual([app.id, mine.id]);
        expect(await ids({ ownerType: "user" })).toEqual([theirs.id, mine.id]);
        expect(await ids({ ownerType: "user", ownerId: "usr_a", status: "approved" })).toEqual([]);
      }),
    );
  });
}
