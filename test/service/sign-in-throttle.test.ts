import { afterEach, describe, expect, it, vi } from "vitest";
import { ManualClock } from "../../src/ports/clock.js";
import { setupAdmin } from "../helpers/people.js";
import { startTestService, type TestService } from "../helpers/service.js";

// docs/hardening.md, "Sign-in throttle": the dashboard's sign-in throttle
// counts addresses as the key throttle does (IPv4-mapped IPv6 as IPv4, IPv6 by a prefix), has a
// per-account ceiling over every address with a growing Retry-After that the account's own good
// address skips and that always ends, and coalesces repeated failures in the audit trail.
// Loopback is the trusted proxy here, so each request chooses its client with X-Forwarded-For.

const EMAIL = "admin@example.com";
const PASSWORD = "correct horse battery";
const WRONG = "not the password at all";

let service: TestService | undefined;
let clock: ManualClock;
afterEach(async () => {
  await service?.close();
  service = undefined;
});

async function start(env: Record<string, string> = {}): Promise<TestService> {
  clock = new ManualClock();
  service = await startTestService({ clock, env: { KEYWARD_TRUST_PROXY: "127.0.0.1", ...env } });
  // Signs in once from 127.0.0.1 (no X-Forwarded-For): the admin's own good address.
  await setupAdmin(service, EMAIL, PASSWORD);
  return service;
}

async function attempt(svc: TestService, password: string, from?: string, email = EMAIL) {
  const response = await svc.call("/v1/session", {
    method: "POST",
    headers: { "content-type": "application/json", ...(from ? { "x-forwarded-for": from } : {}) },
    body: JSON.stringify({ email, password }),
  });
  const body = response.json() as { code?: string; detail?: string };
  return { status: response.status, code: body.code, retryAfter: response.headers.get("retry-after") };
}

const failureRows = (svc: TestService) =>
  (
    svc.store.db.prepare("SELECT ip, details FROM audit_events WHERE action = 'session.sign_in_failed' ORDER BY seq").all() as {
      ip: string;
      details: string;
    }[]
  ).map((row) => ({ ip: row.ip, ...(JSON.parse(row.details) as Record<string, unknown>) }));

describe("addresses are counted as the key throttle counts them", () => {
  it("60 wrong passwords from 60 addresses of one IPv6 /64 are throttled after 5, and the right password then waits too", async () => {
    const svc = await start();
    const statuses: number[] = [];
    for (let i = 1; i <= 60; i++) statuses.push((await attempt(svc, WRONG, `2001:db8:1:2::${i.toString(16)}`)).status);
    expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
    expect(new Set(statuses.slice(5))).toEqual(new Set([429]));
    const right = await attempt(svc, PASSWORD, "2001:db8:1:2:ffff:ffff:ffff:ffff");
    expect([right.status, right.code]).toEqual([429, "SIGN_IN_THROTTLED"]);
    expect(Number(right.retryAfter)).toBeGreaterThan(0);
    expect(Number(right.retryAfter)).toBeLessThanOrEqual(900);
    // Another /64 is another address: the account itself is not locked by 5 failures.
    expect((await attempt(svc, PASSWORD, "2001:db8:1:3::1")).status).toBe(201);
  });

  it("the per-address budget is shared by a /64 whatever the account", async () => {
    const svc = await start();
    const statuses: number[] = [];
    for (let i = 1; i <= 21; i++)
      statuses.push((await attempt(svc, WRONG, `2001:db8:9:9::${i.toString(16)}`, `nobody${i}@example.com`)).status);
    expect(statuses.slice(0, 20).every((s) => s === 401)).toBe(true);
    expect(statuses[20]).toBe(429);
  });

  it("an IPv4-mapped IPv6 alias gets no fresh budget", async () => {
    const svc = await start();
    for (let i = 0; i < 5; i++) expect((await attempt(svc, WRONG, "203.0.113.9")).status).toBe(401);
    const alias = await attempt(svc, PASSWORD, "::ffff:203.0.113.9");
    expect([alias.status, alias.code]).toEqual([429, "SIGN_IN_THROTTLED"]);
  });

  it("KEYWARD_SIGN_IN_IPV6_PREFIX sets the IPv6 grouping", async () => {
    const svc = await start({ KEYWARD_SIGN_IN_IPV6_PREFIX: "48" });
    for (let i = 0; i < 5; i++) expect((await attempt(svc, WRONG, `2001:db8:1:${i}::1`)).status).toBe(401);
    expect((await attempt(svc, PASSWORD, "2001:db8:1:ffff::1")).status).toBe(429);
    expect((await attempt(svc, PASSWORD, "2001:db8:2::1")).status).toBe(201);
  });

  it("a bad KEYWARD_SIGN_IN_IPV6_PREFIX stops the start with INVALID_CONFIGURATION naming it", async () => {
    await expect(startTestService({ env: { KEYWARD_SIGN_IN_IPV6_PREFIX: "12" } })).rejects.toThrow(/KEYWARD_SIGN_IN_IPV6_PREFIX/);
  });
});

