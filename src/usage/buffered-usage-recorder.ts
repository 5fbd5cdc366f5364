import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { recentRequestRoute } from "../core/request-route.js";
import {
  BUCKET_MS,
  type LastUse,
  type RecentRequest,
  type UsageCount,
  type UsageEvent,
  type UsageJournal,
  type UsageRecorder,
  type UsageStore,
  type UsageWriter,
} from "../ports/usage-recorder.js";
import { UsageBatchBuilder, usageRowId } from "./usage-merge.js";

export interface BufferedUsageRecorderOptions {
  store: UsageStore;
  /** Flush at least this often. Default 1000 ms: the most a `kill -9` can lose. */
  flushIntervalMs?: number;
  /**
   * Flush early when this many rows have counts not yet written. Default 1500: a flush holds the
   * event loop for the time it takes, so many small ones keep request latency even (docs/usage.md).
   */
  flushAtEntries?: number;
  /** Past this many rows with unwritten counts (the store is slow or down), new rows are dropped and counted. Default 50000. */
  maxEntries?: number;
  /**
   * With a store that keeps a journal: fold the flushes into the counts at least this often.
   * Default 60,000 ms: how far `last_used_at` and other processes' counts may lag. A query
   * through this recorder folds first.
   */
  foldIntervalMs?: number;
  /** Fold early when this many rows are held since the last fold. Default 200,000. */
  foldAtEntries?: number;
  /** Drop counts older than this, checked at most hourly. Default 90 days; 0 keeps everything. */
  retentionMs?: number;
  now?: () => number;
  onFlushError?: (error: unknown) => void;
  /** Who writes the journal; by default this process (host, pid, a random id). */
  writer?: UsageWriter;
  /**
   * Recent requests kept per key (docs/usage.md), when the store keeps them
   * (`writeRecentRequests`). Default 100; 0 turns the log off.
   */
  recentRequests?: number;
  /**
   * The most allowed requests, and the most denied ones, written to the recent-requests log per
   * flush interval: past it the newest are kept. Default 1,000 each.
   */
  recentRequestsPerFlush?: number;
  /**
   * The most requests of one key with one outcome the log takes per flush interval (the first
   * ones), so that one busy key cannot push every other key's requests out. Default 10.
   */
  recentRequestsPerKey?: number;
}

export interface UsageBufferStats {
  /** Rows with counts not yet written. */
  entries: number;
  dropped: number;
  flushes: number;
  /** Folds of the journal that added something. */
  folds: number;
  /** Requests left out of the recent-requests log: more in one flush interval than it writes, or a failed write. */
  recentRequestsDropped: number;
}

/** A key's latest use (`at` -1 when none yet), and the latest one flushed (`writtenAt` -1 when none). */
interface HeldLastUse extends LastUse {
  writtenAt: number;
  writtenIp: string | null;
}

/**
 * One (minute, key, outcome) row held in memory. `count` is every use recorded in it, `written`
 * the part already flushed; `count > written` puts it on the dirty list (once). A VALID row of a
 * key links that key's last use, so a use finds both with one Map lookup.
 */
interface HeldRow extends UsageCount {
  readonly id: string;
  written: number;
  readonly use: HeldLastUse | null;
}

const PRUNE_EVERY_MS = 3_600_000;
/** Rows per transaction of a fold: short enough that requests wait milliseconds, not seconds. */
const FOLD_SLICE_ROWS = 1_000;
/** Journal rows deleted per transaction after a fold: a flush row can hold thousands of keys' counts. */
const PURGE_CHUNK_ROWS = 8;

/**
 * Between two slices of a fold, the event loop is free for four times as long as the slice took
 * (at most 100 ms): a fold of many keys then takes at most a fifth of the process's time while it
 * runs, spread over seconds, instead of a burst that requests queue behind.
 */
const FOLD_PAUSE_FACTOR = 4;
const FOLD_PAUSE_MAX_MS = 100;

