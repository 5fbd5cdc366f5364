import type { Redis } from "ioredis";
import { KeywardError } from "../core/errors.js";
import type { GcraParams } from "../core/rate-limit.js";
import type { LimiterMode, RateLimiter, RateOutcome } from "../ports/limits.js";
import { MemoryRateLimiter } from "./memory-rate-limiter.js";
import { RedisBreaker } from "./redis-breaker.js";
import { type BatchEntry, connectLimiterRedis, runBatch, withDeadline } from "./redis-scripts.js";

/** What the limiter does when Redis cannot answer in time (docs/security.md, bounds: Redis down or slow). */
export type LimiterFailurePolicy = "degrade" | "open" | "closed";

/** The Redis commands the limiter uses: a real client, or anything that answers them. */
export type LimiterRedis = Pick<Redis, "evalsha" | "eval" | "zrem" | "status" | "quit" | "disconnect">;

export interface RedisRateLimiterOptions {
  /** A `redis://` URL, or a client the caller owns. */
  redis: string | LimiterRedis;
  /** Prefix of every key. Default `keyward:`. */
  prefix?: string;
  /** Per-call time limit; past it the call counts as failed. Default 100 ms. */
  timeoutMs?: number;
  /**
   * `degrade` (default): this instance's own limiter takes over, never unlimited; `open`:
   * rate and concurrency are not enforced; `closed`: requests get 503 LIMITER_UNAVAILABLE.
   */
  failurePolicy?: LimiterFailurePolicy;
  /** Told once per change between shared and degraded (or open) operation. */
  onModeChange?: (mode: LimiterMode, error?: Error) => void;
  /**
   * After a call fails or times out, calls skip Redis for this long (the fallback answers at
   * once), then one call probes it. Default 1,000 ms.
   */
  breakMs?: number;
}

/** Lease removals kept for sending again at most; past it the oldest is left to expire by its lease time. */
const MAX_STRAY_LEASES = 10_000;

/** Decisions sent in one script call at most (docs/limits.md, "Batching in Redis"); more waiting go out as several calls, in order. */
export const MAX_BATCH = 256;
/**
 * Batches out at once at most: with one, the process sits idle for each round trip; a few overlap
 * the round trips and still send far fewer calls than decisions (docs/benchmarks.md measures
 * both: within noise of each other on the bench machine). Order holds: one connection runs them
 * in turn.
 */
export const MAX_IN_FLIGHT = 4;

/** A call waiting for the next batch. */
type Waiting = BatchEntry & { answer: (reply: unknown) => void };

/**
 * Rate and concurrency counters shared by every instance through Redis (atomic Lua scripts,
 * `EVALSHA` with an `EVAL` fallback). A call that fails or takes longer than the timeout
 * falls back by policy; while Redis is disconnected calls skip it at once, so an outage costs
 * no waiting and no retry storm, and operation returns to shared when it reconnects. After a
 * timeout a breaker skips Redis for `breakMs`, then probes it (docs/limits.md).
 *
 * Calls are batched (docs/limits.md, "Batching in Redis"): while a script call is out, the calls that
 * arrive wait and then go together in one `EVALSHA` that decides them one after another, in the
 * order they arrived; with nothing out, a call goes at once (within the same turn of the event
 * loop, together with the calls made in that turn). A batch that fails or is skipped answers
 * each of its calls as a call of its own would have been answered.
 *
 * A call that timed out still runs if Redis wakes up later. For a concurrency slot that would
 * leave a lease in Redis that no request holds (the request took its slot from the fallback,
 * or was refused), so its removal is sent right behind the acquire on the same connection and
 * sent again, before any later call, until Redis answers one.
 */
