import type { Static } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import type { Authority } from "../../authority/model.js";
import { normalizeEmail, type UserRecord } from "../../core/accounts.js";
import { KeywardError } from "../../core/errors.js";
import type { OwnerRecord } from "../../core/model.js";
import type { MembershipRecord, OrganizationRole } from "../../core/organizations.js";
import { cryptoRandomBytes, generateId } from "../../core/random.js";
import type { Accounts } from "../../engine/accounts.js";
import {
  changeOrganizationMember,
  memberJson,
  membersWithEmails,
  mergeSharedLimits,
  organizationJson,
  organizationRef,
} from "../../engine/organizations.js";
import { enforce, liveKeysOf, scopedTo } from "../authority-gate.js";
import type { ServiceContext } from "../context.js";
import {
  AddOrganizationMemberBody,
  CreateOrganizationBody,
  ListOrganizationsQuery,
  OrganizationMemberParams,
  OrganizationMemberSchema,
  OrganizationParams,
  OrganizationSchema,
  ProblemSchema,
  UpdateOrganizationBody,
  UpdateOrganizationMemberBody,
} from "../schemas.js";
import { type AuthorizedCaller, callerContext } from "../sessions.js";

const errors = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema };

/** An administrator, an admin key, the CLI: no bound short of the admin role's. */
const governs = (authority: Authority): boolean => authority.bounds.every((bound) => bound.source === "admin_role");

/**
 * Organizations (docs/organizations.md): owners of keys whose members manage them by role.
 * Administrators create them and set the limits their keys share; owners and admins manage
 * members; every member sees the organization. Anyone else is told it does not exist.
 */
