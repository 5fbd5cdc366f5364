import type { KeyStore } from "../../ports/key-store.js";
import {
  BUCKET_MS,
  type LastUse,
  type RecentRequest,
  type RecentRequestCursor,
  type StoredRecentRequest,
  type UsageCount,
  type UsageQuery,
  type UsageRow,
  type UsageStore,
} from "../../ports/usage-recorder.js";

/** Usage in memory, for the memory store and tests; last uses go to the key store's records. */
export class MemoryUsageStore implements UsageStore {
  private readonly counts = new Map<string, UsageCount>();
  /** Each key's recent requests, oldest first, and its next sequence number. */
  private readonly recent = new Map<string, { next: number; requests: StoredRecentRequest[] }>();

  constructor(private readonly keys: KeyStore) {}

  async writeUsage(counts: readonly UsageCount[], lastUses: readonly LastUse[]): Promise<void> {
    for (const c of counts) {
      const id = `${c.minute} ${c.keyId} ${c.outcome}`;
      const existing = this.counts.get(id);
      if (existing) existing.count += c.count;
      else this.counts.set(id, { ...c });
    }
    for (const use of lastUses) {
      const key = await this.keys.getKey(use.keyId);
      if (key && (key.lastUsedAt === null || key.lastUsedAt < use.at))
        await this.keys.updateKey(use.keyId, { lastUsedAt: use.at, lastUsedIp: use.ip }, null);
    }
  }

  async writeRecentRequests(requests: readonly RecentRequest[], keep: number): Promise<void> {
    for (const request of requests) {
      let log = this.recent.get(request.keyId);
      if (!log) {
        log = { next: 0, requests: [] };
        this.recent.set(request.keyId, log);
      }
      log.requests.push({ ...request, missingScopes: [...request.missingScopes], seq: log.next++ });
      if (log.requests.length > keep) log.requests.splice(0, log.requests.length - keep);
    }
  }

  async listRecentRequests(keyId: string, keep: number, limit: number, after: RecentRequestCursor | null): Promise<StoredRecentRequest[]> {
    return (this.recent.get(keyId)?.requests ?? [])
      .slice(-keep)
      .filter((r) => after === null || r.at < after.at || (r.at === after.at && r.seq < after.seq))
      .sort((a, b) => b.at - a.at || b.seq - a.seq)
      .slice(0, limit);
  }

  async queryUsage(query: UsageQuery): Promise<UsageRow[]> {
    const width = BUCKET_MS[query.bucket];
    const buckets = new Map<string, UsageRow>();
    for (const c of this.counts.values()) {
      if (c.minute < query.since || c.minute >= query.until) continue;
      if (query.keyId !== undefined && c.keyId !== query.keyId) continue;
      if (query.owner !== undefined && c.owner !== query.owner) continue;
      if (query.outcome !== undefined && c.outcome !== query.outcome) continue;
      const start = c.minute - (c.minute % width);
      const keyId = query.groupBy === "outcome" ? "" : c.keyId;
      const id = `${start} ${keyId} ${c.outcome}`;
      const row = buckets.get(id);
      if (row) row.count += c.count;
      else buckets.set(id, { start, keyId, outcome: c.outcome, count: c.count });
    }
    return [...buckets.values()]
      .sort((a, b) => a.start - b.start || a.keyId.localeCompare(b.keyId) || a.outcome.localeCompare(b.outcome))
      .slice(0, query.limit);
  }

  async pruneUsage(before: number): Promise<number> {
    let removed = 0;
    for (const [id, c] of this.counts) {
      if (c.minute < before) {
        this.counts.delete(id);
        removed++;
      }
    }
    return removed;
  }
}
