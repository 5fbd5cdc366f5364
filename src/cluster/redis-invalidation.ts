import { randomUUID } from "node:crypto";
import { Redis, type RedisOptions } from "ioredis";
import type { InvalidationMessage, Keyward } from "../engine/keyward.js";

export interface RedisInvalidationOptions {
  /** Channel name. Default `keyward:invalidate`. */
  channel?: string;
  /**
   * Called when the subscription is made and when it is lost, once per change (not on every
   * reconnect attempt), for logs and metrics.
   */
  onStatus?: (status: "connected" | "disconnected") => void;
  redisOptions?: RedisOptions;
}

interface Envelope {
  from: string;
  message: InvalidationMessage;
}

/**
 * Cross-instance cache invalidation over Redis pub/sub. Every local change (revoke, rotate,
 * disable, scope change, owner change) is published; every instance applies what the others
 * publish within one round trip. Pub/sub is fire-and-forget, so every time the subscription is
 * made (the first time too: the instance may have started while Redis was down) the instance
 * clears its whole cache, since messages may have been missed; while it is down, the cache's
 * maximum age still bounds staleness, and `subscribed` says so (/readyz, a metric).
 */
export class RedisInvalidationChannel {
  readonly instanceId = randomUUID();
  private readonly channel: string;
  private readonly publisher: Redis;
  private readonly subscriber: Redis;
  private subscribedNow = false;
  private subscribing: Promise<void> | null = null;
  private closed = false;

  constructor(
    private readonly keyward: Keyward,
    redisUrl: string,
    private readonly options: RedisInvalidationOptions = {},
  ) {
    this.channel = options.channel ?? "keyward:invalidate";
    const common: RedisOptions = {
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      // Back off to at most 2 s between reconnects: no retry storm when Redis is down.
      retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2_000),
      ...options.redisOptions,
    };
    this.publisher = new Redis(redisUrl, common);
    // autoResubscribe off: ioredis's own resubscription on reconnect leaves its promise
    // unhandled, and a connection that drops again before the reply ("Connection is closed.")
    // became an unhandled rejection, which ends a Node process. We subscribe on every "ready"
    // ourselves, with the error handled.
    this.subscriber = new Redis(redisUrl, { ...common, enableOfflineQueue: true, autoResubscribe: false });
    this.subscriber.on("message", (_channel: string, raw: string) => this.receive(raw));
    // Subscribe on every (re)connection, not only at start: an instance started while Redis was
    // down must still subscribe once Redis is back (docs/deploy.md).
    this.subscriber.on("ready", () => {
      this.subscribe().catch(() => {});
    });
    this.subscriber.on("close", () => {
      if (!this.subscribedNow) return;
      this.subscribedNow = false;
      this.options.onStatus?.("disconnected");
    });
    // Errors are reported through status; ioredis reconnects by itself.
    this.subscriber.on("error", () => {});
    this.publisher.on("error", () => {});
    keyward.onInvalidate((message) => this.publish(message));
  }

  /** Whether messages from other instances are being received now. */
  get subscribed(): boolean {
    return this.subscribedNow;
  }

  /**
   * Connects both clients. When Redis is down this rejects, but ioredis keeps reconnecting with
   * the back-off above, and the subscription is made on the first successful connection.
   */
  async start(): Promise<void> {
    await Promise.all([this.publisher.connect(), this.subscriber.connect()]);
    await this.subscribe();
  }

  private subscribe(): Promise<void> {
    this.subscribing ??= (async () => {
      try {
        await this.subscriber.subscribe(this.channel);
        if (this.subscribedNow || this.closed) return;
        this.subscribedNow = true;
        // Whatever was published while this instance was not subscribed is lost: drop the cache.
        this.keyward.applyInvalidation({ kind: "all" });
        this.options.onStatus?.("connected");
      } finally {
        this.subscribing = null;
      }
    })();
    return this.subscribing;
  }

  private publish(message: InvalidationMessage): void {
    // Only the key id travels: other instances find the cached digest by id, so no digest leaves the process.
    const envelope: Envelope = { from: this.instanceId, message: message.kind === "key" ? { kind: "key", keyId: message.keyId } : message };
    // Never block or fail the change that caused it; a lost message is bounded by the cache age.
    this.publisher.publish(this.channel, JSON.stringify(envelope)).catch(() => {});
  }

  private receive(raw: string): void {
    let envelope: Envelope;
    try {
      envelope = JSON.parse(raw) as Envelope;
    } catch {
      return;
    }
    if (envelope.from === this.instanceId) return;
    const message = envelope.message;
    if (message?.kind === "all") this.keyward.applyInvalidation({ kind: "all" });
    else if (message?.kind === "key" && typeof message.keyId === "string")
      this.keyward.applyInvalidation({ kind: "key", keyId: message.keyId });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.subscribedNow = false;
    this.publisher.disconnect();
    this.subscriber.disconnect();
  }
}
