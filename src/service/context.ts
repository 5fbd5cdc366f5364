import type { FastifyReply, FastifyRequest } from "fastify";
import type { Keyward } from "../engine/keyward.js";
import type { RouteRequirement } from "../middleware/http-edge.js";
import { authenticate, type ValidResult } from "./auth.js";
import type { ServiceConfig } from "./config.js";
import type { ServiceMetrics } from "./metrics.js";

/** What every route module is given. */
export interface ServiceContext {
  keyward: Keyward;
  config: ServiceConfig;
  metrics: ServiceMetrics;
  /** Management calls: the caller's key must hold `scopes`; not metered against its limits. */
  requireKey(request: FastifyRequest, reply: FastifyReply, scopes: string[]): Promise<ValidResult | null>;
  /** Authenticates with a full requirement (authz, introspection). */
  authenticate(request: FastifyRequest, reply: FastifyReply, requirement: RouteRequirement): Promise<ValidResult | null>;
}

export function createServiceContext(keyward: Keyward, config: ServiceConfig, metrics: ServiceMetrics): ServiceContext {
  const edge = { realm: config.realm, allowQueryKeys: config.allowQueryKeys };
  return {
    keyward,
    config,
    metrics,
    requireKey: (request, reply, scopes) => authenticate(keyward, request, reply, { scopes, skipLimits: true }, edge),
    authenticate: (request, reply, requirement) => authenticate(keyward, request, reply, requirement, edge),
  };
}
