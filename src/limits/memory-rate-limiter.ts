import { decideRate, type GcraParams } from "../core/rate-limit.js";
import type { RateLimiter, RateOutcome } from "../ports/limits.js";

/** Past this many tracked keys, a sweep drops the ones whose state has run out. */
const SWEEP_THRESHOLD = 10_000;

/**
 * Rate and concurrency counters in this process: exact on one instance, and the fallback of
 * the Redis limiter when Redis cannot be reached (never unlimited). State that has run out
 * (a TAT in the past, an expired lease) is swept, so memory follows the active keys only.
 */
export class MemoryRateLimiter implements RateLimiter {
  private readonly tats = new Map<string, number>();
  private readonly slots = new Map<string, Map<string, number>>();

  async consumeRate(lineageId: string, params: GcraParams, cost: number, now: number): Promise<RateOutcome> {
    const stored = this.tats.get(lineageId);
    const decision = decideRate(stored, params, now, cost);
    if (!decision.allowed) return { allowed: false, aheadMs: decision.resetMs };
    if (this.tats.size >= SWEEP_THRESHOLD && stored === undefined) this.sweepRates(now);
    this.tats.set(lineageId, decision.tat);
    return { allowed: true, aheadMs: decision.resetMs };
  }

  async peekRate(lineageId: string, now: number): Promise<number> {
    return Math.max(0, (this.tats.get(lineageId) ?? now) - now);
  }

  async acquireSlot(lineageId: string, max: number, leaseId: string, leaseMs: number, now: number): Promise<boolean> {
    let held = this.slots.get(lineageId);
    if (!held) {
      if (this.slots.size >= SWEEP_THRESHOLD) this.sweepSlots(now);
      held = new Map();
      this.slots.set(lineageId, held);
    }
    dropExpired(held, now);
    if (held.size >= max) return false;
    held.set(leaseId, now + leaseMs);
    return true;
  }

  async releaseSlot(lineageId: string, leaseId: string): Promise<boolean> {
    const held = this.slots.get(lineageId);
    if (!held?.delete(leaseId)) return false;
    if (held.size === 0) this.slots.delete(lineageId);
    return true;
  }

  async countSlots(lineageId: string, now: number): Promise<number> {
    const held = this.slots.get(lineageId);
    if (!held) return 0;
    dropExpired(held, now);
    return held.size;
  }

  async close(): Promise<void> {
    this.tats.clear();
    this.slots.clear();
  }

  private sweepRates(now: number): void {
    for (const [id, tat] of this.tats) if (tat <= now) this.tats.delete(id);
  }

  private sweepSlots(now: number): void {
    for (const [id, held] of this.slots) {
      dropExpired(held, now);
      if (held.size === 0) this.slots.delete(id);
    }
  }
}

function dropExpired(held: Map<string, number>, now: number): void {
  for (const [lease, expiresAt] of held) if (expiresAt <= now) held.delete(lease);
}