describe("the per-account ceiling over every address", () => {
  it("slows every address down with a growing Retry-After, except the account's own good address, and always ends", async () => {
    const svc = await start();
    for (let i = 1; i <= 10; i++) expect((await attempt(svc, WRONG, `198.51.100.${i}`)).status).toBe(401);
    // The 11th attempt, from yet another address, waits even with the right password: the password is not checked.
    const first = await attempt(svc, PASSWORD, "198.51.100.11");
    expect([first.status, first.code, first.retryAfter]).toEqual([429, "SIGN_IN_THROTTLED", "30"]);
    // The person's own recent address (where they signed in) still gets in with the right password.
    expect((await attempt(svc, PASSWORD)).status).toBe(201);

    clock.advance(30_000);
    expect((await attempt(svc, WRONG, "198.51.100.12")).status).toBe(401);
    const second = await attempt(svc, WRONG, "198.51.100.13");
    expect([second.status, second.retryAfter]).toEqual([429, "60"]);
    clock.advance(60_000);
    expect((await attempt(svc, WRONG, "198.51.100.14")).status).toBe(401);
    const third = await attempt(svc, PASSWORD, "198.51.100.15");
    expect([third.status, third.retryAfter]).toEqual([429, "120"]);
    // Refused attempts neither count nor extend the step: it ends, and a new address gets in.
    for (let i = 0; i < 20; i++) await attempt(svc, WRONG, `192.0.2.${i + 1}`);
    clock.advance(120_000);
    expect((await attempt(svc, PASSWORD, "198.51.100.99")).status).toBe(201);
  });

  it("KEYWARD_SIGN_IN_ACCOUNT_LIMIT sets the ceiling", async () => {
    const svc = await start({ KEYWARD_SIGN_IN_ACCOUNT_LIMIT: "3" });
    for (let i = 1; i <= 3; i++) expect((await attempt(svc, WRONG, `198.51.100.${i}`)).status).toBe(401);
    expect((await attempt(svc, PASSWORD, "198.51.100.4")).status).toBe(429);
  });
});

describe("the audit trail", () => {
  it("coalesces repeated failures: one row per account and address per window, then one row with the count", async () => {
    const svc = await start();
    for (let i = 0; i < 5; i++) await attempt(svc, WRONG, "198.51.100.7");
    await attempt(svc, WRONG, "198.51.100.8");
    expect(failureRows(svc)).toEqual([
      { ip: "198.51.100.7", email: EMAIL, reason: "wrong_password", count: 1 },
      { ip: "198.51.100.8", email: EMAIL, reason: "wrong_password", count: 1 },
    ]);
    // The next window's first failure writes the last window's summary, then its own row.
    clock.advance(15 * 60_000);
    await attempt(svc, WRONG, "198.51.100.7");
    const rows = failureRows(svc);
    expect(rows).toHaveLength(4);
    expect(rows[2]).toMatchObject({ ip: "198.51.100.7", email: EMAIL, reason: "wrong_password", count: 4 });
    expect(rows[3]).toMatchObject({ ip: "198.51.100.7", count: 1 });
  });

  it("writes the summary of an ended window on the service's timer, without another attempt", async () => {
    const svc = await start({ KEYWARD_SESSION_PURGE_MS: "50" });
    for (let i = 0; i < 3; i++) await attempt(svc, WRONG, "198.51.100.7", "nobody@example.com");
    expect(failureRows(svc)).toHaveLength(1);
    clock.advance(15 * 60_000);
    await vi.waitFor(() => expect(failureRows(svc)).toHaveLength(2), { timeout: 10_000, interval: 50 });
    expect(failureRows(svc)[1]).toMatchObject({ email: "nobody@example.com", reason: "unknown_email", count: 2 });
  });
});
