import { randomBytes, timingSafeEqual } from "node:crypto";
import { Type } from "@sinclair/typebox";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import * as oidc from "openid-client";
import { KeywardError } from "../../core/errors.js";
import { type Accounts, digestToken } from "../../engine/accounts.js";
import { OidcAccounts, type OidcIdentity, OidcSignInRefused } from "../../engine/oidc-accounts.js";
import { FailedAttemptLimiter } from "../../limits/failed-attempt-limiter.js";
import type { DashboardConfig, ServiceConfig } from "../config.js";
import type { ServiceContext } from "../context.js";
import { scrubSecrets } from "../logger.js";
import { OidcProviderClient } from "../oidc/client.js";
import { OIDC_CALLBACK_PATH, type OidcConfig, type SsoConfig } from "../oidc/config.js";
import { readSessionCookies, setSessionCookie } from "../sessions.js";

export const OIDC_START_PATH = "/v1/session/oidc/start";

/**
 * The cookie binding a sign-in under way to the browser that started it (docs/sso.md): a random
 * value whose digest is stored with the flow. `__Host-` over TLS, as the session cookie.
 */
const FLOW_COOKIE = "kw_oidc";
const SECURE_FLOW_COOKIE = "__Host-kw_oidc";
/** A sign-in must come back from the provider within this long. */
const FLOW_TTL_MS = 10 * 60_000;
const BROWSER_TOKEN = /^[A-Za-z0-9_-]{43}$/;

/** What `GET /v1/setup` adds for the sign-in page when single sign-on is configured or passwords are off. */
export function ssoStatusJson(sso: SsoConfig): { sso?: boolean; password_sign_in?: boolean; sso_start?: string } {
  if (!sso.oidc && sso.passwordSignIn) return {};
  return { sso: sso.oidc !== null, password_sign_in: sso.passwordSignIn, ...(sso.oidc ? { sso_start: OIDC_START_PATH } : {}) };
}

/** The routes that take or set a password: refused with PASSWORD_SIGN_IN_DISABLED when `KEYWARD_PASSWORD_SIGN_IN=off`. */
const PASSWORD_ROUTES: ReadonlySet<string> = new Set([
  "/v1/session",
  "/v1/setup",
  "/v1/session/password",
  "/v1/invites/accept",
  "/v1/password-resets/accept",
]);

/**
 * `KEYWARD_PASSWORD_SIGN_IN=off` (docs/sso.md): every POST that signs in with, sets or changes a
 * password is refused before its body is read, decided on the route matched (so no spelling of
 * the path slips through). The first-admin setup is refused too: with passwords off the first
 * administrator comes from the provider's admin groups, so a leaked setup link is no way in.
 */
export function installPasswordSignInGuard(app: FastifyInstance, sso: SsoConfig): void {
  if (sso.passwordSignIn) return;
  app.addHook("onRequest", (request, _reply, done) => {
    const route = request.routeOptions.url;
    if (request.method === "POST" && route !== undefined && PASSWORD_ROUTES.has(route))
      return done(new KeywardError("PASSWORD_SIGN_IN_DISABLED", "password sign-in is off: sign in with SSO"));
    done();
  });
}

/** `return_to`: a path on this origin only (no scheme, no `//host`, no backslash or control character): never an open redirect. */
export function safeReturnTo(raw: string | undefined, fallback: string): string | null {
  if (raw === undefined || raw === "") return fallback;
  if (raw.length > 1024 || !/^\/[\x21-\x7e]*$/.test(raw) || raw.startsWith("//") || raw.includes("\\")) return null;
  const base = new URL("http://keyward.invalid/");
  let resolved: URL;
  try {
    resolved = new URL(raw, base);
  } catch {
    return null;
  }
  return resolved.origin === base.origin ? raw : null;
}

