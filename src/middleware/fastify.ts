import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, preHandlerHookHandler } from "fastify";
import type { VerifiedKey } from "../core/key-view.js";
import {
  authenticateRequestInline,
  type EdgeDecision,
  type EdgeOptions,
  type RouteRequirement,
  type Verifier,
  type VerifierResult,
} from "./http-edge.js";
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

/** Applies a decision: a denial is sent here (and the route never runs), anything else goes on to the route. */
function applyDecision(
  request: FastifyRequest,
  reply: FastifyReply,
  decision: EdgeDecision<VerifierResult>,
  done: HookHandlerDoneFunction,
) {
  reply.headers(decision.headers);
  if (decision.kind === "deny") {
    // A callback hook that answers does not call done(): the reply is sent, the route is skipped.
    reply.code(decision.status).type(PROBLEM_CONTENT_TYPE).send(decision.problem);
    return;
  }
  if (decision.kind === "allow") {
    request.apiKey = decision.result.key;
    releaseWhenDone(reply.raw, decision.result.release);
  }
  done();
}

/**
 * Keyward for Fastify. Decorates `request.apiKey` and returns `require(requirement)`, a
 * preHandler that protects a route.
 *
 * The preHandler is a callback hook, not an async one: a key fresh in the cache is decided in
 * the same tick and the route runs with no promise made on the way (`verifyInline`); a store
 * read or the limits stage makes it wait as it must.
 *
 * @example
 * const auth = keywardFastify(app, keyward);
 * app.get("/approvals", { preHandler: auth.require({ scopes: ["read"] }) }, async (request) => request.apiKey?.owner);
 */
export function keywardFastify(app: FastifyInstance, verifier: Verifier, options: EdgeOptions = {}) {
  if (!app.hasRequestDecorator("apiKey")) app.decorateRequest("apiKey", undefined);
  return {
    require(requirement: RouteRequirement = {}): preHandlerHookHandler {
      return function keywardPreHandler(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
        const question = request.url.indexOf("?");
        let decided: EdgeDecision<VerifierResult> | Promise<EdgeDecision<VerifierResult>>;
        try {
          decided = authenticateRequestInline(
            verifier,
            {
              headers: readCarrierHeaders(request.raw),
              search: question < 0 ? "" : request.url.slice(question + 1),
              url: request.url,
              ip: request.ip,
              requestId: request.id,
              method: request.method,
            },
            requirement,
            options,
          );
        } catch (error) {
          done(error as Error);
          return;
        }
        if (decided instanceof Promise) {
          decided.then((decision) => applyDecision(request, reply, decision, done)).catch((error: Error) => done(error));
          return;
        }
        applyDecision(request, reply, decided, done);
      };
    },
  };
}
