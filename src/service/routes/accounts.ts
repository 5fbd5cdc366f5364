import type { Static } from "@sinclair/typebox";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { memberEnvironments } from "../../authority/actors.js";
import { hasPassword, type SessionRecord, type UserLinkPurpose, type UserRecord } from "../../core/accounts.js";
import { type Accounts, type IssuedUserLink, USER_LINK_PAGES } from "../../engine/accounts.js";
import { enforce, liveKeysOf, memberPolicyOf, memberRightsOf } from "../authority-gate.js";
import type { ServiceContext } from "../context.js";
import {
  AcceptLinkBody,
  ChangePasswordBody,
  CreatedUserSchema,
  CreateUserBody,
  InspectLinkSchema,
  LinkTokenBody,
  ProblemSchema,
  SetupBody,
  SignInBody,
  UpdateUserBody,
  UserIdParams,
  UserLinkSchema,
  UserSchema,
} from "../schemas.js";
import { callerContext, clearSessionCookie, readSessionCookies, resolveSessionCaller, setSessionCookie } from "../sessions.js";

const iso = (ms: number) => new Date(ms).toISOString();

export const userJson = (user: UserRecord) => ({
  id: user.id,
  email: user.email,
  role: user.role,
  disabled: user.disabled,
  password_set: hasPassword(user),
  must_change_password: user.mustChangePassword,
  created_at: iso(user.createdAt),
});

/** Where a link opens the dashboard: the token in the fragment, which browsers never send to a server. */
const linkPath = (link: IssuedUserLink) => `/dashboard/#/${USER_LINK_PAGES[link.purpose]}/${link.token}`;

/** The issued link's JSON: the token is in this answer only. */
function linkJson(request: FastifyRequest, link: IssuedUserLink) {
  const path = linkPath(link);
  return {
    purpose: link.purpose,
    token: link.token,
    path,
    url: `${request.protocol}://${request.host}${path}`,
    expires_at: iso(link.expiresAt),
  };
}

const errors = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema };

