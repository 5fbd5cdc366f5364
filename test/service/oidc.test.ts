// Single sign-on (docs/sso.md) against a real OpenID provider (oidc-provider) on loopback, over real HTTP.
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Keyward } from "../../src/engine/keyward.js";
import { buildApp } from "../../src/service/app.js";
import { loadConfig } from "../../src/service/config.js";
import { createLogger } from "../../src/service/logger.js";
import { ServiceMetrics } from "../../src/service/metrics.js";
import { createAdminKey } from "../../src/service/open-keyward.js";
import { safeReturnTo } from "../../src/service/routes/oidc.js";
import { PostgresKeyStore } from "../../src/stores/postgres/postgres-key-store.js";
import { backendsAvailable, createTestSchema, DATABASE_URL } from "../helpers/backends.js";
import { CALLBACK, CLIENT_ID, CLIENT_SECRET, idp, people, startProvider, type TestProvider } from "../helpers/oidc-provider.js";
import { setupAdmin } from "../helpers/people.js";
import { jsonHeaders, startTestService } from "../helpers/service.js";

/**
 * A browser: a cookie jar (by name: like a browser, it sends a host's cookies to every port) and
 * redirects followed by hand, so each hop can be looked at.
 */
class Browser {
  readonly jar = new Map<string, string>();

  private keep(response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair = "", ...attributes] = line.split(";");
      const eq = pair.indexOf("=");
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const gone = attributes.some(
        (a) => /^\s*max-age=0\s*$/i.test(a) || (/^\s*expires=/i.test(a) && Date.parse(a.split("=")[1] ?? "") < Date.now()),
      );
      if (gone || value === "") this.jar.delete(name);
      else this.jar.set(name, value);
    }
  }

  cookie(name: string): string | undefined {
    return this.jar.get(name);
  }

  async get(url: string): Promise<{ status: number; location: string | null; response: Response }> {
    const cookie = [...this.jar].map(([name, value]) => `${name}=${value}`).join("; ");
    const response = await fetch(url, { redirect: "manual", headers: cookie ? { cookie } : {} });
    this.keep(response);
    await response.arrayBuffer();
    const location = response.headers.get("location");
    return { status: response.status, location: location === null ? null : new URL(location, url).href, response };
  }
}

/** Starts a sign-in at the service and walks the provider's steps; returns the callback URL the provider sent back (not yet opened). */
async function throughProvider(
  browser: Browser,
  serviceUrl: string,
  options: { returnTo?: string; rewrite?: (authorizeUrl: URL) => URL } = {},
): Promise<string> {
  const started = await browser.get(
    `${serviceUrl}/v1/session/oidc/start${options.returnTo ? `?return_to=${encodeURIComponent(options.returnTo)}` : ""}`,
  );
  expect(started.status).toBe(302);
  let next = new URL(started.location as string);
  expect(next.searchParams.get("code_challenge_method")).toBe("S256");
  expect(next.searchParams.get("state")).toBeTruthy();
  expect(next.searchParams.get("nonce")).toBeTruthy();
  if (options.rewrite) next = options.rewrite(next);
  for (let hop = 0; hop < 20; hop++) {
    const step = await browser.get(next.href);
    if (!step.location) throw new Error(`the provider stopped at ${next.pathname} with ${step.status}`);
    if (step.location.startsWith(`${serviceUrl}${CALLBACK}`)) return step.location;
    next = new URL(step.location);
  }
  throw new Error("too many redirects");
}

/** The whole flow: where the service sends the browser after the callback. */
async function signInWithSso(browser: Browser, serviceUrl: string, returnTo?: string): Promise<string> {
  const callback = await throughProvider(browser, serviceUrl, returnTo ? { returnTo } : {});
  const landed = await browser.get(callback);
  expect(landed.status).toBe(302);
  return landed.location as string;
}

const signInError = (location: string) => new URL(location).hash.match(/error=([a-z_]+)/)?.[1] ?? null;

