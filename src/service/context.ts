import type { FastifyReply, FastifyRequest } from "fastify";
import { PORTAL_MANAGEMENT_SCOPES } from "../authority/actors.js";
import type { Authority } from "../authority/model.js";
import { KeywardError } from "../core/errors.js";
import { portalTokenOf } from "../core/portal-policy.js";
import { findMissingScopes } from "../core/scopes.js";
import type { Accounts } from "../engine/accounts.js";
import type { Keyward } from "../engine/keyward.js";
import type { PortalSessions } from "../engine/portal-sessions.js";
import type { RouteRequirement } from "../middleware/http-edge.js";
import { authenticate, type ValidResult } from "./auth.js";
import { authorityOf, portalAuthority } from "./authority-gate.js";
import type { ServiceConfig } from "./config.js";
import type { ServiceMetrics } from "./metrics.js";
import type { Caller, OwnerScopedCaller, PortalCaller } from "./sessions.js";
import { type AuthorizedCaller, carriesApiKey, readSessionCookie, resolveSessionCaller } from "./sessions.js";
import { StoreHealth } from "./store-health.js";

/** What every route module is given. */
export interface ServiceContext {
  keyward: Keyward;
  config: ServiceConfig;
  metrics: ServiceMetrics;
  /** People, sessions and key requests; null when the store has no account adapter (memory). */
  accounts: Accounts | null;
  /** The Redis invalidation channel, when configured (its subscription is part of readiness). */
  invalidation: { readonly subscribed: boolean } | null;
  storeHealth: StoreHealth;
  /** Management calls: the caller's key must hold `scopes`; not metered against its limits. */
  requireKey(request: FastifyRequest, reply: FastifyReply, scopes: string[]): Promise<ValidResult | null>;
  /**
   * Management calls open to the dashboard too: an API key holding `scopes`, or a dashboard
   * session whose role holds them (members then act on their own keys only).
   */
  requireCaller(request: FastifyRequest, reply: FastifyReply, scopes: string[]): Promise<AuthorizedCaller | null>;
  /** Key-only management routes: an API key holding `scopes`, with its authority resolved. */
  requireKeyCaller(request: FastifyRequest, reply: FastifyReply, scopes: string[]): Promise<AuthorizedCaller | null>;
  /** Portal sessions (docs/embedding.md); null without an account store (memory). Set by buildApp. */
  portals: PortalSessions | null;
  /**
   * The routes a portal token may call (docs/embedding.md): a portal session
   * (`Authorization: Portal <token>`), else as `requireCaller`.
   */
  requirePortalOrCaller(request: FastifyRequest, reply: FastifyReply, scopes: string[]): Promise<OwnerScopedCaller | null>;
  /** The portal session a request carries (authority resolved, route gate checked), or null when it carries none. */
  portalCaller(request: FastifyRequest, scopes: string[]): Promise<(PortalCaller & { authority: Authority }) | null>;
  /** Authenticates with a full requirement (authz, introspection). */
  authenticate(request: FastifyRequest, reply: FastifyReply, requirement: RouteRequirement): Promise<ValidResult | null>;
}

export function createServiceContext(
  keyward: Keyward,
  config: ServiceConfig,
  metrics: ServiceMetrics,
  accounts: Accounts | null = null,
  invalidation: { readonly subscribed: boolean } | null = null,
): ServiceContext {
  const edge = { realm: config.realm, allowQueryKeys: config.allowQueryKeys };
  const requireKey = (request: FastifyRequest, reply: FastifyReply, scopes: string[]) => {
    // A portal token is no key: on a route that does not take one it is refused, never parsed as a key.
    if (portalTokenOf(request.headers.authorization) !== null)
      throw new KeywardError("FORBIDDEN", "a portal session may not call this route (docs/embedding.md)");
    return authenticate(keyward, request, reply, { scopes, skipLimits: true }, edge);
  };
  const checkGate = (authority: Authority, scopes: string[]) => {
    // Every bound must hold the route's management scopes: a member's key never reaches a route its owner could not.
    if (authority.bounds.some((bound) => findMissingScopes(bound.management, scopes).length > 0))
      throw new KeywardError("FORBIDDEN", "the caller's authority does not cover this action");
  };
  async function authorize(caller: Caller, scopes: string[]): Promise<AuthorizedCaller> {
    const authority = await authorityOf(ctx, caller);
    checkGate(authority, scopes);
    return { ...caller, authority };
  }
  const ctx: ServiceContext = {
    keyward,
    config,
    metrics,
    accounts,
    invalidation,
    storeHealth: new StoreHealth(keyward.store),
    requireKey,
    async requireCaller(request, reply, scopes) {
      if (accounts && !carriesApiKey(request) && readSessionCookie(request) !== null)
        return authorize(await resolveSessionCaller(accounts, request, scopes), scopes);
      return ctx.requireKeyCaller(request, reply, scopes);
    },
    async requireKeyCaller(request, reply, scopes) {
      const result = await requireKey(request, reply, scopes);
      if (!result) return null;
      return authorize({ kind: "key", actor: { type: "admin_key", id: result.key.id }, scopes: result.key.scopes, result }, scopes);
    },
    portals: null,
    async portalCaller(request, scopes) {
      const token = portalTokenOf(request.headers.authorization);
      if (token === null) return null;
      if (!ctx.portals || token === "malformed") throw new KeywardError("PORTAL_TOKEN_INVALID");
      const portal = await ctx.portals.resolve(token);
      // A session pinned to an origin is refused from a page of any other (a server call sends none).
      const origin = request.headers.origin;
      if (portal.allowedOrigin !== null && origin !== undefined && origin !== portal.allowedOrigin)
        throw new KeywardError("FORBIDDEN", "this portal session is for another origin");
      const authority = portalAuthority(portal);
      checkGate(authority, scopes);
      return { kind: "portal", actor: authority.actor, scopes: PORTAL_MANAGEMENT_SCOPES, portal, authority };
    },
    async requirePortalOrCaller(request, reply, scopes) {
      return (await ctx.portalCaller(request, scopes)) ?? ctx.requireCaller(request, reply, scopes);
    },
    authenticate: (request, reply, requirement) => authenticate(keyward, request, reply, requirement, edge),
  };
  return ctx;
}