const pauseAfter = (startedAt: number) =>
  new Promise<void>((resolve) => setTimeout(resolve, Math.min(FOLD_PAUSE_MAX_MS, (performance.now() - startedAt) * FOLD_PAUSE_FACTOR)));

/**
 * Slices in about the order of the store's primary keys (usage_counts: minute, key, outcome;
 * key_last_use: key). A slice of rows adjacent in the B-tree dirties a few pages; the same rows
 * in arrival order dirtied a page each, and the slice's commit wrote them all (20–35 ms a slice at
 * 100,000 keys, against a few ms in order; docs/benchmarks.md). A full sort of 100,000 rows would
 * hold the event loop for ~60 ms, so rows are bucketed by the first random character of the key
 * id (`key_` + base62) and a bucket (~1/62 of the rows) is sorted when its turn comes. The order
 * only makes the writes cheaper: any order gives the same counts.
 */
const KEY_ID_ORDER_CHAR = "key_".length;

function* slicesInKeyOrder<T extends { keyId: string }>(
  items: readonly T[],
  size: number,
  compare: (a: T, b: T) => number,
): Generator<readonly T[]> {
  const buckets = new Map<number, T[]>();
  for (const item of items) {
    const bucket = item.keyId.charCodeAt(KEY_ID_ORDER_CHAR) || 0;
    const list = buckets.get(bucket);
    if (list === undefined) buckets.set(bucket, [item]);
    else list.push(item);
  }
  let slice: T[] = [];
  for (const bucket of [...buckets.keys()].sort((a, b) => a - b)) {
    for (const item of (buckets.get(bucket) as T[]).sort(compare)) {
      slice.push(item);
      if (slice.length === size) {
        yield slice;
        slice = [];
      }
    }
  }
  if (slice.length > 0) yield slice;
}

/**
 * The newest `capacity` requests since the last drain, overwritten in place: recording one is a
 * store and two increments, whatever the traffic. The event itself is held (it is made per
 * verification anyway); what the log keeps of it is built when it is written.
 */
class RequestRing {
  private readonly items: (UsageEvent | undefined)[];
  private next = 0;
  /** Recorded since the last drain. */
  private seen = 0;

  constructor(private readonly capacity: number) {
    this.items = new Array<UsageEvent | undefined>(capacity).fill(undefined);
  }

  add(event: UsageEvent): void {
    this.items[this.next] = event;
    if (++this.next === this.capacity) this.next = 0;
    this.seen++;
  }

  get empty(): boolean {
    return this.seen === 0;
  }

  /** Appends the held requests to `into`, oldest first, and starts empty; returns how many were overwritten. */
  drain(into: UsageEvent[]): number {
    const held = Math.min(this.seen, this.capacity);
    let i = (this.next - held + this.capacity) % this.capacity;
    for (let n = 0; n < held; n++) {
      into.push(this.items[i] as UsageEvent);
      this.items[i] = undefined;
      if (++i === this.capacity) i = 0;
    }
    const dropped = this.seen - held;
    this.seen = 0;
    this.next = 0;
    return dropped;
  }
}

/** Recent requests written per transaction: a few milliseconds of SQLite work, then a pause. */
const RECENT_SLICE = 500;

const byKeyId = (a: { keyId: string }, b: { keyId: string }) => (a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : 0);
const byCountRow = (a: UsageCount, b: UsageCount) =>
  byKeyId(a, b) || a.minute - b.minute || (a.outcome < b.outcome ? -1 : a.outcome > b.outcome ? 1 : 0);

