import { afterEach, describe, expect, it } from "vitest";
import { generateRandomBase62 } from "../../src/core/random.js";
import { ManualClock } from "../../src/ports/clock.js";
import { createMember, type SignedIn, sessionHeaders, setupAdmin, signIn } from "../helpers/people.js";
import { createKeyOverHttp, jsonHeaders, startTestService, type TestService, type TestServiceOptions } from "../helpers/service.js";

let service: TestService;
afterEach(async () => {
  await service?.close();
});

async function start(options: TestServiceOptions = {}): Promise<TestService> {
  service = await startTestService(options);
  return service;
}

interface Link {
  purpose: "invite" | "reset";
  token: string;
  path: string;
  url: string;
  expires_at: string;
}

const publicPost = (path: string, body: unknown) =>
  service.call(path, { method: "POST", headers: { "content-type": "application/json", origin: service.url }, body: JSON.stringify(body) });

/** A user created without a password, by an admin key or session: the user and its invite link. */
async function invite(email: string, by: SignedIn | string, role: "admin" | "member" = "member") {
  const response = await service.call("/v1/users", {
    method: "POST",
    headers: typeof by === "string" ? jsonHeaders(by) : sessionHeaders(service, by),
    body: JSON.stringify({ email, role }),
  });
  expect(response.status, response.text).toBe(201);
  return response.json() as { id: string; password_set: boolean; invite: Link };
}

async function issue(userId: string, what: "invite" | "password-reset", by: SignedIn | string) {
  return service.call(`/v1/users/${userId}/${what}`, {
    method: "POST",
    headers: typeof by === "string" ? jsonHeaders(by) : sessionHeaders(service, by),
    body: "{}",
  });
}

const auditActions = async () =>
  (
    (await service.call("/v1/audit-events?limit=200", { headers: jsonHeaders(service.adminKey) })).json() as { data: { action: string }[] }
  ).data.map((event) => event.action);

const code = (response: { json: () => unknown }) => (response.json() as { code: string }).code;

describe("invites", () => {
  it("creates a user without a password; the invite link sets it once and signs the person in", async () => {
    await start();
    const admin = await setupAdmin(service);
    const carol = await invite("carol@example.com", admin);
    expect(carol.password_set).toBe(false);
    expect(carol.invite).toMatchObject({ purpose: "invite", path: `/dashboard/#/invite/${carol.invite.token}` });
    expect(carol.invite.token).toMatch(/^[0-9A-Za-z]{32}$/);
    expect(carol.invite.url).toBe(`${service.url}${carol.invite.path}`);
    const hours = (Date.parse(carol.invite.expires_at) - Date.now()) / 3_600_000;
    expect(hours).toBeGreaterThan(71.9);
    expect(hours).toBeLessThanOrEqual(72);

    // No password yet: nothing signs in.
    expect((await publicPost("/v1/session", { email: "carol@example.com", password: "" })).status).toBe(400);
    expect((await publicPost("/v1/session", { email: "carol@example.com", password: "any password at all" })).status).toBe(401);

    const token = carol.invite.token;
    const inspected = await publicPost("/v1/invites/inspect", { token });
    expect(inspected.status).toBe(200);
    expect(inspected.json()).toMatchObject({ purpose: "invite", email: "carol@example.com", expires_at: carol.invite.expires_at });
    // An invite is not a reset link.
    expect(code(await publicPost("/v1/password-resets/inspect", { token }))).toBe("ACCOUNT_LINK_INVALID");
    // A password the setup rules refuse does not use the link up.
    const short = await publicPost("/v1/invites/accept", { token, password: "short" });
    expect(short.status).toBe(400);
    expect(code(short)).toBe("VALIDATION_FAILED");

    const accepted = await publicPost("/v1/invites/accept", { token, password: "carol chose this one" });
    expect(accepted.status, accepted.text).toBe(201);
    expect(accepted.json()).toMatchObject({ user: { email: "carol@example.com", password_set: true }, password_change_required: false });
    const cookie = String(accepted.headers.get("set-cookie")).split(";")[0] as string;
    expect((await service.call("/v1/session", { headers: { cookie } })).status).toBe(200);

    // Single use.
    const again = await publicPost("/v1/invites/accept", { token, password: "someone else's password" });
    expect(again.status).toBe(400);
    expect(code(again)).toBe("ACCOUNT_LINK_INVALID");
    expect(code(await publicPost("/v1/invites/inspect", { token }))).toBe("ACCOUNT_LINK_INVALID");
    await signIn(service, "carol@example.com", "carol chose this one");
    expect(await auditActions()).toEqual(expect.arrayContaining(["user.created", "user.invited", "user.invite_accepted"]));
  });

  it("a newer link revokes the older; a user who has a password gets a reset, not an invite", async () => {
    await start();
    const dave = await invite("dave@example.com", service.adminKey);
    const second = await issue(dave.id, "invite", service.adminKey);
    expect(second.status).toBe(201);
    expect(second.headers.get("cache-control")).toBe("no-store");
    const newer = second.json() as Link;
    expect(newer.token).not.toBe(dave.invite.token);
    expect(code(await publicPost("/v1/invites/accept", { token: dave.invite.token, password: "dave's long password" }))).toBe(
      "ACCOUNT_LINK_INVALID",
    );
    expect((await publicPost("/v1/invites/accept", { token: newer.token, password: "dave's long password" })).status).toBe(201);
    const third = await issue(dave.id, "invite", service.adminKey);
    expect(third.status).toBe(409);
    // A reset replaces a reset too.
    const reset1 = (await issue(dave.id, "password-reset", service.adminKey)).json() as Link;
    const reset2 = (await issue(dave.id, "password-reset", service.adminKey)).json() as Link;
    expect(code(await publicPost("/v1/password-resets/inspect", { token: reset1.token }))).toBe("ACCOUNT_LINK_INVALID");
    expect((await publicPost("/v1/password-resets/inspect", { token: reset2.token })).status).toBe(200);
  });

  it("expire: an invite after 72 hours, a reset after one hour", async () => {
    const clock = new ManualClock(Date.now());
    await start({ clock });
    const erin = await invite("erin@example.com", service.adminKey);
    clock.advance(72 * 3_600_000 - 1_000);
    expect((await publicPost("/v1/invites/inspect", { token: erin.invite.token })).status).toBe(200);
    clock.advance(1_000);
    expect(code(await publicPost("/v1/invites/accept", { token: erin.invite.token, password: "erin's long password" }))).toBe(
      "ACCOUNT_LINK_INVALID",
    );
    // A fresh invite works; its reset lasts an hour.
    const fresh = (await issue(erin.id, "invite", service.adminKey)).json() as Link;
    expect((await publicPost("/v1/invites/accept", { token: fresh.token, password: "erin's long password" })).status).toBe(201);
    const reset = (await issue(erin.id, "password-reset", service.adminKey)).json() as Link;
    expect(Date.parse(reset.expires_at) - clock.now()).toBe(3_600_000);
    clock.advance(3_600_000);
    expect(code(await publicPost("/v1/password-resets/accept", { token: reset.token, password: "erin's newer password" }))).toBe(
      "ACCOUNT_LINK_INVALID",
    );
  });
});