interface Service {
  url: string;
  adminKey: string;
  call(path: string, init?: RequestInit): Promise<{ status: number; json: () => unknown; text: string }>;
  /** What the service logged (SQLite services only). */
  logs(): string;
  audit(): Promise<{ action: string; details: Record<string, unknown> | null; changes: Record<string, unknown> | null }[]>;
  close(): Promise<void>;
}

async function sqliteService(env: Record<string, string>): Promise<Service> {
  const service = await startTestService({ env });
  return {
    url: service.url,
    adminKey: service.adminKey,
    call: service.call,
    logs: () => service.logs.join(""),
    audit: async () =>
      (
        service.store.db.prepare("SELECT action, details, changes FROM audit_events ORDER BY seq").all() as {
          action: string;
          details: string | null;
          changes: string | null;
        }[]
      ).map((row) => ({
        action: row.action,
        details: row.details ? (JSON.parse(row.details) as Record<string, unknown>) : null,
        changes: row.changes ? (JSON.parse(row.changes) as Record<string, unknown>) : null,
      })),
    close: () => service.close(),
  };
}

async function postgresService(env: Record<string, string>): Promise<Service> {
  const schema = await createTestSchema();
  const store = new PostgresKeyStore({ connectionString: DATABASE_URL, schema: schema.schema, maxConnections: 4 });
  await store.migrate();
  const keyward = new Keyward({ store });
  const config = { ...loadConfig({ KEYWARD_DATABASE_URL: DATABASE_URL, ...env }), port: 0 };
  const app = await buildApp({ keyward, config, logger: createLogger("silent"), metrics: new ServiceMetrics() });
  await app.listen({ port: 0, host: "127.0.0.1" });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const adminKey = (await createAdminKey(keyward, "test admin", { type: "cli", id: "test" })).key;
  return {
    url,
    adminKey,
    logs: () => "",
    call: async (path, init = {}) => {
      const response = await fetch(url + path, init);
      const text = await response.text();
      return { status: response.status, text, json: () => JSON.parse(text) };
    },
    audit: async () => {
      const page = await keyward.store.listAuditEvents({}, 500, null);
      return [...page.events]
        .sort((a, b) => a.at - b.at)
        .map((event) => ({
          action: event.action,
          details: (event.details ?? null) as Record<string, unknown> | null,
          changes: (event.changes ?? null) as Record<string, unknown> | null,
        }));
    },
    close: async () => {
      await app.close();
      await keyward.close();
      await schema.drop();
    },
  };
}

/** The service and the provider, each knowing the other's address. */
async function startPair(
  backend: "sqlite" | "postgres",
  env: Record<string, string> = {},
): Promise<{ service: Service; provider: TestProvider; close: () => Promise<void> }> {
  const provider = await startProvider();
  const start = backend === "sqlite" ? sqliteService : postgresService;
  const service = await start({
    KEYWARD_OIDC_ISSUER: provider.url,
    KEYWARD_OIDC_CLIENT_ID: CLIENT_ID,
    KEYWARD_OIDC_CLIENT_SECRET: CLIENT_SECRET,
    KEYWARD_OIDC_ADMIN_GROUPS: "keyward-admins",
    ...env,
  });
  provider.start(`${service.url}${CALLBACK}`);
  return {
    service,
    provider,
    close: async () => {
      await service.close();
      await provider.close();
    },
  };
}

async function session(service: Service, browser: Browser) {
  const cookie = browser.cookie("kw_session");
  const response = await service.call("/v1/session", { headers: cookie ? { cookie: `kw_session=${cookie}` } : {} });
  return {
    status: response.status,
    body: response.status === 200 ? (response.json() as { user: { id: string; email: string; role: string } }) : null,
  };
}

const hasPostgres = await backendsAvailable();

