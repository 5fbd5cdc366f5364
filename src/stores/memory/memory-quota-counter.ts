import type { QuotaCounter } from "../../ports/limits.js";

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
}