describe("password resets", () => {
  it("the old password works until the link is used; using it sets the new one and ends every session", async () => {
    await start();
    const admin = await setupAdmin(service);
    const frank = await createMember(service, admin, "frank@example.com", "frank's old password");
    const response = await issue(frank.userId, "password-reset", admin);
    expect(response.status).toBe(201);
    const reset = response.json() as Link;
    expect(reset).toMatchObject({ purpose: "reset", path: `/dashboard/#/reset/${reset.token}` });
    await signIn(service, "frank@example.com", "frank's old password");

    const accepted = await publicPost("/v1/password-resets/accept", { token: reset.token, password: "frank's new password" });
    expect(accepted.status, accepted.text).toBe(201);
    // The sessions opened before the reset are over; the old password no longer signs in.
    expect((await service.call("/v1/session", { headers: { cookie: frank.cookie } })).status).toBe(401);
    expect((await publicPost("/v1/session", { email: "frank@example.com", password: "frank's old password" })).status).toBe(401);
    await signIn(service, "frank@example.com", "frank's new password");
    expect(await auditActions()).toEqual(expect.arrayContaining(["user.password_reset_issued", "user.password_reset"]));
  });

  it("disabling the user revokes their link; a disabled user gets none", async () => {
    await start();
    const admin = await setupAdmin(service);
    const gina = await createMember(service, admin, "gina@example.com");
    const reset = (await issue(gina.userId, "password-reset", admin)).json() as Link;
    const disable = (disabled: boolean) =>
      service.call(`/v1/users/${gina.userId}`, {
        method: "PATCH",
        headers: sessionHeaders(service, admin),
        body: JSON.stringify({ disabled }),
      });
    expect((await disable(true)).status).toBe(200);
    expect(code(await publicPost("/v1/password-resets/accept", { token: reset.token, password: "gina's new password" }))).toBe(
      "ACCOUNT_LINK_INVALID",
    );
    expect((await issue(gina.userId, "password-reset", admin)).status).toBe(409);
    expect((await disable(false)).status).toBe(200);
    expect(code(await publicPost("/v1/password-resets/accept", { token: reset.token, password: "gina's new password" }))).toBe(
      "ACCOUNT_LINK_INVALID",
    );
  });

  it("throttles token attempts per address with the sign-in throttle: five wrong tokens, then 429 even for a good one", async () => {
    await start();
    const hank = await invite("hank@example.com", service.adminKey);
    for (let i = 0; i < 5; i++) {
      const wrong = await publicPost(i % 2 === 0 ? "/v1/invites/accept" : "/v1/password-resets/inspect", {
        token: generateRandomBase62(32),
        ...(i % 2 === 0 ? { password: "a long enough password" } : {}),
      });
      expect(code(wrong)).toBe("ACCOUNT_LINK_INVALID");
    }
    const throttled = await publicPost("/v1/invites/accept", { token: hank.invite.token, password: "hank's long password" });
    expect(throttled.status).toBe(429);
    expect(code(throttled)).toBe("SIGN_IN_THROTTLED");
    expect(Number(throttled.headers.get("retry-after"))).toBeGreaterThan(0);
    // The link was not used meanwhile: it is still there once the window ends (not waited for here).
    expect(await auditActions()).not.toContain("user.invite_accepted");
  });
});

