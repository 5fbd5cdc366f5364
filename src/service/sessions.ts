import { timingSafeEqual } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Logger } from "pino";
import type { Authority } from "../authority/model.js";
import type { SessionRecord, UserRecord } from "../core/accounts.js";
import { KeywardError } from "../core/errors.js";
import type { Actor, OwnerRef, RequestContext } from "../core/model.js";
import type { PortalSessionRecord } from "../core/portal-policy.js";
import { findMissingScopes } from "../core/scopes.js";
import { normalisedPath } from "../core/url-text.js";
import type { Accounts } from "../engine/accounts.js";
import type { ValidResult } from "./auth.js";
import type { DashboardConfig } from "./config.js";

export const SESSION_COOKIE = "kw_session";
/**
 * The name over TLS (a Secure cookie): browsers accept a `__Host-` cookie only when it is Secure,
 * set by this host without `Domain`, on `Path=/`, so a sibling subdomain or a plain-HTTP page
 * cannot plant or shadow it (docs/dashboard.md). Both names are read.
 */
export const SECURE_SESSION_COOKIE = "__Host-kw_session";
export const CSRF_HEADER = "x-csrf-token";

/** The management scopes a dashboard session holds, by role. Members act on their own keys only. */
export const ROLE_MANAGEMENT_SCOPES = {
  admin: ["admin"],
  member: ["keys:read", "keys:write"],
} as const satisfies Record<UserRecord["role"], readonly string[]>;

/** Who is calling a management route: an API key, or a person through a dashboard session. */
export type Caller =
  | { kind: "key"; actor: Actor; scopes: readonly string[]; result: ValidResult }
  | { kind: "user"; actor: Actor; scopes: readonly string[]; user: UserRecord; session: SessionRecord };

/** A management caller with its authority resolved (docs/authority.md). */
export type AuthorizedCaller = Caller & { authority: Authority };

/**
 * A host application's person through a portal session (`Authorization: Portal <token>`,
 * docs/embedding.md): only the routes that opt in take one (`requirePortalOrCaller`).
 */
export interface PortalCaller {
  kind: "portal";
  actor: Actor;
  scopes: readonly string[];
  portal: PortalSessionRecord;
}

/** A caller of the routes a portal token may call: a key, a dashboard session or a portal session. */
export type OwnerScopedCaller = AuthorizedCaller | (PortalCaller & { authority: Authority });

/** The owner whose keys alone this caller may see and touch (a member, a portal session's owner), or null. */
export function ownerScope(caller: { authority: Authority }): OwnerRef | null {
  return caller.authority.bounds.find((bound) => bound.reach === "owner")?.owner ?? null;
}

export function callerContext(request: FastifyRequest, caller: Caller | PortalCaller): RequestContext {
  return {
    actor: caller.actor,
    ip: request.ip,
    userAgent: request.headers["user-agent"],
    requestId: request.id,
    ...(caller.kind === "portal" ? { hostActor: caller.portal.hostActor } : {}),
  };
}

function readCookies(request: FastifyRequest): { secure: string | null; plain: string | null } {
  const found = { secure: null as string | null, plain: null as string | null };
  const header = request.headers.cookie;
  if (!header) return found;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim() || null;
    if (name === SECURE_SESSION_COOKIE) found.secure ??= value;
    else if (name === SESSION_COOKIE) found.plain ??= value;
  }
  return found;
}

/** Every session token a request carries (both names), to end them all at sign-in and sign-out. */
export function readSessionCookies(request: FastifyRequest): string[] {
  const found = readCookies(request);
  return [found.secure, found.plain].filter((token): token is string => token !== null);
}

/** The session token a request carries: the `__Host-` cookie first, else the plain one. */
export function readSessionCookie(request: FastifyRequest): string | null {
  const found = readCookies(request);
  return found.secure ?? found.plain;
}

/** An API key in a header: such a request is a key call, never a session call. */
export function carriesApiKey(request: FastifyRequest): boolean {
  return request.headers.authorization !== undefined || request.headers["x-api-key"] !== undefined;
}

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

function cookieSecure(config: DashboardConfig, request: FastifyRequest): boolean {
  return config.cookieSecure === "auto" ? request.protocol === "https" : config.cookieSecure;
}

export function setSessionCookie(reply: FastifyReply, request: FastifyRequest, config: DashboardConfig, token: string): void {
  const secure = cookieSecure(config, request);
  const name = secure ? SECURE_SESSION_COOKIE : SESSION_COOKIE;
  reply.header(
    "set-cookie",
    `${name}=${token}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${Math.floor(config.sessionMaxMs / 1000)}${secure ? "; Secure" : ""}`,
  );
  // A plain cookie from before TLS (or before the prefix) would otherwise linger beside the new one.
  if (secure && readCookies(request).plain !== null)
    reply.header("set-cookie", `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure`);
}

export function clearSessionCookie(reply: FastifyReply, request: FastifyRequest, config: DashboardConfig): void {
  const secure = cookieSecure(config, request);
  const found = readCookies(request);
  const name = secure ? SECURE_SESSION_COOKIE : SESSION_COOKIE;
  reply.header("set-cookie", `${name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0${secure ? "; Secure" : ""}`);
  if (secure && found.plain !== null) reply.header("set-cookie", `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure`);
}

