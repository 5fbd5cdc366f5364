import type { IncomingMessage, ServerResponse } from "node:http";
import type { MiddlewareHandler } from "hono";
import type { DistinctHeaders } from "../core/carriers.js";
import type { VerifiedKey } from "../core/key-view.js";
import { authenticateRequestInline, type EdgeOptions, type RouteRequirement, type Verifier } from "./http-edge.js";
import { readCarrierHeaders, releaseWhenDone } from "./node-http.js";
import { PROBLEM_CONTENT_TYPE } from "./problem.js";

export type { VerifiedKey } from "../core/key-view.js";
export type { EdgeOptions, RouteRequirement, Verifier } from "./http-edge.js";

/** The Hono variables Keyward sets: `c.get("apiKey")`. */
export type KeywardVariables = { apiKey: VerifiedKey | undefined };

/** Fetch `Headers` join repeated values; on @hono/node-server the Node request keeps them apart. */
function readHeaders(raw: Request, incoming: IncomingMessage | undefined): DistinctHeaders {
  if (incoming?.rawHeaders) return readCarrierHeaders(incoming);
  const headers: DistinctHeaders = {};
  raw.headers.forEach((value, name) => {
    headers[name] = [value];
  });
  return headers;
}

/** The query string without `?` (and without a fragment), with no `URL` parsed per request. */
function rawSearch(url: string): string {
  const question = url.indexOf("?");
  if (question < 0) return "";
  const hash = url.indexOf("#", question);
  return hash < 0 ? url.slice(question + 1) : url.slice(question + 1, hash);
}

/**
 * Keyward for Hono. `require(requirement)` protects a route and sets `c.get("apiKey")`.
 * On @hono/node-server it reads repeated headers and the client address from the Node request.
 *
 * @example
 * const auth = keywardHono(keyward);
 * app.get("/approvals", auth.require({ scopes: ["read"] }), (c) => c.json({ owner: c.get("apiKey")?.owner }));
 */
export function keywardHono(verifier: Verifier, options: EdgeOptions = {}) {
  return {
    require(requirement: RouteRequirement = {}): MiddlewareHandler<{ Variables: KeywardVariables }> {
      return async function keywardHonoMiddleware(c, next) {
        const env = c.env as { incoming?: IncomingMessage; outgoing?: ServerResponse } | undefined;
        const decided = authenticateRequestInline(
          verifier,
          {
            headers: readHeaders(c.req.raw, env?.incoming),
            search: rawSearch(c.req.url),
            url: c.req.url,
            ip: env?.incoming?.socket.remoteAddress,
            method: c.req.method,
          },
          requirement,
          options,
        );
        // A key fresh in the cache is decided in this tick: no await on the way to the route.
        const decision = decided instanceof Promise ? await decided : decided;
        if (decision.kind === "deny") {
          return c.body(JSON.stringify(decision.problem), decision.status as 400, {
            ...decision.headers,
            "content-type": PROBLEM_CONTENT_TYPE,
          });
        }
        c.set("apiKey", decision.kind === "allow" ? decision.result.key : undefined);
        const release = decision.kind === "allow" ? decision.result.release : undefined;
        // On node-server the slot is held until the Node response closes (sent, failed or aborted);
        // elsewhere (Bun, Deno, workers) until the handler has produced its response.
        if (env?.outgoing) releaseWhenDone(env.outgoing, release);
        try {
          await next();
          for (const [name, value] of Object.entries(decision.headers)) c.header(name, value);
        } finally {
          if (!env?.outgoing) release?.();
        }
      };
    },
  };
}
