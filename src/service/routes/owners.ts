import type { Static } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import { KeywardError } from "../../core/errors.js";
import { enforce, liveKeysOf } from "../authority-gate.js";
import type { ServiceContext } from "../context.js";
import { OwnerParams, UpdateOwnerBody } from "../schemas.js";
import { callerContext } from "../sessions.js";

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
      const caller = await ctx.requireKeyCaller(request, reply, ["users:write"]);
      if (!caller) return reply;
      const target = request.params;
      const user = target.type === "user" && ctx.accounts ? await ctx.accounts.store.getUser(target.id) : null;
      enforce(caller.authority, {
        type: "owner.update",
        owner: target,
        disabled: request.body.disabled,
        user,
        keys: caller.authority.bounds.length > 0 ? await liveKeysOf(ctx, target) : [],
      });
      const owner = await ctx.keyward.setOwnerDisabled(target, request.body.disabled, callerContext(request, caller));
      return ownerJson(owner);
    },
  );
}
