import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import {
  BUCKET_MS,
  type LastUse,
  type UsageCount,
  type UsageEvent,
  type UsageJournal,
  type UsageRecorder,
  type UsageStore,
  type UsageWriter,
} from "../ports/usage-recorder.js";
import { UsageMerge, usageRowId } from "./usage-merge.js";

export interface BufferedUsageRecorderOptions {
  store: UsageStore;
  /** Flush at least this often. Default 1000 ms: the most a `kill -9` can lose. */
  flushIntervalMs?: number;
  /** Flush early when this many distinct (minute, key, outcome) rows are buffered. Default 5000. */
  flushAtEntries?: number;
  /** Past this many rows (the store is slow or down), new events are dropped and counted. Default 50000. */
  maxEntries?: number;
  /**
   * With a store that keeps a journal: fold the flushes into the counts at least this often.
   * Default 60,000 ms: how far `last_used_at` and other processes' counts may lag. A query
   * through this recorder folds first.
   */
  foldIntervalMs?: number;
  /** Fold early when the flushes since the last fold hold this many distinct rows. Default 200,000. */
  foldAtEntries?: number;
  /** Drop counts older than this, checked at most hourly. Default 90 days; 0 keeps everything. */
  retentionMs?: number;
  now?: () => number;
  onFlushError?: (error: unknown) => void;
  /** Who writes the journal; by default this process (host, pid, a random id). */
  writer?: UsageWriter;
}

export interface UsageBufferStats {
  entries: number;
  dropped: number;
  flushes: number;
  /** Folds of the journal that added something. */
  folds: number;
}

const PRUNE_EVERY_MS = 3_600_000;
/** Rows per transaction of a fold: short enough that requests wait milliseconds, not seconds. */
const FOLD_SLICE_ROWS = 1_000;

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

function* slices<T>(items: readonly T[], size: number): Generator<readonly T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

/**
 * Usage tracking off the hot path: `record()` adds to in-memory counts per minute, key and
 * outcome (a Map update, no I/O) and a background flush writes them. The buffer is bounded;
 * when the store cannot keep up, events are dropped and counted rather than slowing
 * verification or growing without end. Graceful shutdown flushes; `kill -9` loses at most one
 * flush interval.
 *
 * With a store that keeps a journal (SQLite), a flush is one appended row, and this recorder
 * keeps the sum of its flushes since the last fold; every `foldIntervalMs` it adds that sum to
 * the counts in short transactions. With many keys in use, each key is then written about once
 * a minute instead of once a flush. Without one (PostgreSQL, memory), each flush writes the
 * counts directly.
 */
export class BufferedUsageRecorder implements UsageRecorder {
  readonly stats: UsageBufferStats = { entries: 0, dropped: 0, flushes: 0, folds: 0 };
  private counts = new Map<string, UsageCount>();
  /** Each key's latest row in `counts`. */
  private rowByKey = new Map<string, UsageCount>();
  private lastUses = new Map<string, LastUse>();
  private readonly store: UsageStore;
  private readonly journal: UsageJournal | null;
  private readonly writer: UsageWriter;
  private readonly flushAtEntries: number;
  private readonly maxEntries: number;
  private readonly foldIntervalMs: number;
  private readonly foldAtEntries: number;
  private readonly retentionMs: number;
  private readonly now: () => number;
  private readonly onFlushError: (error: unknown) => void;
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> | null = null;
  private folding: Promise<void> | null = null;
  /** Journal mode: the flushes journaled since the last fold, and the id of the latest. */
  private pending = new UsageMerge();
  private journaledUpTo = 0;
  private foldSeq = 0;
  private lastFold: number;
  private lastPrune = 0;

  constructor(options: BufferedUsageRecorderOptions) {
    this.store = options.store;
    this.journal = options.store.journal ?? null;
    this.writer = options.writer ?? {
      id: `${hostname()}/${process.pid}/${randomBytes(6).toString("hex")}`,
      host: hostname(),
      pid: process.pid,
    };
    this.flushAtEntries = options.flushAtEntries ?? 5_000;
    this.maxEntries = options.maxEntries ?? 50_000;
    this.foldIntervalMs = options.foldIntervalMs ?? 60_000;
    this.foldAtEntries = options.foldAtEntries ?? 200_000;
    this.retentionMs = options.retentionMs ?? 90 * 86_400_000;
    this.now = options.now ?? Date.now;
    this.onFlushError = options.onFlushError ?? (() => {});
    // The first tick folds what processes that ended without folding left in the journal.
    this.lastFold = -Infinity;
    this.timer = setInterval(() => void this.tick(), options.flushIntervalMs ?? 1_000);
    this.timer.unref();
  }

  record(event: UsageEvent): void {
    const minute = event.at - (event.at % BUCKET_MS.minute);
    const keyId = event.keyId ?? "";
    // Most uses of a key repeat its last row (same minute, same outcome): one Map lookup on the
    // key id, a string the cache already holds, instead of building the row's id.
    const last = this.rowByKey.get(keyId);
    if (last !== undefined && last.minute === minute && last.outcome === event.code) last.count++;
    else if (!this.countRow(minute, keyId, event)) return;
    if (event.code === "VALID" && event.keyId) {
      const use = this.lastUses.get(event.keyId);
      if (use) {
        use.at = event.at;
        use.ip = event.ip ?? null;
      } else this.lastUses.set(event.keyId, { keyId: event.keyId, at: event.at, ip: event.ip ?? null });
    }
  }

