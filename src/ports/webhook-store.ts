import type { AuditEvent } from "../core/model.js";
import type { WebhookKeySummary } from "../core/webhook-events.js";

/** A subscriber. The secret signs every delivery; it is shown once, at creation. */
export interface WebhookEndpoint {
  /** Insertion order, the list cursor. */
  seq: number;
  id: string;
  url: string;
  /** Event types, or `*` for all. */
  events: string[];
  description: string | null;
  /**
   * The signing secret, opened. Null when it is sealed under a `KEYWARD_SECRETS_KEY` version
   * this process does not hold (docs/webhooks.md): its deliveries fail until that key is given.
   */
  secret: string | null;
  createdAt: number;
}

/** An endpoint to store: the store seals its secret when it has a key (docs/webhooks.md). */
export type NewWebhookEndpoint = Omit<WebhookEndpoint, "seq" | "secret"> & { secret: string };

export type WebhookDeliveryStatus = "pending" | "delivered" | "failed";

/** One event for one endpoint, with every attempt's outcome folded in (the delivery log). */
export interface WebhookDelivery {
  /** Insertion order, the delivery log cursor. */
  seq: number;
  id: string;
  endpointId: string;
  eventId: string;
  eventType: string;
  /** The JSON body, fixed at enqueue time; each attempt signs it afresh. */
  payload: string;
  status: WebhookDeliveryStatus;
  attempts: number;
  /** When it is next due (pending), or null once delivered or given up. */
  nextAttemptAt: number | null;
  lastAttemptAt: number | null;
  lastStatusCode: number | null;
  lastError: string | null;
  createdAt: number;
  deliveredAt: number | null;
}

export type NewWebhookDelivery = Pick<WebhookDelivery, "id" | "endpointId" | "eventId" | "eventType" | "payload" | "createdAt">;

/** A delivery claimed for sending, with what sending needs. */
export interface ClaimedWebhookDelivery extends WebhookDelivery {
  url: string;
  /** Null when the endpoint's secret cannot be opened (WebhookEndpoint.secret). */
  secret: string | null;
}

export interface WebhookAttemptResult {
  status: WebhookDeliveryStatus;
  at: number;
  nextAttemptAt: number | null;
  statusCode: number | null;
  error: string | null;
}

/** Turns a batch of committed audit events into deliveries, given the endpoints and the keys they name. */
export type PlanDeliveries = (
  events: AuditEvent[],
  endpoints: WebhookEndpoint[],
  keys: ReadonlyMap<string, WebhookKeySummary>,
) => NewWebhookDelivery[];

/**
 * Webhook storage, in the same database as the keys. The audit trail is the outbox: events are
 * derived from committed audit events by a cursor that advances in the same transaction that
 * stores their deliveries, so nothing committed is missed across restarts or instances.
 */
export interface WebhookStore {
  migrate(): Promise<void>;
  /** Stores an endpoint with the audit event that records its creation. */
  createEndpoint(endpoint: NewWebhookEndpoint, audit: AuditEvent): Promise<WebhookEndpoint>;
  getEndpoint(id: string): Promise<WebhookEndpoint | null>;
  /** Oldest first, after `afterSeq`. */
  listEndpoints(limit: number, afterSeq: number | null): Promise<WebhookEndpoint[]>;
  /** Deletes an endpoint (and its deliveries) with the audit event that records it; false if absent. */
  deleteEndpoint(id: string, audit: AuditEvent): Promise<boolean>;
  /**
   * Reads up to `limit` audit events past the cursor, stores the deliveries `plan` makes of them
   * and advances the cursor, in one transaction (one instance wins each batch). Returns how many
   * audit events it consumed.
   */
  ingestAuditEvents(limit: number, plan: PlanDeliveries): Promise<number>;
  /** Keys that expire in (now, until] and have had no `key.expiring` notice for that expiry. */
  findExpiringKeys(now: number, until: number, limit: number): Promise<WebhookKeySummary[]>;
  /** Records the notice for this key and expiry and stores its deliveries, once: false if it was already noticed. */
  enqueueExpiryNotice(keyId: string, expiresAt: number, deliveries: NewWebhookDelivery[]): Promise<boolean>;
  /** Pending deliveries due at `now`, leased for `leaseMs` so no other instance sends them meanwhile. */
  claimDueDeliveries(now: number, limit: number, leaseMs: number): Promise<ClaimedWebhookDelivery[]>;
  recordAttempt(id: string, result: WebhookAttemptResult): Promise<void>;
  /** Newest first, before `beforeSeq`. */
  listDeliveries(endpointId: string, limit: number, beforeSeq: number | null): Promise<WebhookDelivery[]>;
  /** Deletes delivered and given-up deliveries created before `before`; returns how many. */
  pruneDeliveries(before: number): Promise<number>;
  /**
   * With a secrets key: rewrites every endpoint secret stored in plaintext or under an older key
   * version, sealed under the current key (each row only if unchanged meanwhile). Returns how
   * many it rewrote; without a key, none.
   */
  resealSecrets(): Promise<number>;
}