for (const backend of ["sqlite", "postgres"] as const) {
  describe.skipIf(backend === "postgres" && !hasPostgres)(`single sign-on (${backend})`, () => {
    let pair: Awaited<ReturnType<typeof startPair>>;
    beforeAll(async () => {
      pair = await startPair(backend);
    });
    afterAll(async () => {
      await pair?.close();
    });

    it("creates an admin just in time from the groups claim, reuses the user, and demotes on removal from the group", async () => {
      people.set("alice", { email: "Alice@Example.com", email_verified: true, groups: ["keyward-admins", "staff"] });
      idp.signingIn = "alice";
      const first = new Browser();
      const landed = await signInWithSso(first, pair.service.url, "/dashboard/#/keys");
      expect(landed).toBe(`${pair.service.url}/dashboard/#/keys`);
      expect(first.cookie("kw_oidc")).toBeUndefined();
      const me = await session(pair.service, first);
      expect(me.status).toBe(200);
      expect(me.body?.user).toMatchObject({ email: "alice@example.com", role: "admin" });
      const userId = me.body?.user.id as string;

      // Same subject again, in another browser: the same user.
      const second = new Browser();
      await signInWithSso(second, pair.service.url);
      expect((await session(pair.service, second)).body?.user.id).toBe(userId);

      // Out of the admin group: a member at the next sign-in.
      people.set("alice", { email: "alice@example.com", email_verified: true, groups: ["staff"] });
      const third = new Browser();
      expect(await signInWithSso(third, pair.service.url)).toBe(`${pair.service.url}/dashboard/`);
      expect((await session(pair.service, third)).body?.user).toMatchObject({ id: userId, role: "member" });

      const audit = await pair.service.audit();
      expect(audit.find((e) => e.action === "user.created")?.details).toMatchObject({
        via: "oidc",
        role: "admin",
        email: "alice@example.com",
      });
      expect(audit.filter((e) => e.action === "session.signed_in").map((e) => e.details)).toEqual([
        { method: "oidc" },
        { method: "oidc" },
        { method: "oidc" },
      ]);
      expect(audit.find((e) => e.action === "user.updated")?.changes).toEqual({ role: { from: "admin", to: "member" } });
    });

    it("links a verified email to an existing user, and refuses a disabled user", async () => {
      const created = await pair.service.call("/v1/users", {
        method: "POST",
        headers: jsonHeaders(pair.service.adminKey),
        body: JSON.stringify({ email: "bob@example.com", password: "bob's long password", role: "member" }),
      });
      expect(created.status).toBe(201);
      const bobId = (created.json() as { id: string }).id;
      people.set("bob-sub", { email: "bob@example.com", email_verified: true, groups: [] });
      idp.signingIn = "bob-sub";
      const browser = new Browser();
      await signInWithSso(browser, pair.service.url);
      expect((await session(pair.service, browser)).body?.user.id).toBe(bobId);
      expect((await pair.service.audit()).some((e) => e.action === "user.sso_linked" && e.details?.subject === "bob-sub")).toBe(true);

      const disabled = await pair.service.call(`/v1/users/${bobId}`, {
        method: "PATCH",
        headers: jsonHeaders(pair.service.adminKey),
        body: JSON.stringify({ disabled: true }),
      });
      expect(disabled.status).toBe(200);
      const again = new Browser();
      expect(signInError(await signInWithSso(again, pair.service.url))).toBe("sso_account_disabled");
      expect(again.cookie("kw_session")).toBeUndefined();
    });

    it("refuses an unverified email and never links it to an existing user", async () => {
      people.set("mallory", { email: "alice@example.com", email_verified: false, groups: ["keyward-admins"] });
      idp.signingIn = "mallory";
      const browser = new Browser();
      expect(signInError(await signInWithSso(browser, pair.service.url))).toBe("sso_email_unverified");
      // Not sent at all: a new subject may not take over an existing account by email either.
      people.set("mallory", { email: "alice@example.com", groups: ["keyward-admins"] });
      expect(signInError(await signInWithSso(new Browser(), pair.service.url))).toBe("sso_email_unverified");
    });
  });
}

