import type { Static } from "@sinclair/typebox";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { memberEnvironments } from "../../authority/actors.js";
import type { SessionRecord, UserRecord } from "../../core/accounts.js";
import type { Accounts } from "../../engine/accounts.js";
import { enforce, liveKeysOf, memberPolicyOf, memberRightsOf } from "../authority-gate.js";
import type { ServiceContext } from "../context.js";
import {
  ChangePasswordBody,
  CreateUserBody,
  ProblemSchema,
  SetupBody,
  SignInBody,
  UpdateUserBody,
  UserIdParams,
  UserSchema,
} from "../schemas.js";
import { callerContext, clearSessionCookie, readSessionCookies, resolveSessionCaller, setSessionCookie } from "../sessions.js";

const iso = (ms: number) => new Date(ms).toISOString();

export const userJson = (user: UserRecord) => ({
  id: user.id,
  email: user.email,
  role: user.role,
  disabled: user.disabled,
  created_at: iso(user.createdAt),
});

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
      const caller = await resolveSessionCaller(accounts, request, []);
      reply.header("cache-control", "no-store");
      return sessionJson(caller.user, caller.session);
    },
  );

  app.delete(
    "/v1/session",
    { schema: { tags: ["people"], summary: "Sign out: ends the session", security: [] } },
    async (request, reply) => {
      await resolveSessionCaller(accounts, request, []);
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
      const caller = await resolveSessionCaller(accounts, request, []);
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
        summary: "Create a dashboard user (admin)",
        body: CreateUserBody,
        response: { 201: UserSchema, ...errors },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["users:write"]);
      if (!caller) return reply;
      enforce(caller.authority, { type: "user.create", role: request.body.role, member: memberRightsOf(ctx) });
      const user = await accounts.createUser(request.body, callerContext(request, caller));
      return reply.code(201).send(userJson(user));
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
      const user = await accounts.getUser(request.params.id);
      enforce(caller.authority, {
        type: "user.update",
        user,
        disabled: request.body.disabled,
        member: memberRightsOf(ctx),
        keys: caller.authority.bounds.some((bound) => bound.source !== "admin_role")
          ? await liveKeysOf(ctx, { type: "user", id: user.id })
          : [],
      });
      return userJson(await accounts.setUserDisabled(request.params.id, request.body.disabled, callerContext(request, caller)));
    },
  );
}
