import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { generateId } from "../core/random.js";
import {
  buildExpiringPayload,
  buildWebhookPayload,
  endpointWants,
  nextWebhookRetryDelayMs,
  webhookEventTypeForAction,
} from "../core/webhook-events.js";
import { signWebhookPayload, WEBHOOK_SIGNATURE_HEADER } from "../core/webhook-signature.js";
import type { Keyward } from "../engine/keyward.js";
import type { ClaimedWebhookDelivery, NewWebhookDelivery, PlanDeliveries, WebhookStore } from "../ports/webhook-store.js";
import { errorText } from "./error-text.js";
import type { ServiceMetrics } from "./metrics.js";
import { checkedLookup, checkLiteralHost, type HostResolver, RefusedWebhookTarget, systemResolver } from "./webhook-target.js";

export interface WebhookDispatcherOptions {
  /** How often to look for new events and due retries when nothing wakes it. Default 1,000 ms. */
  pollMs?: number;
  /** The first retry delay; later ones are multiples (docs/webhooks.md). Default 10,000 ms. */
  retryBaseMs?: number;
  /** Attempts before a delivery is given up. Default 8. */
  maxAttempts?: number;
  /** Per-attempt timeout. Default 5,000 ms. */
  timeoutMs?: number;
  /** `key.expiring` is sent this many days before expiry. Default 7. */
  expiringDays?: number;
  /** How often the expiry sweep runs. Default 3,600,000 ms. */
  expirySweepMs?: number;
  /** Delivered and given-up deliveries are kept this long in the log. Default 30 days. */
  retentionMs?: number;
  /** Deliver to loopback, private and link-local addresses too (`KEYWARD_WEBHOOK_ALLOW_PRIVATE`). Default false. */
  allowPrivate?: boolean;
}

interface DispatcherLogger {
  info(object: object, message: string): void;
  warn(object: object, message: string): void;
}

class UnreadableSecret extends Error {}

const BATCH = 100;
const PARALLEL_SENDS = 8;
const USER_AGENT = "Keyward-Webhooks/1";

/**
 * Delivers lifecycle events to webhook endpoints. It derives them from committed audit events
 * (the audit trail is the outbox), so a change always has its event and a restart loses none.
 * It runs beside the request path: a commit only wakes it, and sending never delays a response.
 */
export class WebhookDispatcher {
  private readonly store: WebhookStore;
  private readonly metrics: ServiceMetrics | undefined;
  private readonly logger: DispatcherLogger | undefined;
  private readonly options: Required<WebhookDispatcherOptions>;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private lastSweep = 0;
  private closed = false;
  private readonly resolve: HostResolver;
  private readonly agents: { http: HttpAgent; https: HttpsAgent };

  constructor(
    store: WebhookStore,
    options: WebhookDispatcherOptions = {},
    /** `resolve`: host names to addresses, the system resolver by default (tests name hosts DNS does not know). */
    deps: { metrics?: ServiceMetrics; logger?: DispatcherLogger; resolve?: HostResolver } = {},
  ) {
    this.store = store;
    this.metrics = deps.metrics;
    this.logger = deps.logger;
    this.resolve = deps.resolve ?? systemResolver;
    this.options = {
      pollMs: options.pollMs ?? 1_000,
      retryBaseMs: options.retryBaseMs ?? 10_000,
      maxAttempts: options.maxAttempts ?? 8,
      timeoutMs: options.timeoutMs ?? 5_000,
      expiringDays: options.expiringDays ?? 7,
      expirySweepMs: options.expirySweepMs ?? 3_600_000,
      retentionMs: options.retentionMs ?? 30 * 86_400_000,
      allowPrivate: options.allowPrivate ?? false,
    };
    // Every connection these agents open resolves its host through the deny-list check and
    // connects to a checked address: no second resolution between the check and the connect.
    const lookup = checkedLookup(this.options.allowPrivate, this.resolve);
    this.agents = {
      http: new HttpAgent({ keepAlive: true, maxSockets: PARALLEL_SENDS, lookup }),
      https: new HttpsAgent({ keepAlive: true, maxSockets: PARALLEL_SENDS, lookup }),
    };
  }

