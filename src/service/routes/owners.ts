import type { Static } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import { KeywardError } from "../../core/errors.js";
import { requestContext } from "../auth.js";
import type { ServiceContext } from "../context.js";
import { OwnerParams, UpdateOwnerBody } from "../schemas.js";

const ownerJson = (owner: { type: string; id: string; disabled: boolean; createdAt: number }) => ({
  type: owner.type,
  id: owner.id,
  disabled: owner.disabled,
  created_at: new Date(owner.createdAt).toISOString(),
});

/** Owners (users and applications): disabling one disables all of its keys at once. */
export function registerOwnerRoutes(app: FastifyInstance, ctx: ServiceContext): void {
  app.get<{ Params: Static<typeof OwnerParams> }>(
    "/v1/owners/:type/:id",
    { schema: { tags: ["owners"], summary: "An owner and whether it is disabled", params: OwnerParams } },
    async (request, reply) => {
      const caller = await ctx.requireKey(request, reply, ["keys:read"]);
      if (!caller) return reply;
      const owner = await ctx.keyward.store.getOwner(request.params);
      if (!owner) throw new KeywardError("RESOURCE_NOT_FOUND", "no such owner");
      return ownerJson(owner);
    },
  );

  app.patch<{ Params: Static<typeof OwnerParams>; Body: Static<typeof UpdateOwnerBody> }>(
    "/v1/owners/:type/:id",
    {
      schema: {
        tags: ["owners"],
        summary: "Disable or enable an owner and, with it, every key it holds",
        params: OwnerParams,
        body: UpdateOwnerBody,
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireKey(request, reply, ["users:write"]);
      if (!caller) return reply;
      const owner = await ctx.keyward.setOwnerDisabled(request.params, request.body.disabled, requestContext(request, caller));
      return ownerJson(owner);
    },
  );
}
