import type { IncomingMessage, ServerResponse } from "node:http";
import type { DistinctHeaders } from "../core/carriers.js";
import type { VerifiedKey } from "../core/key-view.js";
import {
  authenticateRequestInline,
  type EdgeDecision,
  type EdgeOptions,
  type EdgeRequest,
  type RouteRequirement,
  type Verifier,
} from "./http-edge.js";
import { PROBLEM_CONTENT_TYPE } from "./problem.js";

export type { VerifiedKey } from "../core/key-view.js";
export type { EdgeOptions, RouteRequirement, Verifier } from "./http-edge.js";

/**
 * The two carrier headers of a Node request, every repeated value kept apart (as
 * `headersDistinct` has them), read straight from `rawHeaders`: building `headersDistinct` for
 * every header of every request is work the verify path does not need.
 */
export function readCarrierHeaders(req: Pick<IncomingMessage, "rawHeaders" | "headersDistinct">): DistinctHeaders {
  const raw = req.rawHeaders;
  if (!Array.isArray(raw)) return req.headersDistinct;
  let authorization: string[] | undefined;
  let apiKey: string[] | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    // Compare lengths first: most headers are neither, and lower-casing them is the cost.
    const value = raw[i + 1] as string;
    if (name.length === 13 && name.toLowerCase() === "authorization") {
      if (authorization) authorization.push(value);
      else authorization = [value];
    } else if (name.length === 9 && name.toLowerCase() === "x-api-key") {
      if (apiKey) apiKey.push(value);
      else apiKey = [value];
    }
  }
  return { authorization, "x-api-key": apiKey };
}

/** Reads a Node request into the edge's view: every repeated carrier header kept apart. */
export function toEdgeRequest(req: IncomingMessage, ip?: string, requestId?: string): EdgeRequest {
  const url = req.url ?? "/";
  const question = url.indexOf("?");
  return {
    headers: readCarrierHeaders(req),
    search: question < 0 ? "" : url.slice(question + 1),
    url,
    ip: ip ?? req.socket.remoteAddress,
    ...(req.method ? { method: req.method } : {}),
    ...(requestId ? { requestId } : {}),
  };
}

/**
 * Frees a concurrency slot exactly once when the response ends: `close` fires after the
 * response is sent, when the handler errors and the socket closes, and when the client aborts.
 */
export function releaseWhenDone(res: ServerResponse, release: (() => void) | undefined): void {
  if (!release) return;
  let released = false;
  const once = () => {
    if (released) return;
    released = true;
    release();
  };
  res.once("close", once);
  res.once("finish", once);
}

/** Writes a deny decision as a problem document. */
export function sendDenial(res: ServerResponse, decision: Extract<EdgeDecision, { kind: "deny" }>): void {
  res.statusCode = decision.status;
  for (const [name, value] of Object.entries(decision.headers)) res.setHeader(name, value);
  res.setHeader("content-type", PROBLEM_CONTENT_TYPE);
  res.end(JSON.stringify(decision.problem));
}

export type GuardResult = { ok: true; key: VerifiedKey | undefined } | { ok: false };

/**
 * Protects plain `node:http` handlers. On success the verified key is returned (undefined in
 * `optional` mode with no key) and `RateLimit-*` headers are set; on failure the error response
 * has been sent and `ok` is false.
 *
 * @example
 * const guard = createNodeGuard(keyward);
 * http.createServer(async (req, res) => {
 *   const auth = await guard(req, res, { scopes: ["read"] });
 *   if (!auth.ok) return;
 *   res.end(`hello ${auth.key?.owner.id}`);
 * });
 */
export function createNodeGuard(verifier: Verifier, options: EdgeOptions = {}) {
  return async function keywardNodeGuard(
    req: IncomingMessage,
    res: ServerResponse,
    requirement: RouteRequirement = {},
  ): Promise<GuardResult> {
    const decided = authenticateRequestInline(verifier, toEdgeRequest(req), requirement, options);
    const decision = decided instanceof Promise ? await decided : decided;
    if (decision.kind === "deny") {
      sendDenial(res, decision);
      return { ok: false };
    }
    for (const [name, value] of Object.entries(decision.headers)) res.setHeader(name, value);
    if (decision.kind === "skip") return { ok: true, key: undefined };
    releaseWhenDone(res, decision.result.release);
    return { ok: true, key: decision.result.key };
  };
}