  /** Polls, and wakes at once on every change committed through `keyward`. */
  start(keyward?: Keyward): void {
    keyward?.onCommitted((event) => {
      if (webhookEventTypeForAction(event.action)) this.wake();
    });
    this.timer = setInterval(() => this.wake(), this.options.pollMs);
    this.timer.unref();
    this.wake();
  }

  /** Runs one pass soon (or another right after the current one). Never throws, never blocks the caller. */
  wake(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.runPasses())
      .finally(() => {
        this.running = null;
      });
  }

  private async runPasses(): Promise<void> {
    do {
      this.again = false;
      try {
        await this.pass(Date.now());
      } catch (error) {
        this.metrics?.recordStoreError("webhooks");
        this.logger?.warn({ err: errorText(error) }, "webhook pass failed; retrying on the next poll");
        return;
      }
    } while (this.again && !this.closed);
  }

  /** One pass: turn new audit events into deliveries, run the expiry sweep when due, send what is due. */
  async pass(now: number): Promise<void> {
    while ((await this.store.ingestAuditEvents(BATCH, planDeliveries)) === BATCH) {}
    if (now - this.lastSweep >= this.options.expirySweepMs) {
      this.lastSweep = now;
      await this.sweepExpiring(now);
      await this.store.pruneDeliveries(now - this.options.retentionMs);
    }
    for (;;) {
      // The lease outlasts an attempt, so a crash mid-send only delays the retry.
      const due = await this.store.claimDueDeliveries(now, BATCH, this.options.timeoutMs * 2 + 1_000);
      for (let i = 0; i < due.length; i += PARALLEL_SENDS) await Promise.all(due.slice(i, i + PARALLEL_SENDS).map((d) => this.send(d)));
      if (due.length < BATCH || this.closed) return;
    }
  }

  /** `key.expiring`: once per key and expiry date, `expiringDays` ahead. */
  private async sweepExpiring(now: number): Promise<void> {
    const endpoints = await this.store.listEndpoints(1_000, null);
    const wanting = endpoints.filter((e) => endpointWants(e.events, "key.expiring"));
    if (wanting.length === 0) return;
    const keys = await this.store.findExpiringKeys(now, now + this.options.expiringDays * 86_400_000, 1_000);
    for (const key of keys) {
      const eventId = generateId("evt");
      const payload = JSON.stringify(buildExpiringPayload(eventId, key, now));
      const deliveries: NewWebhookDelivery[] = wanting.map((endpoint) => ({
        id: generateId("whd"),
        endpointId: endpoint.id,
        eventId,
        eventType: "key.expiring",
        payload,
        createdAt: now,
      }));
      await this.store.enqueueExpiryNotice(key.id, Date.parse(key.expires_at as string), deliveries);
    }
  }

  private async send(delivery: ClaimedWebhookDelivery): Promise<void> {
    const at = Date.now();
    const attempt = delivery.attempts + 1;
    let statusCode: number | null = null;
    let error: string | null = null;
    const signal = AbortSignal.timeout(this.options.timeoutMs);
    try {
      // Sealed under a key version this process lacks: nothing to sign with (docs/webhooks.md).
      if (delivery.secret === null) throw new UnreadableSecret();
      const headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        [WEBHOOK_SIGNATURE_HEADER]: signWebhookPayload(delivery.secret, delivery.payload, Math.floor(at / 1000)),
        "keyward-event-id": delivery.eventId,
        "keyward-event-type": delivery.eventType,
        "keyward-delivery-id": delivery.id,
        "keyward-delivery-attempt": String(attempt),
      };
      statusCode = await this.post(delivery.url, signal, headers, delivery.payload);
      // Redirects are not followed: a 3xx is a failed attempt like any other non-2xx.
      if (statusCode < 200 || statusCode >= 300) error = `HTTP ${statusCode}`;
    } catch (cause) {
      error =
        cause instanceof UnreadableSecret
          ? "secret unreadable: KEYWARD_SECRETS_KEY lacks the key it was sealed with"
          : cause instanceof RefusedWebhookTarget
            ? `address not allowed: ${cause.message}`
            : signal.aborted
              ? "timed out"
              : "connection failed";
    }
    if (error === null) {
      this.metrics?.recordWebhookDelivery("delivered");
      await this.store.recordAttempt(delivery.id, { status: "delivered", at, nextAttemptAt: null, statusCode, error: null });
      return;
    }
    const delay = nextWebhookRetryDelayMs(attempt, this.options.maxAttempts, this.options.retryBaseMs, Math.random);
    this.metrics?.recordWebhookDelivery(delay === null ? "failed" : "retry");
    this.logger?.warn(
      {
        request_id: requestIdOf(delivery.payload),
        delivery_id: delivery.id,
        event_id: delivery.eventId,
        endpoint_id: delivery.endpointId,
        attempt,
        status_code: statusCode,
        error,
      },
      delay === null ? "webhook delivery given up" : "webhook delivery failed; will retry",
    );
    await this.store.recordAttempt(delivery.id, {
      status: delay === null ? "failed" : "pending",
      at,
      nextAttemptAt: delay === null ? null : at + delay,
      statusCode,
      error,
    });
  }

  /**
   * One POST; resolves with the status code once the response starts (its body is discarded).
   * An IP literal is checked here (a socket is given no lookup for one); a host name is
   * resolved and checked by the agent's lookup, at connect time.
   */
  private post(target: string, signal: AbortSignal, headers: Record<string, string>, body: string): Promise<number> {
    const url = new URL(target);
    checkLiteralHost(url.hostname, this.options.allowPrivate);
    const https = url.protocol === "https:";
    return new Promise<number>((resolve, reject) => {
      const request = (https ? httpsRequest : httpRequest)(
        url,
        {
          method: "POST",
          agent: https ? this.agents.https : this.agents.http,
          signal,
          headers: { ...headers, "content-length": String(Buffer.byteLength(body)) },
        },
        (response: IncomingMessage) => {
          response.resume();
          response.on("error", () => {});
          resolve(response.statusCode ?? 0);
        },
      );
      request.on("error", reject);
      request.end(body);
    });
  }

  /** Stops polling and waits for the pass in flight. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
    this.agents.http.destroy();
    this.agents.https.destroy();
  }
}

/** The id of the request that caused the event, so a failed delivery's log line leads back to it. */
function requestIdOf(payload: string): string | null {
  try {
    const requestId = (JSON.parse(payload) as { data?: { request_id?: unknown } }).data?.request_id;
    return typeof requestId === "string" ? requestId : null;
  } catch {
    return null;
  }
}

/** One delivery per committed lifecycle event and subscribed endpoint. */
export const planDeliveries: PlanDeliveries = (events, endpoints, keys) => {
  const deliveries: NewWebhookDelivery[] = [];
  for (const event of events) {
    const type = webhookEventTypeForAction(event.action);
    if (!type) continue;
    const subscribed = endpoints.filter((e) => endpointWants(e.events, type) && e.createdAt <= event.at);
    if (subscribed.length === 0) continue;
    const payload = JSON.stringify(
      buildWebhookPayload(event, type, event.targetType === "key" ? (keys.get(event.targetId) ?? null) : null),
    );
    for (const endpoint of subscribed)
      deliveries.push({
        id: generateId("whd"),
        endpointId: endpoint.id,
        eventId: event.id,
        eventType: type,
        payload,
        createdAt: Date.now(),
      });
  }
  return deliveries;
};