/** People: the one-time setup, sign-in and sessions, and user management (admin). */
export function registerAccountRoutes(app: FastifyInstance, ctx: ServiceContext, accounts: Accounts): void {
  const config = ctx.config.dashboard;
  const context = (request: FastifyRequest) => ({ ip: request.ip, userAgent: request.headers["user-agent"], requestId: request.id });

  const sessionJson = (user: UserRecord, session: SessionRecord) => ({
    user: userJson(user),
    csrf_token: session.csrfToken,
    idle_timeout_seconds: Math.floor(accounts.sessionIdleMs / 1000),
    expires_at: iso(session.createdAt + accounts.sessionMaxMs),
    allowed_scopes: user.role === "admin" ? config.adminKeyScopes : config.memberKeyScopes,
    allowed_environments: user.role === "admin" ? ["sandbox", "production"] : memberEnvironments(memberPolicyOf(ctx)),
    // True: every call but this one, sign-out and POST /v1/session/password answers 403 PASSWORD_CHANGE_REQUIRED.
    password_change_required: user.mustChangePassword,
  });

  /** Sign-in always starts a fresh session (the old one, if any, is ended): no session fixation. */
  async function openSession(request: FastifyRequest, reply: FastifyReply, email: string, password: string) {
    const previous = readSessionCookies(request);
    const opened = await accounts.signIn(email, password, context(request));
    for (const token of previous) await accounts.signOut(token);
    setSessionCookie(reply, request, config, opened.token);
    reply.header("cache-control", "no-store");
    return sessionJson(opened.user, opened.session);
  }

  app.get(
    "/v1/setup",
    { schema: { tags: ["people"], summary: "Whether the first admin still has to be created (public)", security: [] } },
    async () => ({ needed: (await accounts.store.countUsers()) === 0 }),
  );

  app.post<{ Body: Static<typeof SetupBody> }>(
    "/v1/setup",
    {
      schema: {
        tags: ["people"],
        summary: "Create the first admin with the one-time setup token, and sign in",
        body: SetupBody,
        security: [],
        response: { ...errors },
      },
    },
    async (request, reply) => {
      const { token, email, password } = request.body;
      await accounts.setupFirstAdmin(token, email, password, context(request));
      return reply.code(201).send(await openSession(request, reply, email, password));
    },
  );

  app.post<{ Body: Static<typeof SignInBody> }>(
    "/v1/session",
    {
      schema: {
        tags: ["people"],
        summary: "Sign in: sets the HttpOnly session cookie",
        body: SignInBody,
        security: [],
        response: { ...errors },
      },
    },
    async (request, reply) => reply.code(201).send(await openSession(request, reply, request.body.email, request.body.password)),
  );

  app.get(
    "/v1/session",
    { schema: { tags: ["people"], summary: "The current dashboard session", security: [] } },
    async (request, reply) => {
      const caller = await resolveSessionCaller(accounts, request, [], { passwordChange: "allowed" });
      reply.header("cache-control", "no-store");
      return sessionJson(caller.user, caller.session);
    },
  );

  app.delete(
    "/v1/session",
    { schema: { tags: ["people"], summary: "Sign out: ends the session", security: [] } },
    async (request, reply) => {
      await resolveSessionCaller(accounts, request, [], { passwordChange: "allowed" });
      for (const token of readSessionCookies(request)) await accounts.signOut(token);
      clearSessionCookie(reply, request, config);
      return reply.code(204).send();
    },
  );

  app.post<{ Body: Static<typeof ChangePasswordBody> }>(
    "/v1/session/password",
    {
      schema: {
        tags: ["people"],
        summary: "Change your own password: ends every session of yours and opens a fresh one here",
        body: ChangePasswordBody,
        security: [],
        response: { ...errors },
      },
    },
    async (request, reply) => {
      const caller = await resolveSessionCaller(accounts, request, [], { passwordChange: "allowed" });
      const { current_password, new_password } = request.body;
      const user = await accounts.changePassword(caller.user, current_password, new_password, callerContext(request, caller));
      return reply.code(201).send(await openSession(request, reply, user.email, new_password));
    },
  );

  app.get("/v1/users", { schema: { tags: ["people"], summary: "Dashboard users (admin)" } }, async (request, reply) => {
    const caller = await ctx.requireCaller(request, reply, ["users:write"]);
    if (!caller) return reply;
    enforce(caller.authority, { type: "users.read" });
    return { data: (await accounts.store.listUsers(1000)).map(userJson), next_cursor: null };
  });

  app.post<{ Body: Static<typeof CreateUserBody> }>(
    "/v1/users",
    {
      schema: {
        tags: ["people"],
        summary: "Create a dashboard user (admin); without a password, the answer carries a one-time invite link",
        body: CreateUserBody,
        response: { 201: CreatedUserSchema, ...errors },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["users:write"]);
      if (!caller) return reply;
      const { email, password, role } = request.body;
      enforce(caller.authority, { type: "user.create", role, member: memberRightsOf(ctx) });
      if (password !== undefined) {
        const user = await accounts.createUser({ email, password, role }, callerContext(request, caller));
        return reply.code(201).send(userJson(user));
      }
      const invited = await accounts.inviteUser({ email, role }, callerContext(request, caller));
      reply.header("cache-control", "no-store");
      return reply.code(201).send({ ...userJson(invited.user), invite: linkJson(request, invited.invite) });
    },
  );

  app.get<{ Params: Static<typeof UserIdParams> }>(
    "/v1/users/:id",
    { schema: { tags: ["people"], summary: "One dashboard user (admin)", params: UserIdParams, response: { 200: UserSchema, ...errors } } },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["users:write"]);
      if (!caller) return reply;
      enforce(caller.authority, { type: "users.read" });
      return userJson(await accounts.getUser(request.params.id));
    },
  );

  app.patch<{ Params: Static<typeof UserIdParams>; Body: Static<typeof UpdateUserBody> }>(
    "/v1/users/:id",
    {
      schema: {
        tags: ["people"],
        summary: "Disable or enable a user: disabling ends their sessions and disables their keys (admin)",
        params: UserIdParams,
        body: UpdateUserBody,
        response: { 200: UserSchema, ...errors },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["users:write"]);
      if (!caller) return reply;
      let user = await accounts.getUser(request.params.id);
      const { disabled, must_change_password: mustChange } = request.body;
      enforce(caller.authority, {
        type: "user.update",
        user,
        disabled: disabled ?? user.disabled,
        member: memberRightsOf(ctx),
        keys: caller.authority.bounds.some((bound) => bound.source !== "admin_role")
          ? await liveKeysOf(ctx, { type: "user", id: user.id })
          : [],
      });
      if (disabled !== undefined) user = await accounts.setUserDisabled(user.id, disabled, callerContext(request, caller));
      if (mustChange !== undefined && mustChange !== user.mustChangePassword)
        user = await accounts.setMustChangePassword(user.id, mustChange, callerContext(request, caller));
      return userJson(user);
    },
  );

  /** `POST /v1/users/{id}/invite` and `/password-reset`: a one-time link, decided as managing the user is. */
  const issueLink = (path: string, purpose: UserLinkPurpose, summary: string) =>
    app.post<{ Params: Static<typeof UserIdParams> }>(
      path,
      { schema: { tags: ["people"], summary, params: UserIdParams, response: { 201: UserLinkSchema, ...errors } } },
      async (request, reply) => {
        const caller = await ctx.requireCaller(request, reply, ["users:write"]);
        if (!caller) return reply;
        const user = await accounts.getUser(request.params.id);
        enforce(caller.authority, {
          type: "user.credentials",
          user,
          member: memberRightsOf(ctx),
          keys: caller.authority.bounds.some((bound) => bound.source !== "admin_role")
            ? await liveKeysOf(ctx, { type: "user", id: user.id })
            : [],
        });
        const link = await accounts.issueUserLink(user, purpose, callerContext(request, caller));
        reply.header("cache-control", "no-store");
        return reply.code(201).send(linkJson(request, link));
      },
    );
  issueLink(
    "/v1/users/:id/invite",
    "invite",
    "A new one-time invite link for a user who has no password yet (72 hours; revokes the user's earlier link)",
  );
  issueLink(
    "/v1/users/:id/password-reset",
    "reset",
    "A one-time password-reset link for a user (1 hour; revokes the user's earlier link; the current password works until it is used)",
  );

  /**
   * The public side of a link (docs/dashboard.md): `inspect` says whom it is for; `accept` sets
   * the password and signs the person in. Attempts are throttled per address as sign-ins are.
   */
  const linkRoutes = (base: string, purpose: UserLinkPurpose, what: string) => {
    app.post<{ Body: Static<typeof LinkTokenBody> }>(
      `${base}/inspect`,
      {
        schema: {
          tags: ["people"],
          summary: `Whom ${what} is for, while it works (public)`,
          body: LinkTokenBody,
          security: [],
          response: { 200: InspectLinkSchema, ...errors, 429: ProblemSchema },
        },
      },
      async (request, reply) => {
        const found = await accounts.inspectUserLink(request.body.token, purpose, request.ip);
        reply.header("cache-control", "no-store");
        return { purpose, email: found.user.email, expires_at: iso(found.expiresAt) };
      },
    );
    app.post<{ Body: Static<typeof AcceptLinkBody> }>(
      `${base}/accept`,
      {
        schema: {
          tags: ["people"],
          summary: `Use ${what} once: choose the password, and sign in (public)`,
          body: AcceptLinkBody,
          security: [],
          response: { ...errors, 429: ProblemSchema },
        },
      },
      async (request, reply) => {
        const user = await accounts.acceptUserLink(request.body.token, purpose, request.body.password, context(request));
        return reply.code(201).send(await openSession(request, reply, user.email, request.body.password));
      },
    );
  };
  linkRoutes("/v1/invites", "invite", "an invite link");
  linkRoutes("/v1/password-resets", "reset", "a password-reset link");
}