function readFlowCookie(request: FastifyRequest): string | null {
  const header = request.headers.cookie;
  if (!header) return null;
  let secure: string | null = null;
  let plain: string | null = null;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (name === SECURE_FLOW_COOKIE) secure ??= value;
    else if (name === FLOW_COOKIE) plain ??= value;
  }
  const found = secure ?? plain;
  return found !== null && BROWSER_TOKEN.test(found) ? found : null;
}

/** The session cookie's rule (sessions.ts): Secure when the request came over TLS, unless configured. */
function cookieSecure(config: DashboardConfig, request: FastifyRequest): boolean {
  return config.cookieSecure === "auto" ? request.protocol === "https" : config.cookieSecure;
}

function setFlowCookie(reply: FastifyReply, request: FastifyRequest, config: DashboardConfig, value: string, maxAgeS: number): void {
  const secure = cookieSecure(config, request);
  reply.header(
    "set-cookie",
    `${secure ? SECURE_FLOW_COOKIE : FLOW_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${maxAgeS}${secure ? "; Secure" : ""}`,
  );
}

function sameDigest(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** A claim as a list of strings: a JSON array of strings, or one string. */
function stringList(value: unknown): string[] {
  if (typeof value === "string") return [value];
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === "string") : [];
}

/** Where a sign-in failure lands: the dashboard's sign-in page with a reason it explains (docs/dashboard.md). */
type FailureCode =
  | "sso_failed"
  | "sso_denied"
  | "sso_unavailable"
  | "sso_bad_return_to"
  | "sso_too_many"
  | "sso_email_missing"
  | "sso_email_unverified"
  | "sso_domain_not_allowed"
  | "sso_account_disabled"
  | "sso_account_linked";

const StartQuery = Type.Object({ return_to: Type.Optional(Type.String()) });
const CallbackQuery = Type.Object({
  code: Type.Optional(Type.String()),
  state: Type.Optional(Type.String()),
  error: Type.Optional(Type.String()),
  iss: Type.Optional(Type.String()),
});

/**
 * OpenID Connect sign-in for dashboard users (docs/sso.md): `GET /v1/session/oidc/start` sends
 * the browser to the provider (authorization code, PKCE S256, state, nonce); the callback checks
 * them, has openid-client validate the ID token, maps the person to a user and opens a session
 * exactly as a password sign-in does. Without `KEYWARD_OIDC_ISSUER` both routes answer 404.
 */
