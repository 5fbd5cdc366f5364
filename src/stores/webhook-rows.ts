import { isSealed, type SecretBox } from "../core/secret-box.js";
import type { WebhookKeySummary } from "../core/webhook-events.js";
import type {
  ClaimedWebhookDelivery,
  NewWebhookDelivery,
  NewWebhookEndpoint,
  WebhookDelivery,
  WebhookEndpoint,
} from "../ports/webhook-store.js";

/** Row mapping and SQL shared by the SQLite and PostgreSQL webhook stores (numbers may arrive as text from PostgreSQL). */
export interface WebhookEndpointRow {
  seq: number | string;
  id: string;
  url: string;
  events: string;
  description: string | null;
  secret: string;
  created_at: number | string;
}

export interface WebhookDeliveryRow {
  seq: number | string;
  id: string;
  endpoint_id: string;
  event_id: string;
  event_type: string;
  payload: string;
  status: string;
  attempts: number;
  next_attempt_at: number | string | null;
  last_attempt_at: number | string | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: number | string;
  delivered_at: number | string | null;
}

export interface KeySummaryRow {
  id: string;
  ref: string;
  name: string;
  owner_type: string;
  owner_id: string;
  environment: string;
  expires_at: number | string | null;
}

const num = (value: number | string | null): number | null => (value === null ? null : Number(value));

// The secret's additional data: a sealed secret opens only in its own endpoint's row.
const secretContext = (endpointId: string) => `webhook_endpoint:${endpointId}`;

/** A secret as stored: sealed when the store has a secrets key, else as it is (docs/webhooks.md). */
export function sealWebhookSecret(secret: string, endpointId: string, box: SecretBox | null): string {
  return box ? box.seal(secret, secretContext(endpointId)) : secret;
}

/** A stored secret, opened: plaintext rows (written without a key) as they are; null if it cannot be opened. */
export function openWebhookSecret(stored: string, endpointId: string, box: SecretBox | null): string | null {
  if (!isSealed(stored)) return stored;
  if (!box) return null;
  try {
    return box.open(stored, secretContext(endpointId));
  } catch {
    return null;
  }
}

/** The new stored form of a secret that is plaintext or under an older key, or null when it needs no rewrite (or cannot be opened). */
export function resealedWebhookSecret(stored: string, endpointId: string, box: SecretBox): string | null {
  if (box.isCurrent(stored)) return null;
  const secret = openWebhookSecret(stored, endpointId, box);
  return secret === null ? null : sealWebhookSecret(secret, endpointId, box);
}

export function rowToWebhookEndpoint(row: WebhookEndpointRow, box: SecretBox | null): WebhookEndpoint {
  return {
    seq: Number(row.seq),
    id: row.id,
    url: row.url,
    events: JSON.parse(row.events) as string[],
    description: row.description,
    secret: openWebhookSecret(row.secret, row.id, box),
    createdAt: Number(row.created_at),
  };
}

export function rowToWebhookDelivery(row: WebhookDeliveryRow): WebhookDelivery {
  return {
    seq: Number(row.seq),
    id: row.id,
    endpointId: row.endpoint_id,
    eventId: row.event_id,
    eventType: row.event_type,
    payload: row.payload,
    status: row.status as WebhookDelivery["status"],
    attempts: Number(row.attempts),
    nextAttemptAt: num(row.next_attempt_at),
    lastAttemptAt: num(row.last_attempt_at),
    lastStatusCode: row.last_status_code,
    lastError: row.last_error,
    createdAt: Number(row.created_at),
    deliveredAt: num(row.delivered_at),
  };
}

export function rowToClaimedDelivery(
  row: WebhookDeliveryRow & { url: string; secret: string },
  box: SecretBox | null,
): ClaimedWebhookDelivery {
  return { ...rowToWebhookDelivery(row), url: row.url, secret: openWebhookSecret(row.secret, row.endpoint_id, box) };
}

export function rowToKeySummary(row: KeySummaryRow): WebhookKeySummary {
  const expiresAt = num(row.expires_at);
  return {
    id: row.id,
    ref: row.ref,
    name: row.name,
    owner: { type: row.owner_type, id: row.owner_id },
    environment: row.environment,
    expires_at: expiresAt === null ? null : new Date(expiresAt).toISOString(),
  };
}

export const WEBHOOK_ENDPOINT_COLUMNS = "id, url, events, description, secret, created_at";

export function webhookEndpointValues(endpoint: NewWebhookEndpoint, box: SecretBox | null): unknown[] {
  return [
    endpoint.id,
    endpoint.url,
    JSON.stringify(endpoint.events),
    endpoint.description,
    sealWebhookSecret(endpoint.secret, endpoint.id, box),
    endpoint.createdAt,
  ];
}

/** New deliveries are due at once. */
export const WEBHOOK_DELIVERY_COLUMNS = "id, endpoint_id, event_id, event_type, payload, status, attempts, next_attempt_at, created_at";

export function webhookDeliveryValues(delivery: NewWebhookDelivery): unknown[] {
  return [
    delivery.id,
    delivery.endpointId,
    delivery.eventId,
    delivery.eventType,
    delivery.payload,
    "pending",
    0,
    delivery.createdAt,
    delivery.createdAt,
  ];
}

export const KEY_SUMMARY_COLUMNS = "id, ref, name, owner_type, owner_id, environment, expires_at";

/** Keys expiring in the window, live, and not yet noticed for this expiry; `enabled` is a bound parameter (1 or TRUE). */
export const EXPIRING_KEYS_SQL = (p: [string, string, string, string]) => `
  SELECT ${KEY_SUMMARY_COLUMNS} FROM keys k
  WHERE k.expires_at > ${p[0]} AND k.expires_at <= ${p[1]} AND k.revoked_at IS NULL AND k.replaced_by IS NULL AND k.enabled = ${p[2]}
    AND NOT EXISTS (SELECT 1 FROM webhook_expiry_notices n WHERE n.key_id = k.id AND n.expires_at = k.expires_at)
  ORDER BY k.expires_at LIMIT ${p[3]}`;

export const RECORD_ATTEMPT_SQL = (p: string[]) => `
  UPDATE webhook_deliveries SET status = ${p[0]}, attempts = attempts + 1, next_attempt_at = ${p[1]}, last_attempt_at = ${p[2]},
    last_status_code = ${p[3]}, last_error = ${p[4]}, delivered_at = ${p[5]}
  WHERE id = ${p[6]}`;

export const PRUNE_DELIVERIES_SQL = (p: string) => `DELETE FROM webhook_deliveries WHERE status <> 'pending' AND created_at < ${p}`;
