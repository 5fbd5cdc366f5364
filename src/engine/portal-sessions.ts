import { KeywardError } from "../core/errors.js";
import { computeKeyStatus, type OwnerRef, type RequestContext } from "../core/model.js";
import {
  digestPortalToken,
  generatePortalToken,
  PORTAL_SESSION_ID_KIND,
  PORTAL_TOKEN,
  type PortalPolicy,
  type PortalSessionRecord,
} from "../core/portal-policy.js";
import { generateId } from "../core/random.js";
import type { PortalSessionStore } from "../ports/portal-session-store.js";
import { buildAuditEvent } from "./audit.js";
import type { Keyward } from "./keyward.js";

export interface NewPortalSession {
  owner: OwnerRef;
  policy: PortalPolicy;
  hostActor: { id: string; email: string | null };
  createdByOwner: OwnerRef | null;
  ttlSeconds: number;
  allowedOrigin: string | null;
  returnUrl: string | null;
  appName: string | null;
}

/** How long an ended session is kept (for `GET /v1/portal-sessions/{id}` and its 401s) before the sweep deletes it. */
const KEEP_ENDED_MS = 7 * 86_400_000;

/**
 * Portal sessions (docs/embedding.md): opened by a host application's backend, used by its
 * person's browser with `Authorization: Portal <token>`. The token is shown once; the store keeps
 * its SHA-256. Authority is decided elsewhere (src/authority, the `portal` bound).
 */
export class PortalSessions {
  constructor(
    private readonly keyward: Keyward,
    readonly store: PortalSessionStore,
  ) {}

  private now(): number {
    return this.keyward.clock.now();
  }

  async open(input: NewPortalSession, context: RequestContext): Promise<{ token: string; session: PortalSessionRecord }> {
    const now = this.now();
    const token = generatePortalToken();
    const session: PortalSessionRecord = {
      id: generateId(PORTAL_SESSION_ID_KIND),
      digest: digestPortalToken(token),
      owner: { ...input.owner },
      policy: input.policy,
      hostActor: input.hostActor,
      createdBy: context.actor,
      createdByOwner: input.createdByOwner,
      createdAt: now,
      expiresAt: now + input.ttlSeconds * 1000,
      revokedAt: null,
      allowedOrigin: input.allowedOrigin,
      returnUrl: input.returnUrl,
      appName: input.appName,
    };
    const audit = buildAuditEvent(context, now, "portal_session.created", { type: "portal_session", id: session.id }, null, {
      owner: session.owner,
      policy: {
        scopes: session.policy.scopes,
        environments: session.policy.environments,
        max_expires_in_days: session.policy.maxExpiresInDays,
        may_request_production: session.policy.mayRequestProduction,
        max_keys: session.policy.maxKeys,
      },
      host_actor: session.hostActor,
      expires_at: new Date(session.expiresAt).toISOString(),
    });
    await this.store.insert(session, audit);
    this.keyward.publishCommitted(audit);
    return { token, session };
  }

  async get(id: string): Promise<PortalSessionRecord> {
    const session = await this.store.get(id);
    if (!session) throw new KeywardError("RESOURCE_NOT_FOUND", "no such portal session");
    return session;
  }

  async revoke(id: string, context: RequestContext): Promise<PortalSessionRecord> {
    const now = this.now();
    const audit = buildAuditEvent(context, now, "portal_session.revoked", { type: "portal_session", id });
    const session = await this.store.revoke(id, now, audit);
    if (!session) throw new KeywardError("RESOURCE_NOT_FOUND", "no such portal session");
    if (session.revokedAt === now) this.keyward.publishCommitted(audit);
    return session;
  }

  /**
   * The live session a token names, or a 401: unknown or malformed, expired, revoked. A session
   * opened by a key ends with that key: revoked, disabled or expired, it revokes the session too.
   */
  async resolve(token: string): Promise<PortalSessionRecord> {
    if (!PORTAL_TOKEN.test(token)) throw new KeywardError("PORTAL_TOKEN_INVALID");
    const session = await this.store.findByDigest(digestPortalToken(token));
    if (!session) throw new KeywardError("PORTAL_TOKEN_INVALID");
    const now = this.now();
    if (session.revokedAt !== null) throw new KeywardError("PORTAL_SESSION_REVOKED");
    if (now >= session.expiresAt) throw new KeywardError("PORTAL_SESSION_EXPIRED");
    if (session.createdBy.type === "admin_key" || session.createdBy.type === "key") {
      const opener = await this.keyward.store.getKey(session.createdBy.id);
      const owner = opener ? await this.keyward.store.getOwner(opener.owner) : null;
      if (!opener || computeKeyStatus(opener, now) !== "active" || owner?.disabled)
        throw new KeywardError("PORTAL_SESSION_REVOKED", "the key that opened this portal session no longer works");
    }
    return session;
  }

  /** Deletes sessions that ended more than a week ago. */
  async sweep(): Promise<number> {
    return this.store.purgeEnded(this.now() - KEEP_ENDED_MS);
  }
}
