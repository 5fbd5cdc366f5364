import type { Static } from "@sinclair/typebox";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { memberEnvironments } from "../../authority/actors.js";
import { hasPassword, type SessionRecord, USER_ID_KIND, type UserLinkPurpose, type UserRecord } from "../../core/accounts.js";
import { type Accounts, type IssuedUserLink, USER_LINK_PAGES } from "../../engine/accounts.js";
import { buildAuditEvent } from "../../engine/audit.js";
import type { UserListFilter } from "../../ports/account-store.js";
import { enforce, liveKeysOf, memberPolicyOf, memberRightsOf } from "../authority-gate.js";
import type { ServiceContext } from "../context.js";
import { createLinkMailer, type LinkDelivery } from "../link-mailer.js";
import {
  AcceptLinkBody,
  ChangePasswordBody,
  CreatedUserSchema,
  CreateUserBody,
  EndedSessionsSchema,
  InspectLinkSchema,
  IssueLinkBody,
  LinkTokenBody,
  ListUsersQuery,
  OwnSessionParams,
  ProblemSchema,
  SessionListSchema,
  SetupBody,
  SignInBody,
  UpdateUserBody,
  UserIdParams,
  UserLinkSchema,
  UserListSchema,
  UserSchema,
  UserSessionParams,
} from "../schemas.js";
import {
  type AuthorizedCaller,
  callerContext,
  clearSessionCookie,
  readSessionCookies,
  resolveSessionCaller,
  setSessionCookie,
} from "../sessions.js";
import { ssoStatusJson } from "./oidc.js";

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

/** A session as lists show it: its public id, never its token, digest or CSRF token. */
export const sessionInfoJson = (session: SessionRecord, current: SessionRecord | null) => ({
  id: session.id,
  created_at: iso(session.createdAt),
  last_seen_at: iso(session.lastSeenAt),
  ip: session.ip,
  user_agent: session.userAgent,
  current: current !== null && current.digest === session.digest,
});

const USER_ID = new RegExp(`^${USER_ID_KIND}_[0-9A-Za-z]{16,40}$`);

/** Where a link opens the dashboard: the token in the fragment, which browsers never send to a server. */
const linkPath = (link: IssuedUserLink) => `/dashboard/#/${USER_LINK_PAGES[link.purpose]}/${link.token}`;