  /** Counts an event in its row, made if new; false when the buffer is full and the event was dropped. */
  private countRow(minute: number, keyId: string, event: UsageEvent): boolean {
    const id = usageRowId(minute, keyId, event.code);
    let row = this.counts.get(id);
    if (row) row.count++;
    else {
      if (this.counts.size >= this.maxEntries) {
        this.stats.dropped++;
        return false;
      }
      const owner = event.owner ? `${event.owner.type}:${event.owner.id}` : "";
      row = { minute, keyId, owner, outcome: event.code, count: 1 };
      this.counts.set(id, row);
      this.rowByKey.set(keyId, row);
      this.stats.entries = this.counts.size;
      // After the row is filed: a flush swaps the buffer out at once.
      if (this.counts.size >= this.flushAtEntries) void this.writeBuffer();
      return true;
    }
    this.rowByKey.set(keyId, row);
    return true;
  }

  /** Writes what is buffered and, with a journal, folds it: afterwards the store shows every use recorded here so far. */
  async flush(): Promise<void> {
    await this.writeBuffer();
    if (this.journal) await this.fold();
  }

  /** Stops the timer and writes what is left (graceful shutdown). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flushing;
    await this.folding;
    await this.flush();
    await this.journal?.retire(this.writer.id).catch(this.onFlushError);
  }

  private async tick(): Promise<void> {
    await this.writeBuffer();
    if (this.journal && (this.now() - this.lastFold >= this.foldIntervalMs || this.pending.counts.size >= this.foldAtEntries)) {
      await this.fold();
    }
  }

  /** One write of the buffer at a time; a failed batch goes back into the buffer as far as it fits. */
  private writeBuffer(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.counts.size === 0 && this.lastUses.size === 0) return Promise.resolve();
    const counts = this.counts;
    const lastUses = this.lastUses;
    this.counts = new Map();
    this.rowByKey = new Map();
    this.lastUses = new Map();
    this.stats.entries = 0;
    this.flushing = (async () => {
      try {
        const rows = [...counts.values()];
        const uses = [...lastUses.values()];
        if (this.journal) {
          this.journaledUpTo = await this.journal.append(this.writer, rows, uses);
          for (const row of rows) this.pending.addCount(row);
          for (const use of uses) this.pending.addLastUse(use);
        } else {
          await this.store.writeUsage(rows, uses);
          await this.pruneIfDue();
        }
        this.stats.flushes++;
      } catch (error) {
        this.restore(counts, lastUses);
        this.onFlushError(error);
      } finally {
        this.flushing = null;
      }
    })();
    return this.flushing;
  }

  /**
   * Adds the flushes journaled since the last fold to the counts, a slice per transaction with
   * the event loop free in between. What a failed fold had not added stays pending (and in the
   * journal) for the next one.
   */
  private fold(): Promise<void> {
    this.folding ??= (async () => {
      const journal = this.journal as UsageJournal;
      await this.flushing;
      this.lastFold = this.now();
      const folding = this.pending;
      const upTo = this.journaledUpTo;
      const foldId = ++this.foldSeq;
      this.pending = new UsageMerge();
      const counts = [...folding.counts.values()].filter((c) => c.count !== 0);
      const uses = [...folding.lastUses.values()];
      let applied = 0;
      try {
        if (counts.length > 0 || uses.length > 0) {
          let owned = true;
          for (const slice of slices(counts, FOLD_SLICE_ROWS)) {
            owned = await journal.applySlice(this.writer.id, foldId, slice, []);
            if (!owned) break;
            applied += slice.length;
            await yieldToEventLoop();
          }
          for (const slice of owned ? slices(uses, FOLD_SLICE_ROWS) : []) {
            owned = await journal.applySlice(this.writer.id, foldId, [], slice);
            if (!owned) break;
            await yieldToEventLoop();
          }
          // Not owned: another process took this writer for gone and folded its journal, this sum included.
          if (owned) await journal.endFold(this.writer.id, upTo);
          applied = counts.length;
          this.stats.folds++;
        }
        await journal.recoverOrphans();
        await this.pruneIfDue();
      } catch (error) {
        // The slices added so far are cancelled in the journal; the rest goes back to pending.
        for (const c of counts.slice(applied)) this.pending.addCount(c);
        for (const use of uses) this.pending.addLastUse(use);
        this.onFlushError(error);
      } finally {
        this.folding = null;
      }
    })();
    return this.folding;
  }

  private restore(counts: Map<string, UsageCount>, lastUses: Map<string, LastUse>): void {
    const merge = new UsageMerge();
    for (const c of this.counts.values()) merge.addCount(c);
    for (const c of counts.values()) {
      if (merge.counts.size < this.maxEntries || merge.counts.has(usageRowId(c.minute, c.keyId, c.outcome))) merge.addCount(c);
      else this.stats.dropped += c.count;
    }
    for (const use of lastUses.values()) merge.addLastUse(use);
    for (const use of this.lastUses.values()) merge.addLastUse(use);
    this.counts = merge.counts;
    this.rowByKey = new Map();
    this.lastUses = merge.lastUses;
    this.stats.entries = this.counts.size;
  }

  private async pruneIfDue(): Promise<void> {
    const now = this.now();
    if (this.retentionMs <= 0 || now - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = now;
    await this.store.pruneUsage(now - this.retentionMs);
  }
}
