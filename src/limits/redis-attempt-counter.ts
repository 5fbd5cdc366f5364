import type { Redis } from "ioredis";
import type { SharedAttemptCounter } from "../ports/limits.js";
import { RedisBreaker } from "./redis-breaker.js";
import { connectLimiterRedis, FAILED_ATTEMPT_SCRIPT, runScript, withDeadline } from "./redis-scripts.js";

export type AttemptCounterRedis = Pick<Redis, "evalsha" | "eval" | "status" | "quit" | "disconnect">;

export interface RedisAttemptCounterOptions {
  /** A `redis://` URL, or a client the caller owns. */
  redis: string | AttemptCounterRedis;
  /** Prefix of every key. Default `keyward:`. */
  prefix?: string;
  /** Per-call time limit; past it the instance counts alone for that attempt. Default 100 ms. */
  timeoutMs?: number;
  /** Told once per change between shared and per-instance counting. */
  onModeChange?: (mode: "shared" | "local", error?: Error) => void;
  /** After a call fails or times out, Redis is skipped for this long, then one call probes it. Default 1,000 ms. */
  breakMs?: number;
}

/**
 * Failed attempts per client address, counted in Redis by one atomic script so that every
 * instance sees the same number. When Redis fails or is slow, `increment` answers null at once
 * (no waiting while disconnected, and for `breakMs` after a timeout) and each instance keeps
 * counting on its own: the throttle degrades, it never turns off.
 */
export class RedisAttemptCounter implements SharedAttemptCounter {
  private readonly redis: AttemptCounterRedis;
  private readonly ownsClient: boolean;
  private readonly prefix: string;
  private readonly onModeChange: ((mode: "shared" | "local", error?: Error) => void) | undefined;
  private mode: "shared" | "local" = "shared";
  private readonly breaker: RedisBreaker;
  private readonly timeoutMs: number;

  constructor(options: RedisAttemptCounterOptions) {
    this.breaker = new RedisBreaker(options.breakMs ?? 1_000);
    this.timeoutMs = options.timeoutMs ?? 100;
    this.prefix = options.prefix ?? "keyward:";
    this.onModeChange = options.onModeChange;
    this.ownsClient = typeof options.redis === "string";
    this.redis = typeof options.redis === "string" ? connectLimiterRedis(options.redis, this.timeoutMs) : options.redis;
  }

  /** True while Redis is connected (otherwise every instance counts alone). */
  get connected(): boolean {
    return this.redis.status === "ready";
  }

  async increment(address: string, windowMs: number): Promise<{ count: number; resetInMs: number } | null> {
    if (this.redis.status !== "ready") return this.failed(new Error(`redis is ${this.redis.status}`));
    if (!this.breaker.enter()) return null;
    try {
      const [count, resetInMs] = (await withDeadline(
        (live) => runScript(this.redis, FAILED_ATTEMPT_SCRIPT, `${this.prefix}fa:${address}`, [windowMs], live),
        this.timeoutMs,
      )) as [number, number];
      this.breaker.succeeded();
      this.setMode("shared");
      return { count: Number(count), resetInMs: Number(resetInMs) };
    } catch (error) {
      this.breaker.failed();
      return this.failed(error as Error);
    }
  }

  async close(): Promise<void> {
    if (!this.ownsClient) return;
    if (this.redis.status === "ready") await this.redis.quit().catch(() => this.redis.disconnect());
    else this.redis.disconnect();
  }

  private failed(error: Error): null {
    this.setMode("local", error);
    return null;
  }

  private setMode(mode: "shared" | "local", error?: Error): void {
    if (mode === this.mode) return;
    this.mode = mode;
    this.onModeChange?.(mode, error);
  }
}