/**
 * Usage tracking off the hot path: `record()` counts in memory per minute, key and outcome (a
 * Map lookup on the key id and an increment, no I/O) and a background flush writes what is new.
 * Rows with unwritten counts are bounded; when the store cannot keep up, new rows are dropped
 * and counted rather than slowing verification or growing without end. Graceful shutdown
 * flushes; `kill -9` loses at most one flush interval.
 *
 * With a store that keeps a journal (SQLite), rows live until the next fold: a flush appends the
 * counts added since the last flush as one journal row, and every `foldIntervalMs` the written
 * counts are added to the store's counts in short transactions. With many keys in use, each key
 * is then written about once a minute instead of once a flush. Without a journal (PostgreSQL,
 * memory), each flush writes its rows directly and lets them go.
 */
export class BufferedUsageRecorder implements UsageRecorder {
  readonly stats: UsageBufferStats = { entries: 0, dropped: 0, flushes: 0, folds: 0, recentRequestsDropped: 0 };
  /** Recent requests kept per key; 0 when the log is off (or the store keeps none). */
  readonly recentRequestsKept: number;
  private rows = new Map<string, HeldRow>();
  /** Each key's latest row, so most uses find their row with one lookup on a string already held. */
  private rowByKey = new Map<string, HeldRow>();
  private dirty: HeldRow[] = [];
  private lastUses = new Map<string, HeldLastUse>();
  private dirtyUses: HeldLastUse[] = [];
  /** Last uses taken from the buffer by a write or a fold that has not finished: not in the store yet. */
  private readonly unstoredUses = new Set<Map<string, HeldLastUse>>();
  /** Recent requests of identified keys since the last write of the log: allowed ones, denied ones. */
  private readonly allowedRequests: RequestRing | null;
  private readonly deniedRequests: RequestRing | null;
  private readonly recentPerKey: number;
  private loggingRequests: Promise<void> | null = null;
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
  /** The id of the latest journal row this recorder appended. */
  private journaledUpTo = 0;
  /** The latest journal row a finished fold covers: every flush up to it is in the counts. */
  private foldedUpTo = 0;
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
    this.flushAtEntries = options.flushAtEntries ?? 1_500;
    this.maxEntries = options.maxEntries ?? 50_000;
    this.foldIntervalMs = options.foldIntervalMs ?? 60_000;
    this.foldAtEntries = options.foldAtEntries ?? 200_000;
    this.retentionMs = options.retentionMs ?? 90 * 86_400_000;
    this.now = options.now ?? Date.now;
    this.onFlushError = options.onFlushError ?? (() => {});
    // The first tick folds what processes that ended without folding left in the journal.
    this.lastFold = Number.NEGATIVE_INFINITY;
    this.recentRequestsKept = this.store.writeRecentRequests ? Math.max(0, Math.floor(options.recentRequests ?? 100)) : 0;
    const perFlush = Math.max(1, Math.floor(options.recentRequestsPerFlush ?? 1_000));
    this.allowedRequests = this.recentRequestsKept > 0 ? new RequestRing(perFlush) : null;
    this.deniedRequests = this.recentRequestsKept > 0 ? new RequestRing(perFlush) : null;
    this.recentPerKey = Math.max(1, Math.floor(options.recentRequestsPerKey ?? 10));
    this.timer = setInterval(() => void this.tick(), options.flushIntervalMs ?? 1_000);
    this.timer.unref();
  }

  record(event: UsageEvent): void {
    const minute = event.at - (event.at % BUCKET_MS.minute);
    const keyId = event.keyId ?? "";
    let row = this.rowByKey.get(keyId);
    if (row === undefined || row.minute !== minute || row.outcome !== event.code) {
      row = this.rowFor(minute, keyId, event);
      if (row === undefined) return;
    }
    if (row.count++ === row.written) this.markDirty(row);
    if (row.use !== null) this.noteUse(row.use, event.at, event.ip ?? null);
    // The recent-requests log: identified keys only (an unknown key has no log to be in), and the
    // first few uses of the row since its last write (the row is the key's, for this outcome).
    if (keyId !== "" && this.allowedRequests !== null && row.count - row.written <= this.recentPerKey) {
      if (event.code === "VALID") this.allowedRequests.add(event);
      else (this.deniedRequests as RequestRing).add(event);
    }
  }

  /**
   * The key's latest use recorded here and not yet in the store: held in the buffer, or taken by
   * a write or fold still under way. What `last_used_at` will say once it lands.
   */
  pendingLastUse(keyId: string): LastUse | null {
    let latest = this.lastUses.get(keyId);
    for (const uses of this.unstoredUses) {
      const use = uses.get(keyId);
      if (use !== undefined && (latest === undefined || use.at > latest.at)) latest = use;
    }
    return latest === undefined || latest.at < 0 ? null : { keyId, at: latest.at, ip: latest.ip };
  }

  /** Writes the recent requests recorded so far (after any write of them under way). */
  async flushRecentRequests(): Promise<void> {
    while (this.loggingRequests) await this.loggingRequests;
    await this.writeRecentRequests();
  }

  /** Writes what is buffered and, with a journal, folds it: afterwards the store shows every use recorded here so far. */
  async flush(): Promise<void> {
    // A write or a fold already under way may have taken its rows before the latest uses were
    // recorded: joining it is not enough (GET /v1/usage right after a request read a key's
    // last use as null). Wait for the write, then write; fold until a fold covers that write.
    while (this.flushing) await this.flushing;
    await this.writeBuffer();
    if (!this.journal) return;
    const target = this.journaledUpTo;
    await this.fold();
    // The fold joined had taken its rows before the write above; one more takes them. A failed
    // fold is reported through onFlushError and leaves its rows for the next one.
    if (this.foldedUpTo < target) await this.fold();
  }

  /** Stops the timer and writes what is left (graceful shutdown). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flushing;
    await this.folding;
    await this.flush();
    await this.flushRecentRequests();
    await this.journal?.retire(this.writer.id).catch(this.onFlushError);
  }

  private rowFor(minute: number, keyId: string, event: UsageEvent): HeldRow | undefined {
    const id = usageRowId(minute, keyId, event.code);
    let row = this.rows.get(id);
    if (row === undefined) {
      if (this.dirty.length >= this.maxEntries) {
        this.stats.dropped++;
        return undefined;
      }
      row = this.newRow(id, minute, keyId, event.owner ? `${event.owner.type}:${event.owner.id}` : "", event.code);
    }
    this.rowByKey.set(keyId, row);
    return row;
  }

  private newRow(id: string, minute: number, keyId: string, owner: string, outcome: UsageCount["outcome"]): HeldRow {
    const use = outcome === "VALID" && keyId !== "" ? this.lastUseOf(keyId) : null;
    const row: HeldRow = { id, minute, keyId, owner, outcome, count: 0, written: 0, use };
    this.rows.set(id, row);
    return row;
  }

  /** The key's last-use entry of this buffer, made empty (`at` -1, nothing to write) if it has none. */
  private lastUseOf(keyId: string): HeldLastUse {
    let use = this.lastUses.get(keyId);
    if (use === undefined) {
      use = { keyId, at: -1, ip: null, writtenAt: -1, writtenIp: null };
      this.lastUses.set(keyId, use);
    }
    return use;
  }

  private markDirty(row: HeldRow): void {
    this.dirty.push(row);
    this.stats.entries = this.dirty.length;
    if (this.dirty.length >= this.flushAtEntries) void this.writeBuffer();
  }

  private noteUse(use: HeldLastUse, at: number, ip: string | null): void {
    if (at < use.at) return;
    // Clean until now (written, or empty): it goes on the list once.
    if (use.at <= use.writtenAt) this.dirtyUses.push(use);
    use.at = at;
    use.ip = ip;
  }

  private async tick(): Promise<void> {
    await this.writeBuffer();
    // Once a flush interval, never on the early flushes: the log's writes per second stay bounded.
    // Not awaited: its slices and pauses must not hold up the fold.
    if (this.loggingRequests === null) void this.writeRecentRequests();
    if (this.journal && (this.now() - this.lastFold >= this.foldIntervalMs || this.rows.size >= this.foldAtEntries)) await this.fold();
  }

  /** One write at a time. What a failed write had taken stays to be written next time. */
  private writeBuffer(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.dirty.length === 0 && this.dirtyUses.length === 0) return Promise.resolve();
    this.flushing = (this.journal ? this.appendToJournal(this.journal) : this.writeDirect()).finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  /** Journal mode: the counts added since the last flush become one journal row; the rows stay for the fold. */
  private async appendToJournal(journal: UsageJournal): Promise<void> {
    const rows = this.dirty;
    const uses = this.dirtyUses;
    this.dirty = [];
    this.dirtyUses = [];
    this.stats.entries = 0;
    // What each row and last use holds now (uses recorded while the write is under way are the
    // next flush's), encoded straight from the held rows: no copies of them first.
    const upTo: number[] = new Array(rows.length);
    const usedAt: number[] = new Array(uses.length);
    const usedIp: (string | null)[] = new Array(uses.length);
    const batch = new UsageBatchBuilder();
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i] as HeldRow;
      upTo[i] = row.count;
      batch.addCount(row.minute, row.outcome, row.keyId, row.count - row.written, row.owner);
    }
    for (let i = 0; i < uses.length; i++) {
      const use = uses[i] as HeldLastUse;
      usedAt[i] = use.at;
      usedIp[i] = use.ip;
      batch.addLastUse(use.keyId, use.at, use.ip);
    }
    try {
      this.journaledUpTo = await journal.append(this.writer, batch.toString());
      for (let i = 0; i < rows.length; i++) {
        const row = rows[i] as HeldRow;
        row.written = upTo[i] as number;
        if (row.count > row.written) this.markDirty(row);
      }
      for (let i = 0; i < uses.length; i++) {
        const use = uses[i] as HeldLastUse;
        use.writtenAt = usedAt[i] as number;
        use.writtenIp = usedIp[i] as string | null;
        if (use.at > use.writtenAt) this.dirtyUses.push(use);
      }
      this.stats.flushes++;
    } catch (error) {
      // Nothing was written: the rows are as unwritten as before, and go back on the lists.
      for (const row of rows) this.dirty.push(row);
      for (const use of uses) this.dirtyUses.push(use);
      this.stats.entries = this.dirty.length;
      this.onFlushError(error);
    }
  }

  /** Direct mode: the rows are written and let go; a failed batch is added back as far as the bound allows. */
  private async writeDirect(): Promise<void> {
    const { rows, uses } = this.takeBuffer();
    // An entry made for a carried row may hold no use yet (`at` -1): nothing to write or carry.
    const lastUses: LastUse[] = [];
    for (const use of uses.values()) if (use.at >= 0) lastUses.push({ keyId: use.keyId, at: use.at, ip: use.ip });
    this.unstoredUses.add(uses);
    try {
      await this.store.writeUsage(
        [...rows.values()].map((row) => ({
          minute: row.minute,
          keyId: row.keyId,
          owner: row.owner,
          outcome: row.outcome,
          count: row.count,
        })),
        lastUses,
      );
      this.stats.flushes++;
      await this.pruneIfDue();
    } catch (error) {
      for (const row of rows.values()) this.carry(row, row.count, 0);
      for (const use of lastUses) this.carryLastUse(use.keyId, use.at, use.ip, false);
      this.onFlushError(error);
    } finally {
      this.unstoredUses.delete(uses);
    }
  }

  /** Hands over everything held and starts empty. */
  private takeBuffer() {
    const taken = { rows: this.rows, uses: this.lastUses, dirty: this.dirty, dirtyUses: this.dirtyUses };
    this.rows = new Map();
    this.rowByKey = new Map();
    this.dirty = [];
    this.lastUses = new Map();
    this.dirtyUses = [];
    this.stats.entries = 0;
    return taken;
  }

  /** Adds `count` uses to a row of the current buffer, `written` of them already written. */
  private carry(row: UsageCount, count: number, written: number): void {
    if (count === 0) return;
    let held = this.rows.get(usageRowId(row.minute, row.keyId, row.outcome));
    if (held === undefined) {
      if (count > written && this.dirty.length >= this.maxEntries) {
        this.stats.dropped += count - written;
        return;
      }
      held = this.newRow(usageRowId(row.minute, row.keyId, row.outcome), row.minute, row.keyId, row.owner, row.outcome);
    }
    const wasClean = held.count === held.written;
    held.count += count;
    held.written += written;
    if (wasClean && held.count > held.written) this.markDirty(held);
  }

  /** Puts a last use back into the current buffer: as already written, or still to write. */
  private carryLastUse(keyId: string, at: number, ip: string | null, written: boolean): void {
    const use = this.lastUseOf(keyId);
    if (written && at > use.writtenAt) [use.writtenAt, use.writtenIp] = [at, ip];
    if (at > use.at) {
      if (use.at <= use.writtenAt && !written) this.dirtyUses.push(use);
      [use.at, use.ip] = [at, ip];
    }
  }

  /**
   * Adds the counts journaled since the last fold to the store's counts, a slice per
   * transaction with the event loop free in between. Rows start afresh; counts recorded but not
   * yet journaled move to the new rows. What a failed fold had not added is carried over as
   * journaled-but-unfolded, for the next one.
   */
  private fold(): Promise<void> {
    this.folding ??= (async () => {
      const journal = this.journal as UsageJournal;
      // A fold usually follows a flush in the same tick: let requests in between the two.
      await new Promise<void>((resolve) => setImmediate(resolve));
      // No flush may be under way from here to the swap below: its rows would change under it.
      while (this.flushing) await this.flushing;
      const swapStarted = performance.now();
      this.lastFold = this.now();
      const foldId = ++this.foldSeq;
      const upTo = this.journaledUpTo;
      const { rows: heldRows, uses: heldUses, dirty: unwritten, dirtyUses: unwrittenUses } = this.takeBuffer();
      // Until the fold has added them, the taken last uses are in neither the buffer nor the store.
      this.unstoredUses.add(heldUses);
      for (const row of unwritten) this.carry(row, row.count - row.written, 0);
      for (const use of unwrittenUses) this.carryLastUse(use.keyId, use.at, use.ip, false);
      const counts: UsageCount[] = [];
      for (const row of heldRows.values()) {
        if (row.written > 0)
          counts.push({ minute: row.minute, keyId: row.keyId, owner: row.owner, outcome: row.outcome, count: row.written });
      }
      const uses: LastUse[] = [];
      for (const use of heldUses.values()) if (use.writtenAt >= 0) uses.push({ keyId: use.keyId, at: use.writtenAt, ip: use.writtenIp });
      // Slices go in key order, not in the order of `counts`: what was added is remembered by row.
      const applied = new Set<UsageCount>();
      let usesApplied = false;
      // Building the lists of 100,000 held rows takes tens of milliseconds: a pause before the first slice.
      await pauseAfter(swapStarted);
      try {
        if (counts.length > 0 || uses.length > 0) {
          let owned = true;
          for (const slice of slicesInKeyOrder(counts, FOLD_SLICE_ROWS, byCountRow)) {
            const started = performance.now();
            owned = await journal.applySlice(this.writer.id, foldId, slice, []);
            if (!owned) break;
            for (const c of slice) applied.add(c);
            await pauseAfter(started);
          }
          for (const slice of owned ? slicesInKeyOrder(uses, FOLD_SLICE_ROWS, byKeyId) : []) {
            const started = performance.now();
            owned = await journal.applySlice(this.writer.id, foldId, [], slice);
            if (!owned) break;
            await pauseAfter(started);
          }
          // Not owned: another process took this writer for gone and folded its journal, this sum included.
          if (owned) {
            await journal.endFold(this.writer.id, foldId, upTo);
            // The folded rows are dead now; deleting them all at once held the event loop for
            // 70–170 ms at 30,000 requests/s (docs/benchmarks.md, Profiling 12).
            for (;;) {
              const started = performance.now();
              if ((await journal.purgeFolded(this.writer.id, PURGE_CHUNK_ROWS)) === 0) break;
              await pauseAfter(started);
            }
          }
          usesApplied = true;
          this.stats.folds++;
        }
        // Folded here, or (not owned) by the process that took this writer for gone.
        this.foldedUpTo = Math.max(this.foldedUpTo, upTo);
        await journal.recoverOrphans();
        await this.pruneIfDue();
      } catch (error) {
        // The slices added so far are cancelled in the journal; the rest is journaled and unfolded.
        for (const c of counts) if (!applied.has(c)) this.carry(c, c.count, c.count);
        if (!usesApplied) for (const use of uses) this.carryLastUse(use.keyId, use.at, use.ip, true);
        this.onFlushError(error);
      } finally {
        this.unstoredUses.delete(heldUses);
        this.folding = null;
      }
    })();
    return this.folding;
  }

  /**
   * Writes the recent requests held since the last write: each key's newest `recentRequestsKept`,
   * oldest first, in slices with the event loop free in between. The log is a debugging aid, not
   * an account: a failed write is reported and its requests counted as dropped, not retried.
   */
  private writeRecentRequests(): Promise<void> {
    const allowed = this.allowedRequests;
    const denied = this.deniedRequests;
    const write = this.store.writeRecentRequests?.bind(this.store);
    if (allowed === null || denied === null || !write || (allowed.empty && denied.empty)) return Promise.resolve();
    const events: UsageEvent[] = [];
    this.stats.recentRequestsDropped += allowed.drain(events) + denied.drain(events);
    this.loggingRequests = (async () => {
      // In key order (stable: each key's stay in time order), so a slice touches neighbouring pages.
      const requests = this.recentRequestsOf(events).sort(byKeyId);
      for (let i = 0; i < requests.length; i += RECENT_SLICE) {
        const started = performance.now();
        const slice = requests.slice(i, i + RECENT_SLICE);
        try {
          await write(slice, this.recentRequestsKept);
        } catch (error) {
          this.stats.recentRequestsDropped += slice.length;
          this.onFlushError(error);
        }
        if (i + RECENT_SLICE < requests.length) await pauseAfter(started);
      }
    })().finally(() => {
      this.loggingRequests = null;
    });
    return this.loggingRequests;
  }

  /** The log entries of drained events: in time order, each key's newest `recentRequestsKept` only. */
  private recentRequestsOf(events: UsageEvent[]): RecentRequest[] {
    // Stable: requests of one millisecond keep the order they were recorded in (within each ring).
    events.sort((a, b) => a.at - b.at);
    const keep = this.recentRequestsKept;
    const perKey = new Map<string, number>();
    for (const event of events) perKey.set(event.keyId as string, (perKey.get(event.keyId as string) ?? 0) + 1);
    const requests: RecentRequest[] = [];
    for (const event of events) {
      const keyId = event.keyId as string;
      const left = perKey.get(keyId) as number;
      perKey.set(keyId, left - 1);
      if (left > keep) continue;
      requests.push({
        keyId,
        at: event.at,
        code: event.code,
        ip: event.ip ?? null,
        route: recentRequestRoute(event.method, event.route),
        missingScopes: event.missingScopes ? [...event.missingScopes] : [],
      });
    }
    return requests;
  }

  private async pruneIfDue(): Promise<void> {
    const now = this.now();
    if (this.retentionMs <= 0 || now - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = now;
    await this.store.pruneUsage(now - this.retentionMs);
  }
}