export class RedisRateLimiter implements RateLimiter {
  readonly policy: LimiterFailurePolicy;
  private readonly redis: LimiterRedis;
  private readonly ownsClient: boolean;
  private readonly prefix: string;
  private readonly fallback = new MemoryRateLimiter();
  private readonly onModeChange: ((mode: LimiterMode, error?: Error) => void) | undefined;
  private modeNow: LimiterMode = "shared";
  private lastError: Error | undefined;
  private readonly breakMs: number;
  private readonly breaker: RedisBreaker;
  /** Leases that may sit in Redis though no request holds them there: `ZREM`s to send until one is answered. */
  private readonly strayLeases = new Map<string, { key: string; leaseId: string; sending: boolean }>();
  private strayRetry: NodeJS.Timeout | null = null;
  private closed = false;
  /** Calls waiting for the next batch, in arrival order. */
  private waiting: Waiting[] = [];
  /** Batches sent and not answered yet. */
  private inFlight = 0;
  private flushQueued = false;
  /** Per-call time limit (withDeadline: a reply that arrived is read before a call counts as lost). */
  private readonly timeoutMs: number;

  constructor(options: RedisRateLimiterOptions) {
    this.policy = options.failurePolicy ?? "degrade";
    this.prefix = options.prefix ?? "keyward:";
    this.onModeChange = options.onModeChange;
    this.breakMs = options.breakMs ?? 1_000;
    this.breaker = new RedisBreaker(this.breakMs);
    this.timeoutMs = options.timeoutMs ?? 100;
    if (typeof options.redis === "string") {
      this.redis = connectLimiterRedis(options.redis, this.timeoutMs);
      this.ownsClient = true;
    } else {
      this.redis = options.redis;
      this.ownsClient = false;
    }
  }

  /** `shared` while Redis answers; `degraded` or `open` (by policy) while it does not. */
  get mode(): LimiterMode {
    return this.modeNow;
  }

  async consumeRate(lineageId: string, params: GcraParams, cost: number, now: number): Promise<RateOutcome> {
    const reply = await this.run({ op: "r", key: `${this.prefix}rl:${lineageId}`, args: [params.intervalMs, params.toleranceMs, cost] });
    if (reply === FAILED || reply === SKIPPED) {
      if (this.unanswered() === "open") return { allowed: true, aheadMs: 0 };
      return this.fallback.consumeRate(lineageId, params, cost, now);
    }
    const [allowed, ahead] = reply as [number, string];
    return { allowed: allowed === 1, aheadMs: Number(ahead) };
  }

  async peekRate(lineageId: string, now: number): Promise<number> {
    const reply = await this.run({ op: "p", key: `${this.prefix}rl:${lineageId}`, args: [] });
    if (reply === FAILED || reply === SKIPPED) {
      this.unanswered();
      return this.fallback.peekRate(lineageId, now);
    }
    return Number(reply);
  }

  async acquireSlot(lineageId: string, max: number, leaseId: string, leaseMs: number, now: number): Promise<boolean> {
    const key = `${this.prefix}cc:${lineageId}`;
    const reply = await this.run({ op: "a", key, args: [max, leaseMs, leaseId] });
    if (reply === FAILED || reply === SKIPPED) {
      // The acquire may still run when Redis wakes up: undo it, whatever this request gets.
      if (reply === FAILED) this.strayLease(key, leaseId, true);
      if (this.unanswered() === "open") return true;
      return this.fallback.acquireSlot(lineageId, max, leaseId, leaseMs, now);
    }
    return reply === 1;
  }

  async releaseSlot(lineageId: string, leaseId: string): Promise<boolean> {
    // A lease taken from the fallback is freed there; a copy of it in Redis (an acquire that
    // timed out and ran late) is already queued for removal.
    if (await this.fallback.releaseSlot(lineageId, leaseId)) return true;
    const key = `${this.prefix}cc:${lineageId}`;
    if (this.redis.status !== "ready" || !this.breaker.enter()) {
      // Not now, but not forgotten: removed before the next call Redis gets.
      this.strayLease(key, leaseId, false);
      return false;
    }
    this.sendStrayReleases();
    try {
      const removed = (await withDeadline(() => this.redis.zrem(key, leaseId), this.timeoutMs)) === 1;
      this.answered();
      return removed;
    } catch (error) {
      this.notAnswered(error as Error);
      this.strayLease(key, leaseId, false);
      return false;
    }
  }

