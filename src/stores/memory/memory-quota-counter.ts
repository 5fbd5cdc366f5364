import { blockSize } from "../../core/quota-block.js";
import type { QuotaBlock, QuotaBlockRequest, QuotaCounter } from "../../ports/limits.js";

/** Quota counters in memory, for the memory store and tests. Exact within one process. */
export class MemoryQuotaCounter implements QuotaCounter {
  private readonly counters = new Map<string, { used: number; expiresAt: number | null }>();

  async spend(lineageId: string, window: string, allowance: number, cost: number, expiresAt: number | null): Promise<number | null> {
    const id = `${lineageId} ${window}`;
    const counter = this.counters.get(id) ?? { used: 0, expiresAt };
    if (counter.used + cost > allowance) return null;
    counter.used += cost;
    this.counters.set(id, counter);
    return counter.used;
  }

  async used(lineageId: string, window: string): Promise<number> {
    return this.counters.get(`${lineageId} ${window}`)?.used ?? 0;
  }

  /** Gives `cost` uses back, never below zero; returns the use count after. */
  async refund(lineageId: string, window: string, cost: number): Promise<number> {
    const counter = this.counters.get(`${lineageId} ${window}`);
    if (!counter) return 0;
    counter.used = Math.max(0, counter.used - cost);
    return counter.used;
  }

  /** A block for BlockQuotaCounter (docs/limits.md, "Quota blocks"). */
  async takeBlock(
    lineageId: string,
    window: string,
    allowance: number,
    block: QuotaBlockRequest,
    expiresAt: number | null,
  ): Promise<QuotaBlock | null> {
    // No await between the read and the write: one step, as the stores' single statement.
    const id = `${lineageId} ${window}`;
    const counter = this.counters.get(id) ?? { used: 0, expiresAt };
    const taken = blockSize(allowance, counter.used, block);
    if (counter.used + taken > allowance) return null;
    counter.used += taken;
    this.counters.set(id, counter);
    return { taken, used: counter.used };
  }
}
