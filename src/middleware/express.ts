import type { NextFunction, Request, RequestHandler, Response } from "express";
import type { VerifiedKey } from "../core/key-view.js";
import {
  authenticateRequestInline,
  type EdgeDecision,
  type EdgeOptions,
  type RouteRequirement,
  type Verifier,
  type VerifierResult,
} from "./http-edge.js";
import { readCarrierHeaders, releaseWhenDone, sendDenial } from "./node-http.js";

export type { VerifiedKey } from "../core/key-view.js";
export type { EdgeOptions, RouteRequirement, Verifier } from "./http-edge.js";

declare global {
  namespace Express {
    interface Request {
      /** The verified API key; undefined on unprotected routes or in optional mode without a key. */
      apiKey?: VerifiedKey;
    }
  }
}

/**
 * Keyward for Express (4 and 5). `require(requirement)` returns middleware that protects a
 * route and sets `req.apiKey`. The client address is `req.ip` (mind Express's `trust proxy`).
 *
 * @example
 * const auth = keywardExpress(keyward);
 * app.post("/approvals", auth.require({ scopes: ["write"] }), (req, res) => res.json({ by: req.apiKey?.owner }));
 */
export function keywardExpress(verifier: Verifier, options: EdgeOptions = {}) {
  return {
    require(requirement: RouteRequirement = {}): RequestHandler {
      return function keywardMiddleware(req: Request, res: Response, next: NextFunction) {
        const url = req.originalUrl ?? req.url;
        const question = url.indexOf("?");
        const apply = (decision: EdgeDecision<VerifierResult>) => {
          if (decision.kind === "deny") {
            sendDenial(res, decision);
            return;
          }
          for (const [name, value] of Object.entries(decision.headers)) res.setHeader(name, value);
          if (decision.kind === "allow") {
            req.apiKey = decision.result.key;
            releaseWhenDone(res, decision.result.release);
          }
          next();
        };
        let decided: EdgeDecision<VerifierResult> | Promise<EdgeDecision<VerifierResult>>;
        try {
          decided = authenticateRequestInline(
            verifier,
            { headers: readCarrierHeaders(req), search: question < 0 ? "" : url.slice(question + 1), url, ip: req.ip, method: req.method },
            requirement,
            options,
          );
        } catch (error) {
          next(error);
          return;
        }
        // A key fresh in the cache is decided in this tick: the route runs with no promise made.
        if (decided instanceof Promise) decided.then(apply, (error: unknown) => next(error));
        else apply(decided);
      };
    },
  };
}
