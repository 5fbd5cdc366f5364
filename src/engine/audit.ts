import type { Actor, AuditEvent, RequestContext } from "../core/model.js";
import { generateId } from "../core/random.js";

/** The fields whose before/after an audit event records. Digests and secrets are never among them. */
const AUDITED_FIELDS = [
  "name",
  "scopes",
  "enabled",
  "expiresAt",
  "rateLimit",
  "concurrency",
  "quota",
  "allowedCidrs",
  "metadata",
  "revokedAt",
  "revokedReason",
  "replacedBy",
  "graceEndsAt",
  "delegation",
] as const;

/** The API (snake_case) name of each audited field: audit diffs are keyed by it. */
export const SNAKE: Record<(typeof AUDITED_FIELDS)[number], string> = {
  name: "name",
  scopes: "scopes",
  enabled: "enabled",
  expiresAt: "expires_at",
  rateLimit: "rate_limit",
  concurrency: "concurrency",
  quota: "quota",
  allowedCidrs: "allowed_cidrs",
  metadata: "metadata",
  revokedAt: "revoked_at",
  revokedReason: "revoked_reason",
  replacedBy: "replaced_by",
  graceEndsAt: "grace_ends_at",
  delegation: "delegation",
};

/** Before/after of the audited fields that `after` changes relative to `before`. */
export function diffForAudit(before: object, after: object): Record<string, { from: unknown; to: unknown }> {
  const changes: Record<string, { from: unknown; to: unknown }> = {};
  const b = before as Record<string, unknown>;
  const a = after as Record<string, unknown>;
  for (const field of AUDITED_FIELDS) {
    if (!(field in a) || a[field] === undefined) continue;
    if (JSON.stringify(b[field] ?? null) !== JSON.stringify(a[field] ?? null))
      changes[SNAKE[field]] = { from: b[field] ?? null, to: a[field] ?? null };
  }
  return changes;
}

export const SYSTEM_ACTOR: Actor = { type: "system", id: "keyward" };

export function buildAuditEvent(
  context: RequestContext,
  now: number,
  action: string,
  target: { type: AuditEvent["targetType"]; id: string },
  changes: AuditEvent["changes"] = null,
  details: AuditEvent["details"] = null,
): AuditEvent {
  return {
    id: generateId("evt"),
    at: now,
    actor: context.actor,
    action,
    targetType: target.type,
    targetId: target.id,
    ip: context.ip ?? null,
    userAgent: context.userAgent?.slice(0, 256) ?? null,
    requestId: context.requestId ?? null,
    changes,
    // Through a portal session: the host's person who opened it (docs/embedding.md).
    details: context.hostActor ? { ...(details ?? {}), host_actor: context.hostActor } : details,
  };
}
