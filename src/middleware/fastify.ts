import type { FastifyInstance, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from "fastify";
import type { VerifiedKey } from "../core/key-view.js";
import { authenticateRequest, type EdgeOptions, type RouteRequirement, type Verifier } from "./http-edge.js";
import { readCarrierHeaders, releaseWhenDone } from "./node-http.js";
import { PROBLEM_CONTENT_TYPE } from "./problem.js";

export type { VerifiedKey } from "../core/key-view.js";
export type { EdgeOptions, RouteRequirement, Verifier } from "./http-edge.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The verified API key; undefined on unprotected routes or in optional mode without a key. */
    apiKey: VerifiedKey | undefined;
  }
}

/**
 * Keyward for Fastify. Decorates `request.apiKey` and returns `require(requirement)`, a
 * preHandler that protects a route.
 *
 * @example
 * const auth = keywardFastify(app, keyward);
 * app.get("/approvals", { preHandler: auth.require({ scopes: ["read"] }) }, async (request) => request.apiKey?.owner);
 */
export function keywardFastify(app: FastifyInstance, verifier: Verifier, options: EdgeOptions = {}) {
  if (!app.hasRequestDecorator("apiKey")) app.decorateRequest("apiKey", undefined);
  return {
    require(requirement: RouteRequirement = {}): preHandlerAsyncHookHandler {
      return async function keywardPreHandler(request: FastifyRequest, reply: FastifyReply) {
        const question = request.url.indexOf("?");
        const decision = await authenticateRequest(
          verifier,
          {
            headers: readCarrierHeaders(request.raw),
            search: question < 0 ? "" : request.url.slice(question + 1),
            ip: request.ip,
            requestId: request.id,
          },
          requirement,
          options,
        );
        reply.headers(decision.headers);
        if (decision.kind === "deny") {
          await reply.code(decision.status).type(PROBLEM_CONTENT_TYPE).send(decision.problem);
          return reply;
        }
        if (decision.kind === "allow") {
          request.apiKey = decision.result.key;
          releaseWhenDone(reply.raw, decision.result.release);
        }
      };
    },
  };
}
