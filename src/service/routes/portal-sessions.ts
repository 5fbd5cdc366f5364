import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Static, Type } from "@sinclair/typebox";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { KeywardError } from "../../core/errors.js";
import {
  checkPolicyScopes,
  checkReturnUrl,
  normaliseOrigin,
  PORTAL_DEFAULT_MAX_EXPIRES_IN_DAYS,
  PORTAL_DEFAULT_TTL_SECONDS,
  PORTAL_MAX_EXPIRES_IN_DAYS,
  PORTAL_MAX_TTL_SECONDS,
  type PortalSessionRecord,
} from "../../core/portal-policy.js";
import { isValidScope } from "../../core/scopes.js";
import type { PortalSessions } from "../../engine/portal-sessions.js";
import { enforce } from "../authority-gate.js";
import type { ServiceContext } from "../context.js";
import { EnvironmentSchema, OwnerSchema, ProblemSchema } from "../schemas.js";
import { type AuthorizedCaller, callerContext } from "../sessions.js";

const Email = Type.String({ minLength: 3, maxLength: 254, pattern: "^[^\\s@]+@[^\\s@]+$" });

export const CreatePortalSessionBody = Type.Object(
  {
    owner: OwnerSchema,
    policy: Type.Object(
      {
        scopes: Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { minItems: 1, maxItems: 64, uniqueItems: true }),
        environments: Type.Optional(Type.Array(EnvironmentSchema, { minItems: 1, maxItems: 2, uniqueItems: true })),
        max_expires_in_days: Type.Optional(Type.Integer({ minimum: 1, maximum: PORTAL_MAX_EXPIRES_IN_DAYS })),
        may_request_production: Type.Optional(Type.Boolean()),
        max_keys: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
      },
      { additionalProperties: false },
    ),
    actor: Type.Object(
      {
        id: Type.String({ minLength: 1, maxLength: 128 }),
        email: Type.Optional(Email),
      },
      { additionalProperties: false },
    ),
    expires_in_seconds: Type.Optional(Type.Integer({ minimum: 60, maximum: PORTAL_MAX_TTL_SECONDS })),
    allowed_origin: Type.Optional(Type.String({ minLength: 1, maxLength: 300 })),
    return_url: Type.Optional(Type.String({ minLength: 1, maxLength: 2000 })),
    app_name: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  },
  { additionalProperties: false },
);

const PortalSessionIdParams = Type.Object({ id: Type.String({ pattern: "^pts_[0-9A-Za-z]{16,40}$" }) });

const errors = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema };

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

function statusOf(session: PortalSessionRecord, now: number): "active" | "expired" | "revoked" {
  if (session.revokedAt !== null) return "revoked";
  return now >= session.expiresAt ? "expired" : "active";
}

const policyJson = (session: PortalSessionRecord) => ({
  scopes: session.policy.scopes,
  environments: session.policy.environments,
  max_expires_in_days: session.policy.maxExpiresInDays,
  may_request_production: session.policy.mayRequestProduction,
  max_keys: session.policy.maxKeys,
});

/** A portal session as the API shows it: never its token or digest. */
export function portalSessionJson(session: PortalSessionRecord, now: number) {
  return {
    id: session.id,
    owner: session.owner,
    policy: policyJson(session),
    actor: session.hostActor,
    status: statusOf(session, now),
    created_by: session.createdBy,
    created_at: iso(session.createdAt),
    expires_at: iso(session.expiresAt),
    revoked_at: iso(session.revokedAt),
    allowed_origin: session.allowedOrigin,
    return_url: session.returnUrl,
    app_name: session.appName,
  };
}

// src/service/routes and dist/service/routes are both three levels below the package root.
const EMBED = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "dashboard", "embed");

interface Asset {
  type: string;
  body: Buffer;
  etag: string;
}