  async countSlots(lineageId: string, now: number): Promise<number> {
    const reply = await this.run({ op: "c", key: `${this.prefix}cc:${lineageId}`, args: [] });
    if (reply === FAILED || reply === SKIPPED) {
      this.unanswered();
      return this.fallback.countSlots(lineageId, now);
    }
    return Number(reply);
  }

  /**
   * For readiness: asks Redis now, within the call time limit (not while the breaker is open),
   * and says where decisions are taken. Never throws, whatever the policy.
   */
  async health(): Promise<LimiterMode> {
    await this.run({ op: "n", key: `${this.prefix}ping`, args: [] });
    return this.modeNow;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.strayRetry) clearTimeout(this.strayRetry);
    // Last chance for pending removals: they go out ahead of QUIT on the same connection.
    this.sendStrayReleases();
    await this.fallback.close();
    if (!this.ownsClient) return;
    if (this.redis.status === "ready") await this.redis.quit().catch(() => this.redis.disconnect());
    else this.redis.disconnect();
  }

  /**
   * Decides one entry through Redis: its reply, FAILED when it was sent and not answered in time
   * (it may still run later), SKIPPED when it was not sent (disconnected, or the breaker is
   * open): answered at once. After a failure, the breaker's probe goes alone and at once, and
   * the calls behind it skip Redis until it is answered, as without batching. Otherwise the
   * entry joins the next batch, which goes out at the end of this turn of the event loop when no
   * batch is out, or as soon as the batches out are answered.
   */
  private run(entry: BatchEntry): Promise<unknown> {
    if (this.redis.status !== "ready") {
      this.notAnswered(new Error(`redis is ${this.redis.status}`), false);
      return Promise.resolve(SKIPPED);
    }
    if (!this.breaker.closed) {
      if (!this.breaker.enter()) return Promise.resolve(SKIPPED);
      return new Promise((answer) => this.send([{ ...entry, answer } as Waiting], true));
    }
    return new Promise((answer) => {
      this.waiting.push({ ...entry, answer } as Waiting);
      if (this.inFlight < MAX_IN_FLIGHT && !this.flushQueued) {
        this.flushQueued = true;
        queueMicrotask(() => {
          this.flushQueued = false;
          if (this.inFlight < MAX_IN_FLIGHT) this.flush();
        });
      }
    });
  }

  /** Sends every waiting call, in batches of at most MAX_BATCH, in arrival order (one connection keeps it). */
  private flush(): void {
    const waiting = this.waiting;
    if (waiting.length === 0) return;
    this.waiting = [];
    for (let from = 0; from < waiting.length; from += MAX_BATCH) this.send(waiting.slice(from, from + MAX_BATCH));
  }

  /**
   * One batch, one script call (EVALSHA, EVAL when the script is not loaded). Each call in it is
   * answered as if it had been sent alone: all SKIPPED when the batch cannot be sent, all FAILED
   * when it is not answered in time, and an entry whose command failed inside the script FAILED
   * with the others answered.
   */
  private send(batch: Waiting[], entered = false): void {
    if (this.redis.status !== "ready") {
      this.notAnswered(new Error(`redis is ${this.redis.status}`), false);
      for (const entry of batch) entry.answer(SKIPPED);
      return;
    }
    if (!entered && !this.breaker.enter()) {
      for (const entry of batch) entry.answer(SKIPPED);
      return;
    }
    // Removals still owed go first: on one connection Redis runs them before this call.
    this.sendStrayReleases();
    this.inFlight++;
    withDeadline((live) => runBatch(this.redis, batch, live), this.timeoutMs).then(
      (replies) => {
        this.answered();
        let failed: Error | undefined;
        for (let i = 0; i < batch.length; i++) {
          const reply = replies[i];
          if (reply instanceof Error) failed = reply;
          batch[i]?.answer(reply instanceof Error ? FAILED : reply);
        }
        if (failed) this.notAnswered(failed);
        this.batchDone();
      },
      (error: unknown) => {
        this.notAnswered(error instanceof Error ? error : new Error(String(error)));
        for (const entry of batch) entry.answer(FAILED);
        this.batchDone();
      },
    );
  }

  /** When the last batch out is answered, the calls that arrived meanwhile go out together. */
  private batchDone(): void {
    this.inFlight--;
    if (this.inFlight < MAX_IN_FLIGHT) this.flush();
  }

  private answered(): void {
    this.breaker.succeeded();
    this.setMode("shared");
  }

  /** Redis did not answer: the mode follows the policy; a call that was sent opens the breaker. */
  private notAnswered(error: Error, sent = true): void {
    if (sent) this.breaker.failed();
    this.lastError = error;
    this.setMode(this.policy === "open" ? "open" : "degraded", error);
  }

  /** What a call Redis did not answer gets, by policy: `closed` refuses (503), `open` lets it through, `degrade` asks the fallback. */
  private unanswered(): "open" | "fallback" {
    if (this.policy === "closed")
      throw new KeywardError("LIMITER_UNAVAILABLE", "the shared limiter cannot be reached", {
        retryAfterSeconds: 1,
        ...(this.lastError ? { cause: this.lastError } : {}),
      });
    return this.policy === "open" ? "open" : "fallback";
  }

  /** Remembers a lease Redis may hold for nobody; `sendNow` sends its removal at once (right behind the acquire). */
  private strayLease(key: string, leaseId: string, sendNow: boolean): void {
    const id = `${key}\n${leaseId}`;
    let entry = this.strayLeases.get(id);
    if (!entry) {
      if (this.strayLeases.size >= MAX_STRAY_LEASES) {
        const oldest = this.strayLeases.keys().next().value;
        if (oldest !== undefined) this.strayLeases.delete(oldest);
      }
      entry = { key, leaseId, sending: false };
      this.strayLeases.set(id, entry);
    }
    if (sendNow && this.redis.status === "ready") this.sendStrayRelease(id, entry);
    this.scheduleStrayRetry();
  }

  private sendStrayReleases(): void {
    if (this.strayLeases.size === 0 || this.redis.status !== "ready") return;
    for (const [id, entry] of this.strayLeases) if (!entry.sending) this.sendStrayRelease(id, entry);
  }

  /** Fire and forget; `ZREM` is idempotent, so sending it again is harmless. */
  private sendStrayRelease(id: string, entry: { key: string; leaseId: string; sending: boolean }): void {
    entry.sending = true;
    this.redis.zrem(entry.key, entry.leaseId).then(
      () => {
        if (this.strayLeases.get(id) === entry) this.strayLeases.delete(id);
      },
      () => {
        entry.sending = false;
        this.scheduleStrayRetry();
      },
    );
  }

  /** While removals are owed, tries again every `breakMs` (when Redis is connected and the breaker closed), traffic or not. */
  private scheduleStrayRetry(): void {
    if (this.strayRetry || this.closed) return;
    this.strayRetry = setTimeout(() => {
      this.strayRetry = null;
      if (this.strayLeases.size === 0 || this.closed) return;
      if (this.redis.status === "ready" && !this.breaker.open) this.sendStrayReleases();
      this.scheduleStrayRetry();
    }, this.breakMs);
    this.strayRetry.unref?.();
  }

  private setMode(mode: LimiterMode, error?: Error): void {
    if (mode === this.modeNow) return;
    this.modeNow = mode;
    this.onModeChange?.(mode, error);
  }
}

const FAILED = Symbol("redis call failed");
const SKIPPED = Symbol("redis call skipped");