describe("a required password change", () => {
  it("sign-in says so, and the session may only read itself, sign out or change the password until it is done", async () => {
    await start();
    const admin = await setupAdmin(service);
    const ivy = await createMember(service, admin, "ivy@example.com", "ivy's first password");
    const marked = await service.call(`/v1/users/${ivy.userId}`, {
      method: "PATCH",
      headers: sessionHeaders(service, admin),
      body: JSON.stringify({ must_change_password: true }),
    });
    expect(marked.json()).toMatchObject({ must_change_password: true, disabled: false });
    // A session opened before the mark is held to it at once.
    const before = await service.call("/v1/keys", { headers: sessionHeaders(service, ivy) });
    expect(before.status).toBe(403);
    expect(code(before)).toBe("PASSWORD_CHANGE_REQUIRED");

    const signedIn = await publicPost("/v1/session", { email: "ivy@example.com", password: "ivy's first password" });
    expect(signedIn.status).toBe(201);
    expect(signedIn.json()).toMatchObject({ password_change_required: true });
    const session: SignedIn = await signIn(service, "ivy@example.com", "ivy's first password");
    expect(code(await service.call("/v1/keys", { headers: sessionHeaders(service, session) }))).toBe("PASSWORD_CHANGE_REQUIRED");
    expect((await service.call("/v1/session", { headers: sessionHeaders(service, session) })).json()).toMatchObject({
      password_change_required: true,
    });
    const change = (next: string) =>
      service.call("/v1/session/password", {
        method: "POST",
        headers: sessionHeaders(service, session),
        body: JSON.stringify({ current_password: "ivy's first password", new_password: next }),
      });
    const same = await change("ivy's first password");
    expect(same.status).toBe(400);
    expect(code(same)).toBe("VALIDATION_FAILED");
    const changed = await change("ivy's second password");
    expect(changed.status).toBe(201);
    expect(changed.json()).toMatchObject({ password_change_required: false, user: { must_change_password: false } });
    const fresh = await signIn(service, "ivy@example.com", "ivy's second password");
    expect((await service.call("/v1/keys", { headers: sessionHeaders(service, fresh) })).status).toBe(200);
    expect(await auditActions()).toEqual(expect.arrayContaining(["user.password_change_required", "user.password_changed"]));
  });
});

describe("who may issue links", () => {
  it("only callers who may manage the user: never a member, never a bounded key for an admin or a member beyond its reach", async () => {
    await start();
    const admin = await setupAdmin(service);
    const jack = await createMember(service, admin, "jack@example.com");
    // A member may not manage users at all.
    expect((await issue(admin.userId, "password-reset", jack)).status).toBe(403);
    // A users:write key without the rights a member holds confers nothing.
    const usersOnly = await createKeyOverHttp(service, {
      owner: { type: "application", id: "provisioner" },
      scopes: ["users:write"],
      environment: "sandbox",
    });
    expect((await issue(jack.userId, "password-reset", usersOnly.key)).status).toBe(403);
    expect((await issue(admin.userId, "password-reset", usersOnly.key)).status).toBe(403);
    // A key holding what a member holds may reset a member whose keys it reaches, never an admin.
    const manager = await createKeyOverHttp(service, {
      owner: { type: "application", id: "provisioner" },
      scopes: ["users:write", "keys:read", "keys:write", "read", "write"],
      environment: "sandbox",
    });
    await createKeyOverHttp(service, { owner: { type: "user", id: jack.userId }, scopes: ["read"], environment: "sandbox" });
    expect((await issue(jack.userId, "password-reset", manager.key)).status).toBe(201);
    const refused = await issue(admin.userId, "password-reset", manager.key);
    expect(refused.status).toBe(403);
    expect(code(refused)).toBe("FORBIDDEN");
    // Once the member holds a production key, the sandbox key no longer reaches everything the link hands over.
    await createKeyOverHttp(service, { owner: { type: "user", id: jack.userId }, scopes: ["read"], environment: "production" });
    expect((await issue(jack.userId, "password-reset", manager.key)).status).toBe(403);
    // An admin key or session may.
    expect((await issue(admin.userId, "password-reset", service.adminKey)).status).toBe(201);
    expect((await issue(jack.userId, "password-reset", admin)).status).toBe(201);
    expect((await issue("usr_AAAAAAAAAAAAAAAAAAAA", "password-reset", admin)).status).toBe(404);
    // Creating an admin by invite is the admin's alone, as creating one with a password is.
    const created = await service.call("/v1/users", {
      method: "POST",
      headers: jsonHeaders(manager.key),
      body: JSON.stringify({ email: "kate@example.com", role: "admin" }),
    });
    expect(created.status).toBe(403);
  });
});
