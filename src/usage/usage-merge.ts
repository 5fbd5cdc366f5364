import type { LastUse, UsageCount } from "../ports/usage-recorder.js";

/** The identity of a usage row: one key's outcome in one minute. */
export const usageRowId = (minute: number, keyId: string, outcome: string): string => `${minute} ${keyId} ${outcome}`;

/**
 * Sums usage batches: counts of the same row add up, and each key keeps its latest use. Used to
 * put a failed flush back into the buffer and to fold many journaled flushes into one write.
 */
export class UsageMerge {
  readonly counts = new Map<string, UsageCount>();
  readonly lastUses = new Map<string, LastUse>();

  addCount(c: UsageCount): void {
    const id = usageRowId(c.minute, c.keyId, c.outcome);
    const existing = this.counts.get(id);
    if (existing) existing.count += c.count;
    else this.counts.set(id, { ...c });
  }

  addLastUse(use: LastUse): void {
    const existing = this.lastUses.get(use.keyId);
    if (!existing || existing.at < use.at) this.lastUses.set(use.keyId, { ...use });
  }
}

/** One flush as a journal row: compact positional arrays, no key material (ids, owners, outcomes, times, addresses). */
export function encodeUsageBatch(counts: readonly UsageCount[], lastUses: readonly LastUse[]): string {
  return JSON.stringify({
    c: counts.map((c) => [c.minute, c.keyId, c.owner, c.outcome, c.count]),
    u: lastUses.map((u) => [u.keyId, u.at, u.ip]),
  });
}

/** Adds one journal row to `merge`. */
export function decodeUsageBatch(payload: string, merge: UsageMerge): void {
  const batch = JSON.parse(payload) as {
    c: [number, string, string, UsageCount["outcome"], number][];
    u: [string, number, string | null][];
  };
  for (const [minute, keyId, owner, outcome, count] of batch.c) merge.addCount({ minute, keyId, owner, outcome, count });
  for (const [keyId, at, ip] of batch.u) merge.addLastUse({ keyId, at, ip });
}