/** The issued link's JSON: the token is in this answer only. Its base is `KEYWARD_PUBLIC_URL`, else the request's origin. */
function linkJson(request: FastifyRequest, link: IssuedUserLink, publicUrl: string | null) {
  const path = linkPath(link);
  return {
    purpose: link.purpose,
    token: link.token,
    path,
    url: `${publicUrl ?? `${request.protocol}://${request.host}`}${path}`,
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

  // Emailing links (docs/configuration.md, "Email"): null unless KEYWARD_SMTP_URL is set.
  const mailer = createLinkMailer(ctx.config.mail, app.log);
  if (mailer) app.addHook("onClose", async () => mailer.close());

  /**
   * An issued link's JSON with `delivery` (docs/api.md): emailed to the user unless mail is not
   * configured or the caller said `send_email: false`. Whatever the email does, the link is in the
   * answer; the outcome is audited (without the link) after the link's own event.
   */
  async function deliveredLinkJson(
    request: FastifyRequest,
    caller: AuthorizedCaller,
    user: UserRecord,
    link: IssuedUserLink,
    sendEmail: boolean | undefined,
  ) {
    const json = linkJson(request, link, ctx.config.publicUrl);
    let delivery: LinkDelivery | { status: "not_requested" };
    if (!mailer) delivery = { status: "not_configured" };
    else if (sendEmail === false) delivery = { status: "not_requested" };
    else {
      const emailed = await mailer.send({
        purpose: link.purpose,
        to: user.email,
        userId: user.id,
        url: json.url,
        token: link.token,
        expiresAt: link.expiresAt,
        requestedBy: caller.kind === "user" ? caller.user.email : `The API key "${caller.result.record.name}"`,
      });
      delivery = emailed;
      const event = buildAuditEvent(
        callerContext(request, caller),
        ctx.keyward.clock.now(),
        emailed.status === "sent" ? "user.link_email_sent" : "user.link_email_failed",
        { type: "user", id: user.id },
        null,
        emailed.status === "sent"
          ? { purpose: link.purpose, to: emailed.to }
          : { purpose: link.purpose, reason: emailed.status === "failed" ? emailed.reason : emailed.status },
      );
      // The link is issued (and maybe emailed) already: a failed audit write must not lose it.
      await ctx.keyward.store.appendAuditEvent(event).catch((error: unknown) => {
        request.log.warn({ err: error, userId: user.id }, "the link email's audit event could not be written");
      });
    }
    return { ...json, delivery };
  }

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
    // With passwords off the setup link is refused, so it is never "needed"; the SSO fields only when configured (docs/sso.md).
    async () => ({
      needed: ctx.config.sso.passwordSignIn && (await accounts.store.countUsers()) === 0,
      ...ssoStatusJson(ctx.config.sso),
    }),
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

  app.get(
    "/v1/session/all",
    {
      schema: {
        tags: ["people"],
        summary: "Your own live dashboard sessions, newest first (`current`: this one)",
        security: [],
        response: { 200: SessionListSchema, ...errors },
      },
    },
    async (request, reply) => {
      const caller = await resolveSessionCaller(accounts, request, []);
      reply.header("cache-control", "no-store");
      return { data: (await accounts.listSessions(caller.user.id)).map((session) => sessionInfoJson(session, caller.session)) };
    },
  );

  app.delete(
    "/v1/session/others",
    {
      schema: {
        tags: ["people"],
        summary: "Sign out your other sessions: every session of yours but this one",
        security: [],
        response: { 200: EndedSessionsSchema, ...errors },
      },
    },
    async (request, reply) => {
      const caller = await resolveSessionCaller(accounts, request, []);
      const ended = await accounts.endSessions(caller.user.id, { exceptDigest: caller.session.digest }, callerContext(request, caller));
      reply.header("cache-control", "no-store");
      return { ended };
    },
  );

  app.delete<{ Params: Static<typeof OwnSessionParams> }>(
    "/v1/session/:session_id",
    {
      schema: {
        tags: ["people"],
        summary: "End one of your own sessions (this one too: that signs you out)",
        security: [],
        params: OwnSessionParams,
        response: { 200: EndedSessionsSchema, ...errors },
      },
    },
    async (request, reply) => {
      const caller = await resolveSessionCaller(accounts, request, []);
      const which = { sessionId: request.params.session_id };
      const ended = await accounts.endSessions(caller.user.id, which, callerContext(request, caller));
      if (request.params.session_id === caller.session.id) clearSessionCookie(reply, request, config);
      reply.header("cache-control", "no-store");
      return { ended };
    },
  );

  app.get<{ Querystring: Static<typeof ListUsersQuery> }>(
    "/v1/users",
    {
      schema: {
        tags: ["people"],
        summary: "Dashboard users (admin), oldest first: paged, searched by email or id, filtered by role and state",
        querystring: ListUsersQuery,
        response: { 200: UserListSchema, ...errors },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["users:write"]);
      if (!caller) return reply;
      enforce(caller.authority, { type: "users.read" });
      const q = request.query;
      const text = q.q?.trim() ?? "";
      const filter: UserListFilter = {
        ...(text !== "" ? { search: { email: text, ...(USER_ID.test(text) ? { id: text } : {}) } } : {}),
        ...(q.role ? { role: q.role } : {}),
        ...(q.disabled !== undefined ? { disabled: q.disabled } : {}),
      };
      const page = await accounts.listUsers(filter, { ...(q.limit ? { limit: q.limit } : {}), ...(q.cursor ? { cursor: q.cursor } : {}) });
      return {
        data: page.data.map(userJson),
        next_cursor: page.nextCursor,
        has_more: page.nextCursor !== null,
        ...(q.include_total ? { total: await accounts.store.countUsers(filter) } : {}),
      };
    },
  );

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
      const { email, password, role, send_email: sendEmail } = request.body;
      enforce(caller.authority, { type: "user.create", role, member: memberRightsOf(ctx) });
      if (password !== undefined) {
        const user = await accounts.createUser({ email, password, role }, callerContext(request, caller));
        return reply.code(201).send(userJson(user));
      }
      const invited = await accounts.inviteUser({ email, role }, callerContext(request, caller));
      reply.header("cache-control", "no-store");
      return reply
        .code(201)
        .send({ ...userJson(invited.user), invite: await deliveredLinkJson(request, caller, invited.user, invited.invite, sendEmail) });
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

  /** Ending a user's sessions is decided as managing the user is: nobody signs out someone mightier (docs/authority.md). */
  async function enforceEndSessions(caller: AuthorizedCaller, user: UserRecord): Promise<void> {
    enforce(caller.authority, {
      type: "user.sessions",
      user,
      member: memberRightsOf(ctx),
      keys: caller.authority.bounds.some((bound) => bound.source !== "admin_role")
        ? await liveKeysOf(ctx, { type: "user", id: user.id })
        : [],
    });
  }

  app.get<{ Params: Static<typeof UserIdParams> }>(
    "/v1/users/:id/sessions",
    {
      schema: {
        tags: ["people"],
        summary: "A user's live dashboard sessions, newest first (admin); `current` marks the caller's own",
        params: UserIdParams,
        response: { 200: SessionListSchema, ...errors },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["users:write"]);
      if (!caller) return reply;
      enforce(caller.authority, { type: "users.read" });
      const user = await accounts.getUser(request.params.id);
      const current = caller.kind === "user" ? caller.session : null;
      reply.header("cache-control", "no-store");
      return { data: (await accounts.listSessions(user.id)).map((session) => sessionInfoJson(session, current)) };
    },
  );

  app.delete<{ Params: Static<typeof UserIdParams> }>(
    "/v1/users/:id/sessions",
    {
      schema: {
        tags: ["people"],
        summary: "End every session of a user (admin): they are signed out at their next request",
        params: UserIdParams,
        response: { 200: EndedSessionsSchema, ...errors },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["users:write"]);
      if (!caller) return reply;
      const user = await accounts.getUser(request.params.id);
      await enforceEndSessions(caller, user);
      return { ended: await accounts.endSessions(user.id, {}, callerContext(request, caller)) };
    },
  );

  app.delete<{ Params: Static<typeof UserSessionParams> }>(
    "/v1/users/:id/sessions/:session_id",
    {
      schema: {
        tags: ["people"],
        summary: "End one session of a user (admin)",
        params: UserSessionParams,
        response: { 200: EndedSessionsSchema, ...errors },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireCaller(request, reply, ["users:write"]);
      if (!caller) return reply;
      const user = await accounts.getUser(request.params.id);
      await enforceEndSessions(caller, user);
      const which = { sessionId: request.params.session_id };
      return { ended: await accounts.endSessions(user.id, which, callerContext(request, caller)) };
    },
  );

  /** `POST /v1/users/{id}/invite` and `/password-reset`: a one-time link, decided as managing the user is. */
  const issueLink = (path: string, purpose: UserLinkPurpose, summary: string) =>
    app.post<{ Params: Static<typeof UserIdParams>; Body: Static<typeof IssueLinkBody> | undefined }>(
      path,
      {
        schema: { tags: ["people"], summary, params: UserIdParams, body: IssueLinkBody, response: { 201: UserLinkSchema, ...errors } },
        // The body is optional (the dashboard sends none): no body reads as `{}`.
        preValidation: async (request) => {
          request.body ??= {};
        },
      },
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
        return reply.code(201).send(await deliveredLinkJson(request, caller, user, link, request.body?.send_email));
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
