import { afterEach, describe, expect, it, vi } from "vitest";
import { ManualClock } from "../../src/ports/clock.js";
import { createMember, setupAdmin, signIn } from "../helpers/people.js";
import { startTestService, type TestService } from "../helpers/service.js";

// docs/dashboard.md, "Sessions": expired sessions are purged (at sign-in and
// on a timer), a user holds at most KEYWARD_MAX_SESSIONS_PER_USER sessions (the oldest ends), and
// over TLS the cookie is `__Host-kw_session`; both names are read.

const EMAIL = "admin@example.com";
const PASSWORD = "correct horse battery";
const MINUTE = 60_000;

let service: TestService | undefined;
let clock: ManualClock;
afterEach(async () => {
  await service?.close();
  service = undefined;
});

async function start(env: Record<string, string> = {}): Promise<TestService> {
  clock = new ManualClock();
  service = await startTestService({ clock, env });
  return service;
}

const sessionRows = (svc: TestService) =>
  svc.store.db.prepare("SELECT user_id, ip, user_agent FROM sessions").all() as { user_id: string; ip: string; user_agent: string }[];

const live = async (svc: TestService, cookie: string) => (await svc.call("/v1/session", { headers: { cookie } })).status;

describe("expired sessions", () => {
  it("are deleted at the next sign-in, with their addresses and user agents", async () => {
    const svc = await start();
    const admin = await setupAdmin(svc, EMAIL, PASSWORD);
    await createMember(svc, admin, "bob@example.com");
    expect(sessionRows(svc)).toHaveLength(2);
    clock.advance(31 * MINUTE);
    await signIn(svc, EMAIL, PASSWORD);
    expect(sessionRows(svc)).toHaveLength(1);
  });

  it("are deleted on the service's timer, with no request at all", async () => {
    const svc = await start({ KEYWARD_SESSION_PURGE_MS: "50" });
    await setupAdmin(svc, EMAIL, PASSWORD);
    expect(sessionRows(svc)).toHaveLength(1);
    clock.advance(31 * MINUTE);
    await vi.waitFor(() => expect(sessionRows(svc)).toHaveLength(0), { timeout: 10_000, interval: 50 });
  });

  it("past the absolute timeout are deleted too, however recently seen", async () => {
    const svc = await start({ KEYWARD_SESSION_PURGE_MS: "50" });
    const admin = await setupAdmin(svc, EMAIL, PASSWORD);
    for (let i = 0; i < 24; i++) {
      clock.advance(29 * MINUTE);
      expect(await live(svc, admin.cookie)).toBe(200);
    }
    // 12 h 1 min after sign-in, last seen 25 min ago: past the absolute timeout only.
    clock.advance(25 * MINUTE);
    await vi.waitFor(() => expect(sessionRows(svc)).toHaveLength(0), { timeout: 10_000, interval: 50 });
  });
});

describe("sessions per user", () => {
  it("are capped by KEYWARD_MAX_SESSIONS_PER_USER: a new sign-in ends the oldest", async () => {
    const svc = await start({ KEYWARD_MAX_SESSIONS_PER_USER: "3" });
    const sessions = [await setupAdmin(svc, EMAIL, PASSWORD)];
    for (let i = 0; i < 3; i++) {
      clock.advance(1_000);
      sessions.push(await signIn(svc, EMAIL, PASSWORD));
    }
    expect(sessionRows(svc)).toHaveLength(3);
    expect(await live(svc, sessions[0]?.cookie ?? "")).toBe(401);
    for (const kept of sessions.slice(1)) expect(await live(svc, kept.cookie)).toBe(200);
  });

  it("default to 10", async () => {
    const svc = await start();
    await setupAdmin(svc, EMAIL, PASSWORD);
    for (let i = 0; i < 11; i++) {
      clock.advance(1_000);
      await signIn(svc, EMAIL, PASSWORD);
    }
    expect(sessionRows(svc)).toHaveLength(10);
  });
});

describe("the cookie over TLS", () => {
  const signInOver = (svc: TestService, headers: Record<string, string> = {}) =>
    svc.call("/v1/session", {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify({ email: EMAIL, password: PASSWORD }),
    });

  it("is `__Host-kw_session`, Secure, Path=/ and no Domain; both names are read", async () => {
    const svc = await start({ KEYWARD_COOKIE_SECURE: "true" });
    await setupAdmin(svc, EMAIL, PASSWORD);
    const response = await signInOver(svc);
    const setCookie = response.headers.get("set-cookie") ?? "";
    expect(setCookie).toMatch(/^__Host-kw_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax; Max-Age=43200; Secure$/);
    const token = /^__Host-kw_session=([^;]+)/.exec(setCookie)?.[1] ?? "";
    expect(await live(svc, `__Host-kw_session=${token}`)).toBe(200);
    // A cookie set under the old name before the upgrade keeps working until it ends.
    expect(await live(svc, `kw_session=${token}`)).toBe(200);
    expect(await live(svc, `__Host-kw_session=${"x".repeat(43)}`)).toBe(401);
  });

  it("is chosen automatically when a trusted proxy says the request came over TLS", async () => {
    const svc = await start({ KEYWARD_TRUST_PROXY: "127.0.0.1" });
    await setupAdmin(svc, EMAIL, PASSWORD);
    const tls = await signInOver(svc, { "x-forwarded-proto": "https" });
    expect(tls.headers.get("set-cookie")).toMatch(/^__Host-kw_session=.*; Secure$/);
    const plain = await signInOver(svc);
    expect(plain.headers.get("set-cookie")).toMatch(/^kw_session=/);
  });

  it("sign-in over TLS ends the session of a plain cookie it replaces and expires that cookie; sign-out clears the prefixed one", async () => {
    const svc = await start({ KEYWARD_COOKIE_SECURE: "true" });
    const admin = await setupAdmin(svc, EMAIL, PASSWORD);
    const old = admin.cookie.replace(/^.*?kw_session=/, "kw_session=");
    const response = await signInOver(svc, { cookie: old, origin: svc.url });
    const cookies = response.headers.getSetCookie();
    expect(cookies[0]).toMatch(/^__Host-kw_session=/);
    expect(cookies[1]).toBe("kw_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure");
    expect(await live(svc, old)).toBe(401);
    const token = /^__Host-kw_session=([^;]+)/.exec(cookies[0] ?? "")?.[1] ?? "";
    const csrf = (response.json() as { csrf_token: string }).csrf_token;
    const out = await svc.call("/v1/session", {
      method: "DELETE",
      headers: { cookie: `__Host-kw_session=${token}`, "x-csrf-token": csrf, origin: svc.url },
    });
    expect(out.status).toBe(204);
    expect(out.headers.get("set-cookie")).toBe("__Host-kw_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure");
    expect(await live(svc, `__Host-kw_session=${token}`)).toBe(401);
  });
});
