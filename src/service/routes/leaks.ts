import type { Static } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import { requestContext } from "../auth.js";
import type { ServiceContext } from "../context.js";
import { LeakReportBody } from "../schemas.js";

/** `POST /v1/leaks`: report leaked keys; each known key is revoked at once and audited. */
export function registerLeakRoutes(app: FastifyInstance, ctx: ServiceContext): void {
  app.post<{ Body: Static<typeof LeakReportBody> }>(
    "/v1/leaks",
    {
      schema: {
        tags: ["keys"],
        summary: "Report leaked keys (plaintext list): each known key is revoked and audited; others are reported back by position",
        body: LeakReportBody,
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireKey(request, reply, ["keys:write"]);
      if (!caller) return reply;
      const results = await ctx.keyward.reportLeaks(request.body.keys, request.body.source ?? "api", requestContext(request, caller));
      return {
        revoked: results.filter((r) => r.outcome === "revoked").length,
        results,
      };
    },
  );
}