export function registerOrganizationRoutes(app: FastifyInstance, ctx: ServiceContext, accounts: Accounts): void {
  const { keyward } = ctx;
  const store = accounts.store;

  /** The organization as the caller may see it, with the caller's role there; 404 for anyone outside it. */
  async function visible(caller: AuthorizedCaller, id: string): Promise<{ owner: OwnerRecord; role: OrganizationRole | null }> {
    const owner = await keyward.store.getOwner(organizationRef(id));
    const missing = new KeywardError("RESOURCE_NOT_FOUND", `no organization ${id}`);
    if (!owner) throw missing;
    if (caller.kind === "user" && caller.user.role !== "admin") {
      const membership = await store.getMembership(id, caller.user.id);
      if (!membership) throw missing;
      return { owner, role: membership.role };
    }
    // A key bound to one owner (an organization's own key, a member's key) sees that owner only.
    const only = caller.authority.bounds.find((bound) => bound.reach === "owner")?.owner;
    if (only && !(only.type === "organization" && only.id === id)) throw missing;
    return { owner, role: null };
  }

  async function userNamed(body: { user_id?: string | undefined; email?: string | undefined }): Promise<UserRecord> {
    if ((body.user_id === undefined) === (body.email === undefined))
      throw new KeywardError("VALIDATION_FAILED", "give user_id or email, not both", {
        errors: [{ field: "body", message: "give user_id or email, not both" }],
      });
    const user =
      body.user_id !== undefined ? await store.getUser(body.user_id) : await store.getUserByEmail(normalizeEmail(body.email as string));
    if (!user) throw new KeywardError("RESOURCE_NOT_FOUND", "no such user: invite them to the console first");
    return user;
  }

  app.post<{ Body: Static<typeof CreateOrganizationBody> }>(
    "/v1/organizations",
    {
      schema: {
        tags: ["organizations"],
        summary: "Create an organization (administrators), with the limits its keys share",
        body: CreateOrganizationBody,
        response: { 201: OrganizationSchema, ...errors },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["keys:write"]);
      if (!caller) return reply;
      enforce(caller.authority, { type: "organization.govern" });
      const { id, name, ...limits } = request.body;
      const owner = organizationRef(id ?? generateId("org", cryptoRandomBytes));
      const created = await keyward.createOwner(
        owner,
        { name, limits: mergeSharedLimits(limits, null) ?? null },
        callerContext(request, caller),
      );
      return reply.code(201).send(organizationJson(created, null));
    },
  );

  app.get<{ Querystring: Static<typeof ListOrganizationsQuery> }>(
    "/v1/organizations",
    {
      schema: {
        tags: ["organizations"],
        summary: "Organizations, newest first: an administrator sees all, a member their own",
        querystring: ListOrganizationsQuery,
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["keys:read"]);
      if (!caller) return reply;
      const q = request.query;
      const roles = new Map<string, OrganizationRole>();
      let ids: string[] | undefined;
      if (caller.kind === "user" && caller.user.role !== "admin") {
        for (const membership of await store.listMembershipsOfUser(caller.user.id)) roles.set(membership.organizationId, membership.role);
        ids = [...roles.keys()];
      } else {
        const only = caller.authority.bounds.find((bound) => bound.reach === "owner")?.owner;
        if (only) ids = only.type === "organization" ? [only.id] : [];
      }
      const page = await keyward.listOwners(
        { type: "organization", ...(q.q ? { q: q.q } : {}), ...(ids ? { ids } : {}) },
        { ...(q.limit ? { limit: q.limit } : {}), ...(q.cursor ? { cursor: q.cursor } : {}) },
      );
      if (caller.kind === "user" && caller.user.role === "admin")
        for (const membership of await store.listMembershipsOfUser(caller.user.id)) roles.set(membership.organizationId, membership.role);
      return {
        data: page.data.map((owner) => organizationJson(owner, roles.get(owner.id) ?? null)),
        next_cursor: page.nextCursor,
        has_more: page.nextCursor !== null,
      };
    },
  );

  app.get<{ Params: Static<typeof OrganizationParams> }>(
    "/v1/organizations/:id",
    {
      schema: {
        tags: ["organizations"],
        summary: "One organization, with the caller's role in it",
        params: OrganizationParams,
        response: { 200: OrganizationSchema, ...errors },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["keys:read"]);
      if (!caller) return reply;
      const { owner, role } = await visible(caller, request.params.id);
      return organizationJson(owner, role);
    },
  );

  app.patch<{ Params: Static<typeof OrganizationParams>; Body: Static<typeof UpdateOrganizationBody> }>(
    "/v1/organizations/:id",
    {
      schema: {
        tags: ["organizations"],
        summary: "Rename (owners, admins), set shared limits (administrators), disable or enable with every key it holds",
        params: OrganizationParams,
        body: UpdateOrganizationBody,
        response: { 200: OrganizationSchema, ...errors },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["keys:write"]);
      if (!caller) return reply;
      const { owner, role } = await visible(caller, request.params.id);
      const ref = organizationRef(owner.id);
      const scoped = await scopedTo(ctx, caller, ref);
      const { name, disabled, ...limitFields } = request.body;
      const limits = mergeSharedLimits(limitFields, owner);
      // Every decision first: a body that is partly refused changes nothing.
      if (name !== undefined) enforce(scoped.authority, { type: "organization.update", organization: ref });
      if (limits !== undefined) enforce(scoped.authority, { type: "organization.govern" });
      if (disabled !== undefined)
        enforce(scoped.authority, {
          type: "owner.update",
          owner: ref,
          disabled,
          user: null,
          keys: governs(scoped.authority) ? [] : await liveKeysOf(ctx, ref),
        });
      const context = callerContext(request, caller);
      let updated = owner;
      if (name !== undefined || limits !== undefined)
        updated = await keyward.updateOwner(
          ref,
          { ...(name !== undefined ? { name } : {}), ...(limits !== undefined ? { limits } : {}) },
          context,
        );
      if (disabled !== undefined && disabled !== owner.disabled) updated = await keyward.setOwnerDisabled(ref, disabled, context);
      return organizationJson(updated, role);
    },
  );

  app.get<{ Params: Static<typeof OrganizationParams> }>(
    "/v1/organizations/:id/members",
    {
      schema: {
        tags: ["organizations"],
        summary: "An organization's members and their roles, oldest first",
        params: OrganizationParams,
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["keys:read"]);
      if (!caller) return reply;
      await visible(caller, request.params.id);
      return { data: await membersWithEmails(store, request.params.id) };
    },
  );

  /** One change to the members, decided on the role before and after, audited with the change. */
  async function changeMember(
    caller: AuthorizedCaller,
    request: Parameters<typeof callerContext>[0],
    organization: string,
    user: UserRecord,
    from: OrganizationRole | null,
    to: OrganizationRole | null,
  ): Promise<MembershipRecord | null> {
    const ref = organizationRef(organization);
    const scoped = await scopedTo(ctx, caller, ref);
    const leaving = to === null && caller.kind === "user" && caller.user.id === user.id;
    enforce(scoped.authority, { type: "organization.members", organization: ref, from, to, ...(leaving ? { leaving } : {}) });
    return changeOrganizationMember(keyward, store, callerContext(request, caller), organization, user, from, to);
  }

  app.post<{ Params: Static<typeof OrganizationParams>; Body: Static<typeof AddOrganizationMemberBody> }>(
    "/v1/organizations/:id/members",
    {
      schema: {
        tags: ["organizations"],
        summary: "Add a console user to an organization, by id or email, with a role",
        params: OrganizationParams,
        body: AddOrganizationMemberBody,
        response: { 201: OrganizationMemberSchema, ...errors },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["keys:write"]);
      if (!caller) return reply;
      await visible(caller, request.params.id);
      // Decided before the user is looked up: a member who may not add anyone learns nothing of who uses the console.
      const ref = organizationRef(request.params.id);
      enforce((await scopedTo(ctx, caller, ref)).authority, {
        type: "organization.members",
        organization: ref,
        from: null,
        to: request.body.role,
      });
      const user = await userNamed(request.body);
      if (await store.getMembership(request.params.id, user.id))
        throw new KeywardError("CONFLICT", `${user.email} is a member already: change their role instead`);
      // Already decided above (adding: no role before, and nobody is leaving).
      const context = callerContext(request, caller);
      const added = await changeOrganizationMember(keyward, store, context, request.params.id, user, null, request.body.role);
      return reply.code(201).send(memberJson(added as MembershipRecord, user));
    },
  );

  app.patch<{ Params: Static<typeof OrganizationMemberParams>; Body: Static<typeof UpdateOrganizationMemberBody> }>(
    "/v1/organizations/:id/members/:user_id",
    {
      schema: {
        tags: ["organizations"],
        summary: "Change a member's role",
        params: OrganizationMemberParams,
        body: UpdateOrganizationMemberBody,
        response: { 200: OrganizationMemberSchema, ...errors },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["keys:write"]);
      if (!caller) return reply;
      await visible(caller, request.params.id);
      const { user, membership } = await memberOf(request.params.id, request.params.user_id);
      const changed = await changeMember(caller, request, request.params.id, user, membership.role, request.body.role);
      return memberJson(changed as MembershipRecord, user);
    },
  );

  app.delete<{ Params: Static<typeof OrganizationMemberParams> }>(
    "/v1/organizations/:id/members/:user_id",
    {
      schema: {
        tags: ["organizations"],
        summary: "Remove a member (or leave): their access ends at once; the organization's keys stay with it",
        params: OrganizationMemberParams,
        response: { 204: { type: "null" }, ...errors },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["keys:read"]);
      if (!caller) return reply;
      await visible(caller, request.params.id);
      const { user, membership } = await memberOf(request.params.id, request.params.user_id);
      await changeMember(caller, request, request.params.id, user, membership.role, null);
      return reply.code(204).send();
    },
  );

  async function memberOf(organization: string, userId: string): Promise<{ user: UserRecord; membership: MembershipRecord }> {
    const membership = await store.getMembership(organization, userId);
    const user = membership ? await store.getUser(userId) : null;
    if (!membership || !user) throw new KeywardError("RESOURCE_NOT_FOUND", "no such member");
    return { user, membership };
  }
}
