import type { Static } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import { enforce } from "../authority-gate.js";
import type { ServiceContext } from "../context.js";
import { LeakReportBody } from "../schemas.js";
import { callerContext } from "../sessions.js";

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
      const caller = await ctx.requireKeyCaller(request, reply, ["keys:write"]);
      if (!caller) return reply;
      // Revoking a key whose plaintext the caller presents takes rights away and confers none.
      enforce(caller.authority, { type: "leaks.report" });
      const results = await ctx.keyward.reportLeaks(request.body.keys, request.body.source ?? "api", callerContext(request, caller));
      return {
        revoked: results.filter((r) => r.outcome === "revoked").length,
        results,
      };
    },
  );
}