describe("single sign-on: refusals", () => {
  let pair: Awaited<ReturnType<typeof startPair>>;
  beforeAll(async () => {
    pair = await startPair("sqlite", { KEYWARD_OIDC_ALLOWED_DOMAINS: "example.com" });
    people.set("carol", { email: "carol@example.com", email_verified: true, groups: ["keyward-admins"] });
  });
  afterAll(async () => {
    await pair?.close();
  });

  it("refuses a tampered state, a reused state, and a callback in another browser", async () => {
    idp.signingIn = "carol";
    const browser = new Browser();
    const callback = new URL(await throughProvider(browser, pair.service.url));
    const tampered = new URL(callback);
    tampered.searchParams.set("state", `${callback.searchParams.get("state")}x`);
    expect(signInError((await browser.get(tampered.href)).location as string)).toBe("sso_failed");

    // Another browser (a login CSRF: the victim is sent the attacker's callback) is refused, and uses the state up.
    const other = new Browser();
    expect(signInError((await other.get(callback.href)).location as string)).toBe("sso_failed");
    expect(signInError((await browser.get(callback.href)).location as string)).toBe("sso_failed");
    expect(browser.cookie("kw_session")).toBeUndefined();

    // A good sign-in, then its callback replayed: the state works once.
    const fresh = new Browser();
    const good = await throughProvider(fresh, pair.service.url);
    expect(signInError((await fresh.get(good)).location as string)).toBeNull();
    const replay = await fresh.get(good);
    expect(signInError(replay.location as string)).toBe("sso_failed");
    // Neither codes, states nor the client secret reach the logs.
    const logs = pair.service.logs();
    for (const secret of [
      CLIENT_SECRET,
      callback.searchParams.get("code"),
      callback.searchParams.get("state"),
      new URL(good).searchParams.get("code"),
    ])
      expect(logs).not.toContain(secret as string);
  });

  it("refuses an ID token whose nonce is not the one this sign-in sent", async () => {
    idp.signingIn = "carol";
    const browser = new Browser();
    const callback = await throughProvider(browser, pair.service.url, {
      rewrite: (url) => {
        url.searchParams.set("nonce", "a-nonce-of-another-flow");
        return url;
      },
    });
    const landed = await browser.get(callback);
    expect(signInError(landed.location as string)).toBe("sso_failed");
    expect(browser.cookie("kw_session")).toBeUndefined();
    expect(pair.service.logs()).toContain('unexpected ID Token \\"nonce\\" claim value');
  });

  it("refuses an answer from another issuer with the same client (mix-up)", async () => {
    const impostor = await startProvider();
    impostor.start(`${pair.service.url}${CALLBACK}`);
    try {
      idp.signingIn = "carol";
      const browser = new Browser();
      const callback = await throughProvider(browser, pair.service.url, {
        rewrite: (url) => new URL(`${impostor.url}${url.pathname}${url.search}`),
      });
      expect(new URL(callback).searchParams.get("iss")).toBe(impostor.url);
      expect(signInError((await browser.get(callback)).location as string)).toBe("sso_failed");
      expect(browser.cookie("kw_session")).toBeUndefined();
      expect(pair.service.logs()).toContain('unexpected \\"iss\\" (issuer) response parameter value');
    } finally {
      await impostor.close();
    }
  });

  it("refuses a provider whose discovery document names another issuer", async () => {
    const liar = await startProvider(() => "https://idp.example.com");
    const service = await sqliteService({
      KEYWARD_OIDC_ISSUER: liar.url,
      KEYWARD_OIDC_CLIENT_ID: CLIENT_ID,
      KEYWARD_OIDC_CLIENT_SECRET: CLIENT_SECRET,
    });
    liar.start(`${service.url}${CALLBACK}`);
    try {
      const started = await new Browser().get(`${service.url}/v1/session/oidc/start`);
      expect(signInError(started.location as string)).toBe("sso_unavailable");
    } finally {
      await service.close();
      await liar.close();
    }
  });

  it("refuses an open redirect in return_to", async () => {
    for (const bad of ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)", "/ok\r\nSet-Cookie: x=1"]) {
      const started = await new Browser().get(`${pair.service.url}/v1/session/oidc/start?return_to=${encodeURIComponent(bad)}`);
      expect(started.status, bad).toBe(302);
      expect(signInError(started.location as string), bad).toBe("sso_bad_return_to");
    }
    expect(safeReturnTo("/dashboard/#/keys?x=1", "/")).toBe("/dashboard/#/keys?x=1");
    expect(safeReturnTo(undefined, "/dashboard/")).toBe("/dashboard/");
  });

  it("throttles sign-in starts per client address before writing anything", async () => {
    const throttled = await startPair("sqlite", { KEYWARD_OIDC_STARTS_PER_MINUTE: "3" });
    try {
      for (let i = 0; i < 3; i++) {
        const started = await new Browser().get(`${throttled.service.url}/v1/session/oidc/start`);
        expect((started.location as string).startsWith(throttled.provider.url)).toBe(true);
      }
      const refused = await new Browser().get(`${throttled.service.url}/v1/session/oidc/start`);
      expect(signInError(refused.location as string)).toBe("sso_too_many");
    } finally {
      await throttled.close();
    }
  });

  it("refuses an email outside the allowed domains", async () => {
    people.set("dave", { email: "dave@elsewhere.org", email_verified: true, groups: [] });
    idp.signingIn = "dave";
    expect(signInError(await signInWithSso(new Browser(), pair.service.url))).toBe("sso_domain_not_allowed");
  });

  it("tells the sign-in page that SSO is on, and refuses password sign-in for an SSO-created user", async () => {
    expect((await pair.service.call("/v1/setup")).json()).toEqual({
      needed: expect.any(Boolean),
      sso: true,
      password_sign_in: true,
      sso_start: "/v1/session/oidc/start",
    });
    idp.signingIn = "carol";
    await signInWithSso(new Browser(), pair.service.url);
    const password = await pair.service.call("/v1/session", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "carol@example.com", password: "any password at all" }),
    });
    expect(password.status).toBe(401);
    expect((password.json() as { code: string }).code).toBe("SIGN_IN_FAILED");
  });
});