function readAsset(name: string, type: string): Asset {
  const body = readFileSync(join(EMBED, name));
  return { type, body, etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"` };
}

/** The hosted page's policy: nothing inline, nothing from elsewhere, never framed (docs/security.md). */
export const PORTAL_PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join("; ");

/**
 * Portal sessions (docs/embedding.md, docs/api.md): opened by a host's backend with an admin key
 * or a `portal:create` key, used by its person's browser with `Authorization: Portal <token>` on
 * the key routes; the hosted page `/portal` and the `<keyward-keys>` element at `/embed/keys.js`.
 */
export function registerPortalSessionRoutes(app: FastifyInstance, ctx: ServiceContext, portals: PortalSessions): void {
  const now = () => ctx.keyward.clock.now();
  // Sessions that ended a week ago are deleted hourly (an unref'd timer: it keeps nothing alive).
  const sweep = setInterval(() => void portals.sweep().catch(() => undefined), 3_600_000);
  sweep.unref();
  app.addHook("onClose", async () => clearInterval(sweep));

  /** Reading or revoking: an admin key, or a `portal:create` key of the owner of the key that opened it. */
  async function manage(
    request: FastifyRequest,
    reply: FastifyReply,
  ): Promise<{ session: PortalSessionRecord; caller: AuthorizedCaller } | null> {
    const caller = await ctx.requireKeyCaller(request, reply, ["portal:create"]);
    if (!caller) return null;
    const session = await portals.get((request.params as { id: string }).id);
    const callerOwner = caller.kind === "key" ? caller.result.key.owner : null;
    enforce(caller.authority, { type: "portal_session.manage", openedBy: session.createdByOwner, caller: callerOwner });
    return { session, caller };
  }

  app.post<{ Body: Static<typeof CreatePortalSessionBody> }>(
    "/v1/portal-sessions",
    {
      schema: {
        tags: ["portal"],
        summary: "Open a portal session for one owner: the token is in this response only",
        body: CreatePortalSessionBody,
        response: { ...errors },
      },
    },
    async (request, reply) => {
      const caller = await ctx.requireKeyCaller(request, reply, ["portal:create"]);
      if (!caller) return reply;
      const body = request.body;
      for (const scope of body.policy.scopes)
        if (!isValidScope(scope))
          throw new KeywardError("VALIDATION_FAILED", `body.policy.scopes: ${scope} is not a valid scope`, {
            errors: [{ field: "body.policy.scopes", message: `${scope} is not a valid scope` }],
          });
      checkPolicyScopes(body.policy.scopes);
      const environments = body.policy.environments ?? ["sandbox"];
      const allowedOrigin = body.allowed_origin === undefined ? null : normaliseOrigin(body.allowed_origin);
      if (body.allowed_origin !== undefined && allowedOrigin === null)
        throw new KeywardError("VALIDATION_FAILED", "body.allowed_origin: must be an origin such as https://app.example.com", {
          errors: [{ field: "body.allowed_origin", message: "must be an origin such as https://app.example.com" }],
        });
      const returnUrl = body.return_url === undefined ? null : checkReturnUrl(body.return_url);
      // Decided as delegating is: a portal:create key hands out no more than its own ceiling.
      enforce(caller.authority, { type: "portal_session.create", owner: body.owner, scopes: body.policy.scopes, environments });
      const { token, session } = await portals.open(
        {
          owner: body.owner,
          policy: {
            scopes: body.policy.scopes,
            environments,
            maxExpiresInDays: body.policy.max_expires_in_days ?? PORTAL_DEFAULT_MAX_EXPIRES_IN_DAYS,
            mayRequestProduction: body.policy.may_request_production ?? false,
            maxKeys: body.policy.max_keys ?? null,
          },
          hostActor: { id: body.actor.id, email: body.actor.email ?? null },
          createdByOwner: caller.kind === "key" ? caller.result.key.owner : null,
          ttlSeconds: body.expires_in_seconds ?? PORTAL_DEFAULT_TTL_SECONDS,
          allowedOrigin,
          returnUrl,
          appName: body.app_name ?? null,
        },
        callerContext(request, caller),
      );
      const base = ctx.config.publicUrl ?? `${request.protocol}://${request.host}`;
      reply.header("cache-control", "no-store");
      return reply.code(201).send({
        ...portalSessionJson(session, now()),
        token,
        // The token rides in the fragment, which browsers never send to a server; the page removes it.
        url: `${base}/portal#token=${token}`,
      });
    },
  );

  app.get<{ Params: Static<typeof PortalSessionIdParams> }>(
    "/v1/portal-sessions/:id",
    { schema: { tags: ["portal"], summary: "A portal session (never its token)", params: PortalSessionIdParams, response: { ...errors } } },
    async (request, reply) => {
      const managed = await manage(request, reply);
      if (!managed) return reply;
      return portalSessionJson(managed.session, now());
    },
  );

  app.delete<{ Params: Static<typeof PortalSessionIdParams> }>(
    "/v1/portal-sessions/:id",
    {
      schema: {
        tags: ["portal"],
        summary: "Revoke a portal session: its token stops at once",
        params: PortalSessionIdParams,
        response: { ...errors },
      },
    },
    async (request, reply) => {
      const managed = await manage(request, reply);
      if (!managed) return reply;
      const revoked = await portals.revoke(managed.session.id, callerContext(request, managed.caller));
      return portalSessionJson(revoked, now());
    },
  );

  app.get(
    "/v1/portal/session",
    { schema: { tags: ["portal"], summary: "The calling portal session: its owner, policy and links", response: { ...errors } } },
    async (request, reply) => {
      const caller = await ctx.portalCaller(request, ["keys:read"]);
      if (!caller) throw new KeywardError("PORTAL_TOKEN_INVALID", "send the portal token as Authorization: Portal <token>");
      reply.header("cache-control", "no-store");
      const session = caller.portal;
      return {
        id: session.id,
        owner: session.owner,
        policy: policyJson(session),
        actor: session.hostActor,
        expires_at: iso(session.expiresAt),
        return_url: session.returnUrl,
        app_name: session.appName,
      };
    },
  );

  const page = readAsset("portal.html", "text/html; charset=utf-8");
  const files = new Map<string, Asset>([
    ["keys.js", readAsset("keys.js", "text/javascript; charset=utf-8")],
    ["portal.js", readAsset("portal.js", "text/javascript; charset=utf-8")],
    ["portal.css", readAsset("portal.css", "text/css; charset=utf-8")],
  ]);

  app.get("/portal", { schema: { hide: true } }, async (_request, reply) =>
    reply
      .header("content-type", page.type)
      .header("content-security-policy", PORTAL_PAGE_CSP)
      .header("cache-control", "no-store")
      .header("x-frame-options", "DENY")
      .send(page.body),
  );

  app.get<{ Params: { file: string } }>("/embed/:file", { schema: { hide: true } }, async (request, reply) => {
    const file = files.get(request.params.file);
    if (!file) return reply.callNotFound();
    reply
      .header("content-type", file.type)
      .header("content-security-policy", PORTAL_PAGE_CSP)
      .header("cache-control", "no-cache")
      .header("etag", file.etag)
      // A host page on another origin loads the element as a module script, which needs CORS;
      // the files are public and carry no credentials.
      .header("access-control-allow-origin", "*")
      .header("cross-origin-resource-policy", "cross-origin");
    if (request.headers["if-none-match"] === file.etag) return reply.code(304).send();
    return reply.send(file.body);
  });
}
