import { LRUCache } from "lru-cache";
import {
  type AttemptWindow,
  attemptAddress,
  blockedForMs,
  countAttempt,
  type FailedAttemptPolicy,
  mergeSharedCount,
} from "../core/failed-attempts.js";
import type { SharedAttemptCounter } from "../ports/limits.js";

export interface FailedAttemptLimiterOptions {
  /** Failed attempts (MALFORMED or NOT_FOUND) one address may make per window. Default 100. */
  limit?: number;
  /** Default 60,000 ms. */
  windowMs?: number;
  /** Addresses tracked at most (LRU): memory stays bounded whatever the attacker does. Default 100,000. */
  maxAddresses?: number;
  /** Shares the count across instances (RedisAttemptCounter). Default: this instance counts alone. */
  shared?: SharedAttemptCounter;
}

/**
 * Throttles guessing per client address, in front of the store lookup (docs/security.md, checks 7 and 9).
 * Checks read only this process's memory; attempts are counted here at once (before the
 * lookup, so concurrent guesses cannot overrun the limit) and, when they turn out to be
 * failures, told to the shared counter, whose answer blocks the address here too.
 *
 * @example
 * const keyward = new Keyward({ store, failedAttempts: new FailedAttemptLimiter({ limit: 20 }) });
 */
export class FailedAttemptLimiter {
  readonly policy: FailedAttemptPolicy;
  private readonly windows: LRUCache<string, AttemptWindow>;
  /** The cross-instance counter, when there is one. */
  readonly shared: SharedAttemptCounter | undefined;

  constructor(options: FailedAttemptLimiterOptions = {}) {
    this.policy = { limit: options.limit ?? 100, windowMs: options.windowMs ?? 60_000 };
    this.windows = new LRUCache({ max: options.maxAddresses ?? 100_000 });
    this.shared = options.shared;
  }

  /** How long `ip` must wait before its next attempt (ms); 0 when it may try. No I/O. */
  blockedForMs(ip: string | undefined, now: number): number {
    if (!ip) return 0;
    return blockedForMs(this.windows.get(attemptAddress(ip)), this.policy, now);
  }

  /** Counts one attempt of `ip` in this process. */
  charge(ip: string | undefined, now: number): void {
    if (!ip) return;
    const address = attemptAddress(ip);
    this.windows.set(address, countAttempt(this.windows.get(address), this.policy, now));
  }

  /** Gives back a charged attempt that found a key. */
  refund(ip: string | undefined, now: number): void {
    if (!ip) return;
    const address = attemptAddress(ip);
    // Kept even at zero, never deleted: lru-cache empties its whole 100,000-slot store when its
    // last entry is deleted, which made every cold lookup from a lone address cost ~0.4 ms.
    this.windows.set(address, countAttempt(this.windows.get(address), this.policy, now, -1));
  }

  /** A charged attempt failed: the shared counter hears of it, and what every instance counted applies here. */
  async confirm(ip: string | undefined, now: number): Promise<void> {
    if (!ip || !this.shared) return;
    const address = attemptAddress(ip);
    const answer = await this.shared.increment(address, this.policy.windowMs);
    if (!answer) return;
    const shared = { count: answer.count, resetAt: now + answer.resetInMs };
    this.windows.set(address, mergeSharedCount(this.windows.get(address), shared, now));
  }

  /** Addresses tracked now (for tests and metrics). */
  get size(): number {
    return this.windows.size;
  }

  async close(): Promise<void> {
    this.windows.clear();
    await this.shared?.close();
  }
}
