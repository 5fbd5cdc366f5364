import { BUCKET_MS, type LastUse, type UsageCount, type UsageEvent, type UsageRecorder, type UsageStore } from "../ports/usage-recorder.js";

export interface BufferedUsageRecorderOptions {
  store: UsageStore;
  /** Flush at least this often. Default 1000 ms: the most a `kill -9` can lose. */
  flushIntervalMs?: number;
  /** Flush early when this many distinct (minute, key, outcome) rows are buffered. Default 5000. */
  flushAtEntries?: number;
  /** Past this many rows (the store is slow or down), new events are dropped and counted. Default 50000. */
  maxEntries?: number;
  /** Drop counts older than this, checked at most hourly. Default 90 days; 0 keeps everything. */
  retentionMs?: number;
  now?: () => number;
  onFlushError?: (error: unknown) => void;
}

export interface UsageBufferStats {
  entries: number;
  dropped: number;
  flushes: number;
}

const PRUNE_EVERY_MS = 3_600_000;

/**
 * Usage tracking off the hot path: `record()` adds to in-memory counts per minute, key and
 * outcome (a Map update, no I/O) and a background flush writes them in one transaction. The
 * buffer is bounded; when the store cannot keep up, events are dropped and counted rather than
 * slowing verification or growing without end. Graceful shutdown flushes; `kill -9` loses at
 * most one flush interval.
 */
export class BufferedUsageRecorder implements UsageRecorder {
  readonly stats: UsageBufferStats = { entries: 0, dropped: 0, flushes: 0 };
  private counts = new Map<string, UsageCount>();
  private lastUses = new Map<string, LastUse>();
  private readonly store: UsageStore;
  private readonly flushAtEntries: number;
  private readonly maxEntries: number;
  private readonly retentionMs: number;
  private readonly now: () => number;
  private readonly onFlushError: (error: unknown) => void;
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> | null = null;
  private lastPrune = 0;

  constructor(options: BufferedUsageRecorderOptions) {
    this.store = options.store;
    this.flushAtEntries = options.flushAtEntries ?? 5_000;
    this.maxEntries = options.maxEntries ?? 50_000;
    this.retentionMs = options.retentionMs ?? 90 * 86_400_000;
    this.now = options.now ?? Date.now;
    this.onFlushError = options.onFlushError ?? (() => {});
    this.timer = setInterval(() => void this.flush(), options.flushIntervalMs ?? 1_000);
    this.timer.unref();
  }

  record(event: UsageEvent): void {
    const minute = event.at - (event.at % BUCKET_MS.minute);
    const keyId = event.keyId ?? "";
    const id = `${minute} ${keyId} ${event.code}`;
    const counted = this.counts.get(id);
    if (counted) counted.count++;
    else {
      if (this.counts.size >= this.maxEntries) {
        this.stats.dropped++;
        return;
      }
      const owner = event.owner ? `${event.owner.type}:${event.owner.id}` : "";
      this.counts.set(id, { minute, keyId, owner, outcome: event.code, count: 1 });
      this.stats.entries = this.counts.size;
      if (this.counts.size >= this.flushAtEntries) void this.flush();
    }
    if (event.code === "VALID" && event.keyId) {
      const last = this.lastUses.get(event.keyId);
      if (last) {
        last.at = event.at;
        last.ip = event.ip ?? null;
      } else this.lastUses.set(event.keyId, { keyId: event.keyId, at: event.at, ip: event.ip ?? null });
    }
  }

  /** Writes what is buffered. One flush at a time; a failed batch goes back into the buffer as far as it fits. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.counts.size === 0 && this.lastUses.size === 0) return Promise.resolve();
    const counts = this.counts;
    const lastUses = this.lastUses;
    this.counts = new Map();
    this.lastUses = new Map();
    this.stats.entries = 0;
    this.flushing = (async () => {
      try {
        await this.store.writeUsage([...counts.values()], [...lastUses.values()]);
        this.stats.flushes++;
        await this.pruneIfDue();
      } catch (error) {
        this.restore(counts, lastUses);
        this.onFlushError(error);
      } finally {
        this.flushing = null;
      }
    })();
    return this.flushing;
  }

  /** Stops the timer and writes what is left (graceful shutdown). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flushing;
    await this.flush();
  }

  private restore(counts: Map<string, UsageCount>, lastUses: Map<string, LastUse>): void {
    for (const [id, c] of counts) {
      const current = this.counts.get(id);
      if (current) current.count += c.count;
      else if (this.counts.size < this.maxEntries) this.counts.set(id, c);
      else this.stats.dropped += c.count;
    }
    for (const [id, use] of lastUses) if (!this.lastUses.has(id)) this.lastUses.set(id, use);
    this.stats.entries = this.counts.size;
  }

  private async pruneIfDue(): Promise<void> {
    const now = this.now();
    if (this.retentionMs <= 0 || now - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = now;
    await this.store.pruneUsage(now - this.retentionMs);
  }
}
