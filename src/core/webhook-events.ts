import type { AuditEvent } from "./model.js";

/** Every event a webhook endpoint can subscribe to (docs/webhooks.md). */
export const WEBHOOK_EVENT_TYPES = [
  "key.created",
  "key.updated",
  "key.enabled",
  "key.disabled",
  "key.rotated",
  "key.revoked",
  "key.leaked",
  "key.expiring",
  "owner.disabled",
  "owner.enabled",
  "key_request.created",
  "key_request.decided",
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

const DECISIONS: Record<string, string> = { "key_request.approved": "approved", "key_request.rejected": "rejected" };

/**
 * The webhook event an audit action becomes, or null for actions that are not lifecycle events
 * (sign-ins, webhook management). Approval and rejection are one event, `key_request.decided`.
 */
export function webhookEventTypeForAction(action: string): WebhookEventType | null {
  if (action in DECISIONS) return "key_request.decided";
  return (WEBHOOK_EVENT_TYPES as readonly string[]).includes(action) && action !== "key.expiring" ? (action as WebhookEventType) : null;
}

/** Does an endpoint subscribed to `subscribed` (event types, or `*`) want `type`? */
export function endpointWants(subscribed: readonly string[], type: WebhookEventType): boolean {
  return subscribed.includes("*") || subscribed.includes(type);
}

/** What a webhook says about a key: public fields only, never a secret or digest. */
export interface WebhookKeySummary {
  id: string;
  ref: string;
  name: string;
  owner: { type: string; id: string };
  environment: string;
  expires_at: string | null;
}

export interface WebhookPayload {
  id: string;
  type: WebhookEventType;
  created_at: string;
  data: Record<string, unknown>;
}

/**
 * The body of the webhook for a committed audit event. It carries what the audit event says
 * (actor, target, changed fields, details) and the key's public summary; audit events never
 * hold secrets, so neither does this.
 */
export function buildWebhookPayload(event: AuditEvent, type: WebhookEventType, key: WebhookKeySummary | null): WebhookPayload {
  const decision = DECISIONS[event.action];
  return {
    id: event.id,
    type,
    created_at: new Date(event.at).toISOString(),
    data: {
      action: event.action,
      actor: event.actor,
      target: { type: event.targetType, id: event.targetId },
      ...(key ? { key } : {}),
      ...(decision ? { decision } : {}),
      changes: event.changes,
      details: event.details,
      request_id: event.requestId,
    },
  };
}

/** The `key.expiring` body: sent once per key and expiry date, `daysBefore` days ahead. */
export function buildExpiringPayload(id: string, key: WebhookKeySummary, now: number): WebhookPayload {
  const expiresAt = key.expires_at === null ? now : Date.parse(key.expires_at);
  return {
    id,
    type: "key.expiring",
    created_at: new Date(now).toISOString(),
    data: {
      action: "key.expiring",
      target: { type: "key", id: key.id },
      key,
      expires_in_seconds: Math.max(0, Math.round((expiresAt - now) / 1000)),
    },
  };
}

/** Multiples of the base delay between attempts: with 10 s, 10 s, 30 s, 2 min, 10 min, 30 min, 1 h, 3 h. */
const BACKOFF_STEPS = [1, 3, 12, 60, 180, 360, 1080];

/**
 * The wait before the next attempt after `failedAttempts` failures, with up to 10% jitter so
 * many deliveries that failed together do not retry together. Null: give up.
 */
export function nextWebhookRetryDelayMs(failedAttempts: number, maxAttempts: number, baseMs: number, random: () => number): number | null {
  if (failedAttempts >= maxAttempts) return null;
  const step = BACKOFF_STEPS[Math.min(failedAttempts - 1, BACKOFF_STEPS.length - 1)] ?? 1;
  return Math.round(step * baseMs * (1 + random() * 0.1));
}