/**
 * Deletes expired sessions and writes the audit summaries of ended sign-in failure windows every
 * `everyMs` (an unref'd timer: it never keeps the process alive), and once more at close, so no
 * counted failure is left unwritten by a graceful stop (docs/dashboard.md).
 */
export function scheduleAccountSweeps(app: FastifyInstance, accounts: Accounts, everyMs: number, logger: Logger): void {
  let running: Promise<void> | null = null;
  const sweep = (all: boolean) => {
    running ??= accounts
      .sweep(all)
      .catch((error: Error) => logger.warn({ err: error.message }, "session purge failed; retried on the next sweep"))
      .finally(() => {
        running = null;
      });
    return running;
  };
  const timer = setInterval(() => void sweep(false), everyMs);
  timer.unref();
  app.addHook("onClose", async () => {
    clearInterval(timer);
    await running;
    await sweep(true);
  });
}

/**
 * CSRF, first line (docs/security.md, check 22): an unsafe request that carries no API key must come from
 * our own origin. Browsers send `Sec-Fetch-Site` and `Origin` on every cross-site POST; API
 * clients send neither and are unaffected. Runs before the body is parsed. The second line is
 * the session's `X-CSRF-Token`, checked in `resolveSessionCaller`.
 */
export function installCsrfGuard(app: FastifyInstance, config: DashboardConfig): void {
  // A callback hook: a GET (every forward-auth call) leaves at the first line, with no promise made.
  app.addHook("onRequest", (request, _reply, done) => {
    if (!UNSAFE.has(request.method) || carriesApiKey(request)) return done();
    try {
      refuseCrossSite(request, config);
      done();
    } catch (error) {
      done(error as Error);
    }
  });
}

/** The paths that open a session, as `normalisedPath` spells them. */
const SIGN_IN_PATHS: ReadonlySet<string> = new Set(["/v1/session", "/v1/setup", "/v1/invites/accept", "/v1/password-resets/accept"]);

/**
 * Does this request open a session? Decided on the route it matched and on the normalised path
 * (percent-decoded, dot segments resolved), never on the raw URL: `/v1/%73ession` is routed to
 * `/v1/session` and must be checked as it (docs/hardening.md).
 */
function opensSession(request: FastifyRequest): boolean {
  const route = request.routeOptions.url;
  return (route !== undefined && SIGN_IN_PATHS.has(route)) || SIGN_IN_PATHS.has(normalisedPath(request.url));
}

/** Throws CSRF_FAILED for a forgeable unsafe request that a browser says came from another site. */
function refuseCrossSite(request: FastifyRequest, config: DashboardConfig): void {
  // Only session calls, and the calls that open a session (login CSRF), can be forged: other
  // clients (forward-auth subrequests, API clients) are left alone.
  if (readSessionCookie(request) === null && !opensSession(request)) return;
  const site = request.headers["sec-fetch-site"];
  if (site !== undefined && site !== "same-origin" && site !== "none")
    throw new KeywardError("CSRF_FAILED", "cross-site requests are refused");
  const origin = request.headers.origin;
  if (origin !== undefined) {
    const own = `${request.protocol}://${request.headers.host ?? ""}`;
    if (origin !== own && !config.allowedOrigins.includes(origin)) throw new KeywardError("CSRF_FAILED", "cross-site requests are refused");
  }
}

function sameToken(sent: string, expected: string): boolean {
  const a = Buffer.from(sent);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The dashboard session behind a request's cookie, checked for timeouts, a disabled user, the
 * CSRF token (unsafe methods) and the scopes the route needs. Throws a coded error otherwise.
 * A person an administrator requires to choose a new password gets `403 PASSWORD_CHANGE_REQUIRED`
 * everywhere but the routes that let them do it (`passwordChange: "allowed"`: reading and
 * ending the session, changing the password).
 */
export async function resolveSessionCaller(
  accounts: Accounts,
  request: FastifyRequest,
  scopes: readonly string[],
  options: { passwordChange?: "allowed" } = {},
): Promise<Extract<Caller, { kind: "user" }>> {
  const token = readSessionCookie(request);
  const live = token ? await accounts.resolveSession(token) : null;
  if (!live) throw new KeywardError("SESSION_REQUIRED");
  if (UNSAFE.has(request.method)) {
    const sent = request.headers[CSRF_HEADER];
    if (typeof sent !== "string" || !sameToken(sent, live.session.csrfToken))
      throw new KeywardError("CSRF_FAILED", "missing or wrong X-CSRF-Token");
  }
  if (live.user.mustChangePassword && options.passwordChange !== "allowed") throw new KeywardError("PASSWORD_CHANGE_REQUIRED");
  const held = ROLE_MANAGEMENT_SCOPES[live.user.role];
  if (findMissingScopes(held, scopes).length > 0) throw new KeywardError("FORBIDDEN", "your role may not do this");
  return { kind: "user", actor: { type: "user", id: live.user.id }, scopes: held, user: live.user, session: live.session };
}
