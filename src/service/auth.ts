import type { FastifyReply, FastifyRequest } from "fastify";
import { KeywardError } from "../core/errors.js";
import type { RequestContext } from "../core/model.js";
import type { Keyward, VerifyResult } from "../engine/keyward.js";
import { authenticateRequest, type EdgeOptions, type RouteRequirement } from "../middleware/http-edge.js";
import { PROBLEM_CONTENT_TYPE } from "../middleware/problem.js";

export type ValidResult = Extract<VerifyResult, { valid: true }>;

/** The request's raw query string, without `?`. */
export function rawSearch(request: FastifyRequest): string {
  const question = request.url.indexOf("?");
  return question < 0 ? "" : request.url.slice(question + 1);
}

/**
 * Authenticates a service request by its key; on failure sends the problem and returns null.
 * Headers are read with `headersDistinct`, so a repeated carrier header is seen, not dropped.
 */
export async function authenticate(
  keyward: Keyward,
  request: FastifyRequest,
  reply: FastifyReply,
  requirement: RouteRequirement,
  options: EdgeOptions,
): Promise<ValidResult | null> {
  const decision = await authenticateRequest(
    keyward,
    {
      headers: request.raw.headersDistinct,
      search: rawSearch(request),
      url: request.url,
      ip: request.ip,
      requestId: request.id,
      method: request.method,
    },
    requirement,
    options,
  );
  if (decision.kind === "allow") {
    reply.headers(decision.headers);
    return decision.result;
  }
  if (decision.kind === "skip") throw new KeywardError("INTERNAL_ERROR", "optional mode is not used by the service");
  await reply.code(decision.status).headers(decision.headers).type(PROBLEM_CONTENT_TYPE).send(decision.problem);
  return null;
}

/** Who did it and from where, for the audit record of a management action. */
export function requestContext(request: FastifyRequest, caller: ValidResult): RequestContext {
  return {
    actor: { type: "admin_key", id: caller.key.id },
    ip: request.ip,
    userAgent: request.headers["user-agent"],
    requestId: request.id,
  };
}