describe("password sign-in off", () => {
  let pair: Awaited<ReturnType<typeof startPair>>;
  beforeAll(async () => {
    pair = await startPair("sqlite", { KEYWARD_PASSWORD_SIGN_IN: "off" });
  });
  afterAll(async () => {
    await pair?.close();
  });

  it("refuses password sign-in and the setup link with PASSWORD_SIGN_IN_DISABLED, and SSO still works", async () => {
    expect((await pair.service.call("/v1/setup")).json()).toEqual({
      needed: false,
      sso: true,
      password_sign_in: false,
      sso_start: "/v1/session/oidc/start",
    });
    for (const [path, body] of [
      ["/v1/session", { email: "erin@example.com", password: "a long enough password" }],
      ["/v1/setup", { token: "A".repeat(32), email: "erin@example.com", password: "a long enough password" }],
      ["/v1/invites/accept", { token: "A".repeat(32), password: "a long enough password" }],
    ] as const) {
      const response = await pair.service.call(path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      expect(response.status, path).toBe(403);
      expect((response.json() as { code: string }).code, path).toBe("PASSWORD_SIGN_IN_DISABLED");
    }
    people.set("erin", { email: "erin@example.com", email_verified: true, groups: ["keyward-admins"] });
    idp.signingIn = "erin";
    const browser = new Browser();
    await signInWithSso(browser, pair.service.url);
    expect((await session(pair.service, browser)).body?.user).toMatchObject({ email: "erin@example.com", role: "admin" });
  });
});

describe("single sign-on settings", () => {
  const base = { KEYWARD_OIDC_ISSUER: "https://idp.example.com", KEYWARD_OIDC_CLIENT_ID: "c", KEYWARD_OIDC_CLIENT_SECRET: "s" };
  const refused = (env: Record<string, string>) => {
    try {
      loadConfig(env);
    } catch (error) {
      return (error as Error).message;
    }
    return null;
  };

  it("refuses missing and invalid combinations at start, naming the setting", () => {
    expect(refused({ ...base, KEYWARD_OIDC_ISSUER: "http://idp.example.com" })).toMatch(/KEYWARD_OIDC_ISSUER must be an https:\/\/ URL/);
    expect(refused({ ...base, KEYWARD_OIDC_CLIENT_ID: "" })).toMatch(/KEYWARD_OIDC_CLIENT_ID is required/);
    expect(refused({ ...base, KEYWARD_OIDC_CLIENT_SECRET: "" })).toMatch(/KEYWARD_OIDC_CLIENT_SECRET/);
    expect(refused({ KEYWARD_OIDC_CLIENT_ID: "c" })).toMatch(/KEYWARD_OIDC_ISSUER is not/);
    expect(refused({ KEYWARD_PASSWORD_SIGN_IN: "off" })).toMatch(/needs single sign-on/);
    expect(refused({ ...base, KEYWARD_OIDC_STARTS_PER_MINUTE: "0" })).toMatch(/KEYWARD_OIDC_STARTS_PER_MINUTE must be/);
    expect(refused({ ...base, KEYWARD_PASSWORD_SIGN_IN: "off" })).toMatch(/needs KEYWARD_OIDC_ADMIN_GROUPS/);
    expect(refused({ ...base, KEYWARD_PASSWORD_SIGN_IN: "maybe" })).toMatch(/on or off/);
    expect(refused({ ...base, KEYWARD_OIDC_SCOPES: "email profile" })).toMatch(/must include openid/);
    expect(refused({ ...base, KEYWARD_OIDC_REDIRECT_URL: "https://keys.example.com/elsewhere" })).toMatch(/must end with/);
    expect(refused({ ...base, KEYWARD_OIDC_ALLOWED_DOMAINS: "example.com,not a domain" })).toMatch(/KEYWARD_OIDC_ALLOWED_DOMAINS/);
    expect(refused({ ...base, KEYWARD_OIDC_CLIENT_SECRET_FILE: "/nonexistent" })).toMatch(/not both/);
    // The secret never appears in a message.
    expect(refused({ ...base, KEYWARD_OIDC_CLIENT_SECRET: "s3cr3t-value", KEYWARD_OIDC_SCOPES: "x" })).not.toContain("s3cr3t-value");
  });

  it("accepts http only for a loopback issuer, and has the documented defaults", () => {
    const sso = loadConfig({ ...base, KEYWARD_OIDC_ISSUER: "http://127.0.0.1:9000" }).sso;
    expect(sso.passwordSignIn).toBe(true);
    expect(sso.oidc).toMatchObject({
      scopes: ["openid", "email", "profile"],
      groupsClaim: "groups",
      adminGroups: [],
      allowedDomains: [],
      redirectUrl: null,
    });
    expect(loadConfig({}).sso).toEqual({ passwordSignIn: true, oidc: null });
  });
});

// The admin sign-in helpers are used by other suites; keep one password admin working beside SSO.
describe("password sign-in beside SSO", () => {
  let service: Awaited<ReturnType<typeof startTestService>>;
  afterEach(async () => {
    await service?.close();
  });
  it("still sets up the first admin with the setup link when passwords are on", async () => {
    service = await startTestService({
      env: { KEYWARD_OIDC_ISSUER: "http://127.0.0.1:9", KEYWARD_OIDC_CLIENT_ID: "c", KEYWARD_OIDC_CLIENT_SECRET: "s" },
    });
    await expect(setupAdmin(service)).resolves.toMatchObject({ userId: expect.any(String) });
  });
});
