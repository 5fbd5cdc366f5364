import type { FastifyReply, FastifyRequest } from "fastify";
import type { Accounts } from "../engine/accounts.js";
import type { Keyward } from "../engine/keyward.js";
import type { RouteRequirement } from "../middleware/http-edge.js";
import { authenticate, type ValidResult } from "./auth.js";
import type { ServiceConfig } from "./config.js";
import type { ServiceMetrics } from "./metrics.js";
import { type Caller, carriesApiKey, readSessionCookie, resolveSessionCaller } from "./sessions.js";

/** What every route module is given. */
export interface ServiceContext {
  keyward: Keyward;
  config: ServiceConfig;
  metrics: ServiceMetrics;
  /** People, sessions and key requests; null when the store has no account adapter (memory). */
  accounts: Accounts | null;
  /** Management calls: the caller's key must hold `scopes`; not metered against its limits. */
  requireKey(request: FastifyRequest, reply: FastifyReply, scopes: string[]): Promise<ValidResult | null>;
  /**
   * Management calls open to the dashboard too: an API key holding `scopes`, or a dashboard
   * session whose role holds them (members then act on their own keys only).
   */
  requireCaller(request: FastifyRequest, reply: FastifyReply, scopes: string[]): Promise<Caller | null>;
  /** Authenticates with a full requirement (authz, introspection). */
  authenticate(request: FastifyRequest, reply: FastifyReply, requirement: RouteRequirement): Promise<ValidResult | null>;
}

export function createServiceContext(
  keyward: Keyward,
  config: ServiceConfig,
  metrics: ServiceMetrics,
  accounts: Accounts | null = null,
): ServiceContext {
  const edge = { realm: config.realm, allowQueryKeys: config.allowQueryKeys };
  const requireKey = (request: FastifyRequest, reply: FastifyReply, scopes: string[]) =>
    authenticate(keyward, request, reply, { scopes, skipLimits: true }, edge);
  return {
    keyward,
    config,
    metrics,
    accounts,
    requireKey,
    async requireCaller(request, reply, scopes) {
      if (accounts && !carriesApiKey(request) && readSessionCookie(request) !== null) {
        return resolveSessionCaller(accounts, request, scopes);
      }
      const result = await requireKey(request, reply, scopes);
      return result ? { kind: "key", actor: { type: "admin_key", id: result.key.id }, scopes: result.key.scopes, result } : null;
    },
    authenticate: (request, reply, requirement) => authenticate(keyward, request, reply, requirement, edge),
  };
}