export function registerOidcRoutes(app: FastifyInstance, ctx: ServiceContext, accounts: Accounts, settings: OidcConfig | null): void {
  if (!settings) {
    // Registered either way, so the authorization matrix and the OpenAPI document list them.
    const off = async () => {
      throw new KeywardError("RESOURCE_NOT_FOUND", "single sign-on is not configured (KEYWARD_OIDC_ISSUER)");
    };
    app.get(OIDC_START_PATH, { schema: { tags: ["people"], summary: "Single sign-on (404: not configured)", security: [] } }, off);
    app.get(
      OIDC_CALLBACK_PATH,
      { schema: { tags: ["people"], summary: "Single sign-on callback (404: not configured)", security: [] } },
      off,
    );
    return;
  }
  const config: ServiceConfig = ctx.config;
  const provider = new OidcProviderClient(settings);
  const mapping = new OidcAccounts(accounts, { adminGroups: settings.adminGroups, allowedDomains: settings.allowedDomains });
  const base = config.publicUrl ? new URL(config.publicUrl).pathname.replace(/\/+$/, "") : "";
  const signInPage = (code: FailureCode) => `${base}/dashboard/#/signin?error=${code}`;
  const defaultReturn = `${base}/dashboard/`;
  const now = () => ctx.keyward.clock.now();
  // Each start writes a flow row before anyone has signed in: starts are throttled per client
  // address (in this process), so nobody can fill the table (docs/sso.md, "Limits").
  const starts = new FailedAttemptLimiter({ limit: settings.startsPerMinute, windowMs: 60_000 });

  const redirectUri = (request: FastifyRequest) =>
    settings.redirectUrl ?? `${config.publicUrl ?? `${request.protocol}://${request.host}`}${OIDC_CALLBACK_PATH}`;

  // Flows abandoned at the provider are deleted with the session purge's rhythm (and at every start).
  const timer = setInterval(() => {
    accounts.store
      .deleteExpiredOidcFlows(now())
      .catch((error: Error) => app.log.warn({ err: error.message }, "purging expired SSO flows failed"));
  }, config.dashboard.sessionPurgeMs);
  timer.unref();
  app.addHook("onClose", async () => clearInterval(timer));

  /**
   * Never the code, a token, the state or the client secret: a reason code and the library's
   * messages (fixed texts such as `unexpected ID Token "nonce" claim value`), never the error's
   * fields, which hold the response parameters and the expected values.
   */
  const logFailure = (request: FastifyRequest, reason: string, error?: unknown) => {
    const messages: string[] = [];
    for (let e: unknown = error, depth = 0; e instanceof Error && depth < 3; e = e.cause, depth++)
      messages.push(`${(e as { code?: string }).code ?? e.name}: ${e.message}`);
    request.log.warn(
      { reason, ...(messages.length > 0 ? { cause: scrubSecrets(messages.join(" <- ").slice(0, 400)) } : {}) },
      "single sign-on failed",
    );
  };

  app.get<{ Querystring: { return_to?: string } }>(
    OIDC_START_PATH,
    {
      schema: {
        tags: ["people"],
        summary: "Single sign-on: 302 to the identity provider (authorization code with PKCE, state and nonce) (public)",
        description:
          "`return_to`: a path on this origin to land on after sign-in (default `/dashboard/`); anything else is refused " +
          "(302 to `/dashboard/#/signin?error=sso_bad_return_to`). Sets a short-lived HttpOnly cookie binding the sign-in to this browser.",
        querystring: StartQuery,
        security: [],
      },
    },
    async (request, reply) => {
      reply.header("cache-control", "no-store");
      const returnTo = safeReturnTo(request.query.return_to, defaultReturn);
      if (returnTo === null) {
        logFailure(request, "bad_return_to");
        return reply.redirect(signInPage("sso_bad_return_to"), 302);
      }
      let configuration: oidc.Configuration;
      try {
        configuration = await provider.configuration();
      } catch (error) {
        logFailure(request, "discovery", error);
        return reply.redirect(signInPage("sso_unavailable"), 302);
      }
      const at = now();
      if (starts.blockedForMs(request.ip, at) > 0) {
        logFailure(request, "too_many_starts");
        return reply.redirect(signInPage("sso_too_many"), 302);
      }
      starts.charge(request.ip, at);
      await accounts.store.deleteExpiredOidcFlows(at);
      // One binding per browser: sign-ins started in two tabs both come back.
      const browser = readFlowCookie(request) ?? randomBytes(32).toString("base64url");
      const state = oidc.randomState();
      const nonce = oidc.randomNonce();
      const codeVerifier = oidc.randomPKCECodeVerifier();
      const redirect = redirectUri(request);
      await accounts.store.insertOidcFlow({
        stateDigest: digestToken(state),
        browserDigest: digestToken(browser),
        nonce,
        codeVerifier,
        redirectUri: redirect,
        returnTo,
        expiresAt: at + FLOW_TTL_MS,
      });
      const target = oidc.buildAuthorizationUrl(configuration, {
        redirect_uri: redirect,
        scope: settings.scopes.join(" "),
        state,
        nonce,
        code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: "S256",
      });
      setFlowCookie(reply, request, config.dashboard, browser, Math.floor(FLOW_TTL_MS / 1000));
      return reply.redirect(target.href, 302);
    },
  );

  app.get<{ Querystring: { state?: string } }>(
    OIDC_CALLBACK_PATH,
    {
      schema: {
        tags: ["people"],
        summary: "Single sign-on: the identity provider's redirect back; opens a session and 302s to `return_to` (public)",
        description:
          "Checks the state (once, from the browser that started), exchanges the code with the PKCE verifier, validates the ID token " +
          "(issuer, audience, nonce, expiry) and maps the person to a user (docs/sso.md). Sets the session cookie as `POST /v1/session` does. " +
          "Failures 302 to `/dashboard/#/signin?error=<reason>`.",
        querystring: CallbackQuery,
        security: [],
      },
    },
    async (request, reply) => {
      reply.header("cache-control", "no-store");
      // The binding cookie stays on failure (another tab's sign-in may still come back) and is cleared after success.
      const browser = readFlowCookie(request);
      const fail = (code: FailureCode, reason: string, error?: unknown) => {
        logFailure(request, reason, error);
        return reply.redirect(signInPage(code), 302);
      };
      const state = request.query.state;
      if (typeof state !== "string" || state.length === 0 || state.length > 512) return fail("sso_failed", "state_missing");
      const flow = await accounts.store.takeOidcFlow(digestToken(state));
      // Unknown, used already (a replay), or expired: one answer.
      if (!flow || flow.expiresAt <= now()) return fail("sso_failed", flow ? "state_expired" : "state_unknown");
      if (browser === null || !sameDigest(digestToken(browser), flow.browserDigest)) return fail("sso_failed", "state_other_browser");

      let identity: OidcIdentity;
      try {
        const configuration = await provider.configuration();
        const query = request.url.includes("?") ? request.url.slice(request.url.indexOf("?")) : "";
        const current = new URL(flow.redirectUri);
        current.search = query;
        const tokens = await oidc.authorizationCodeGrant(configuration, current, {
          pkceCodeVerifier: flow.codeVerifier,
          expectedState: state,
          expectedNonce: flow.nonce,
          idTokenExpected: true,
        });
        const claims = tokens.claims();
        if (!claims) return fail("sso_failed", "no_id_token");
        let merged: Record<string, unknown> = { ...claims };
        // Providers often keep email and groups for the userinfo endpoint; the ID token wins where both say.
        const metadata = configuration.serverMetadata();
        const needsMore = !("email" in claims) || (settings.adminGroups.length > 0 && !(settings.groupsClaim in claims));
        if (needsMore && metadata.userinfo_endpoint && tokens.access_token) {
          const info = await oidc.fetchUserInfo(configuration, tokens.access_token, claims.sub);
          merged = { ...info, ...claims };
        }
        const verified = merged.email_verified;
        identity = {
          issuer: claims.iss,
          subject: claims.sub,
          email: typeof merged.email === "string" ? merged.email : null,
          // Some providers send "true"/"false" as strings.
          emailVerified: verified === true || verified === "true" ? true : verified === false || verified === "false" ? false : undefined,
          groups: stringList(merged[settings.groupsClaim]),
        };
      } catch (error) {
        if (error instanceof oidc.AuthorizationResponseError) return fail("sso_denied", "provider_error", error);
        const network = error instanceof TypeError || (error as { name?: string }).name === "TimeoutError";
        return fail(network ? "sso_unavailable" : "sso_failed", "validation", error);
      }

      try {
        const context = { ip: request.ip, userAgent: request.headers["user-agent"], requestId: request.id };
        const opened = await mapping.signIn(identity, context);
        // A fresh session, the old one ended: no session fixation (as password sign-in).
        for (const token of readSessionCookies(request)) await accounts.signOut(token);
        setSessionCookie(reply, request, config.dashboard, opened.token);
      } catch (error) {
        if (error instanceof OidcSignInRefused) return fail(`sso_${error.reason}`, error.reason);
        throw error;
      }
      setFlowCookie(reply, request, config.dashboard, "", 0);
      return reply.redirect(flow.returnTo, 302);
    },
  );
}
