import type { Redis } from "ioredis";
import { KeywardError } from "../core/errors.js";
import type { GcraParams } from "../core/rate-limit.js";
import type { LimiterMode, RateLimiter, RateOutcome } from "../ports/limits.js";
import { MemoryRateLimiter } from "./memory-rate-limiter.js";
import {
  ACQUIRE_SLOT_SCRIPT,
  COUNT_SLOTS_SCRIPT,
  connectLimiterRedis,
  PEEK_RATE_SCRIPT,
  RATE_SCRIPT,
  type RedisScript,
  runScript,
} from "./redis-scripts.js";

/** What the limiter does when Redis cannot answer in time (SECURITY.md "Limits when Redis fails"). */
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
}

/**
 * Rate and concurrency counters shared by every instance through Redis (atomic Lua scripts,
 * `EVALSHA` with an `EVAL` fallback). A call that fails or takes longer than the timeout
 * falls back by policy; while Redis is disconnected calls skip it at once, so an outage costs
 * no waiting and no retry storm, and operation returns to shared when it reconnects.
 */
export class RedisRateLimiter implements RateLimiter {
  readonly policy: LimiterFailurePolicy;
  private readonly redis: LimiterRedis;
  private readonly ownsClient: boolean;
  private readonly prefix: string;
  private readonly fallback = new MemoryRateLimiter();
  private readonly onModeChange: ((mode: LimiterMode, error?: Error) => void) | undefined;
  private modeNow: LimiterMode = "shared";

  constructor(options: RedisRateLimiterOptions) {
    this.policy = options.failurePolicy ?? "degrade";
    this.prefix = options.prefix ?? "keyward:";
    this.onModeChange = options.onModeChange;
    if (typeof options.redis === "string") {
      this.redis = connectLimiterRedis(options.redis, options.timeoutMs ?? 100);
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
    const reply = await this.run(RATE_SCRIPT, `${this.prefix}rl:${lineageId}`, [params.intervalMs, params.toleranceMs, cost]);
    if (reply === FAILED) {
      if (this.policy === "open") return { allowed: true, aheadMs: 0 };
      return this.fallback.consumeRate(lineageId, params, cost, now);
    }
    const [allowed, ahead] = reply as [number, string];
    return { allowed: allowed === 1, aheadMs: Number(ahead) };
  }

  async peekRate(lineageId: string, now: number): Promise<number> {
    const reply = await this.run(PEEK_RATE_SCRIPT, `${this.prefix}rl:${lineageId}`, []);
    return reply === FAILED ? this.fallback.peekRate(lineageId, now) : Number(reply);
  }

  async acquireSlot(lineageId: string, max: number, leaseId: string, leaseMs: number, now: number): Promise<boolean> {
    const reply = await this.run(ACQUIRE_SLOT_SCRIPT, `${this.prefix}cc:${lineageId}`, [max, leaseMs, leaseId]);
    if (reply === FAILED) {
      if (this.policy === "open") return true;
      return this.fallback.acquireSlot(lineageId, max, leaseId, leaseMs, now);
    }
    return reply === 1;
  }

  async releaseSlot(lineageId: string, leaseId: string): Promise<boolean> {
    // The lease may have been taken from the fallback during an outage: free it in both places.
    const local = await this.fallback.releaseSlot(lineageId, leaseId);
    if (this.redis.status !== "ready") return local;
    try {
      return (await this.redis.zrem(`${this.prefix}cc:${lineageId}`, leaseId)) === 1 || local;
    } catch {
      // Unreleased, the lease expires by itself.
      return local;
    }
  }

  async countSlots(lineageId: string, now: number): Promise<number> {
    const reply = await this.run(COUNT_SLOTS_SCRIPT, `${this.prefix}cc:${lineageId}`, []);
    return reply === FAILED ? this.fallback.countSlots(lineageId, now) : Number(reply);
  }

  async close(): Promise<void> {
    await this.fallback.close();
    if (!this.ownsClient) return;
    if (this.redis.status === "ready") await this.redis.quit().catch(() => this.redis.disconnect());
    else this.redis.disconnect();
  }

  /** Runs a script by its SHA, loading it with EVAL when Redis does not have it yet. */
  private async run(script: RedisScript, key: string, args: (string | number)[]): Promise<unknown> {
    if (this.redis.status !== "ready") return this.failed(new Error(`redis is ${this.redis.status}`));
    try {
      const reply = await runScript(this.redis, script, key, args);
      this.setMode("shared");
      return reply;
    } catch (error) {
      return this.failed(error as Error);
    }
  }

  private failed(error: Error): typeof FAILED {
    if (this.policy === "closed") {
      this.setMode("degraded", error);
      throw new KeywardError("LIMITER_UNAVAILABLE", "the shared limiter cannot be reached", { retryAfterSeconds: 1, cause: error });
    }
    this.setMode(this.policy === "open" ? "open" : "degraded", error);
    return FAILED;
  }

  private setMode(mode: LimiterMode, error?: Error): void {
    if (mode === this.modeNow) return;
    this.modeNow = mode;
    this.onModeChange?.(mode, error);
  }
}

const FAILED = Symbol("redis call failed");
