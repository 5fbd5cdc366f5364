import type { FastifyReply, FastifyRequest } from "fastify";
import { KeywardError } from "../core/errors.js";
import { findMissingScopes } from "../core/scopes.js";
import type { Accounts } from "../engine/accounts.js";
import type { Keyward } from "../engine/keyward.js";
import type { RouteRequirement } from "../middleware/http-edge.js";
import { authenticate, type ValidResult } from "./auth.js";
import { authorityOf } from "./authority-gate.js";
import type { ServiceConfig } from "./config.js";
import type { ServiceMetrics } from "./metrics.js";
import type { Caller } from "./sessions.js";
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
  const requireKey = (request: FastifyRequest, reply: FastifyReply, scopes: string[]) =>
    authenticate(keyward, request, reply, { scopes, skipLimits: true }, edge);
  async function authorize(caller: Caller, scopes: string[]): Promise<AuthorizedCaller> {
    const authority = await authorityOf(ctx, caller);
    // Every bound must hold the route's management scopes: a member's key never reaches a route its owner could not.
    if (authority.bounds.some((bound) => findMissingScopes(bound.management, scopes).length > 0))
      throw new KeywardError("FORBIDDEN", "the caller's authority does not cover this action");
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
    authenticate: (request, reply, requirement) => authenticate(keyward, request, reply, requirement, edge),
  };
  return ctx;
}
