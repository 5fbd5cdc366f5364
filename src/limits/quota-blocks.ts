import { blockSize } from "../core/quota-block.js";
import type { QuotaBlock, QuotaBlockRequest, QuotaCounter } from "../ports/limits.js";

/**
 * Quota blocks (docs/limits.md, "Quota blocks"): a QuotaCounter in front of the store's that
 * takes uses from the database a block at a time and spends them in memory, so a hot quota key
 * costs one conditional update per block instead of one per request.
 *
 * - **Never over-spent.** A block is taken with one conditional update (`used + n <= allowance`,
 *   `QuotaCounter.takeBlock`), so the store's count never passes the allowance, and a request is
 *   admitted only from uses this instance holds. Admitted uses, over every instance, are the
 *   store's count minus the uses instances still hold unspent: never more than the allowance.
 * - **Under-spend is bounded.** After every admitted spend an instance holds at most `maxBlock - 1`
 *   unspent uses per counter and window (a request that needs more than the block takes exactly
 *   what it needs). `close()` gives them back (a decrement, never below 0), and so does a counter
 *   left idle for `idleReturnMs`; an instance that dies without closing leaves them counted until
 *   the window ends: at most `maxBlock - 1` uses per counter, window and dead instance, and never
 *   more than 1/`share` of what remained when that block was taken.
 * - **Adaptive.** A counter starts with blocks of 1 (a cold key costs the same single conditional
 *   update as without blocks); a block used up within `targetMs` of its take doubles the next, up
 *   to `maxBlock`, and one that lasted `4 × targetMs` or more halves it. A block is never more than
 *   1/`share` of what remains, so a small quota (or the end of a large one) is spent one request
 *   at a time, exactly as without blocks.
 * - **One take at a time.** Spends of a counter that arrive while its block is being taken wait
 *   for that take; when the store refuses it, the spends that waited for it are refused with it.
 * - **Lifetime quotas** (`{remaining}` without refill, windows that never end) are spent one request
 *   at a time: a block lost with its instance would never come back.
 */
export interface BlockQuotaCounterOptions {
  /** The store's counter (SQLite, PostgreSQL or memory); `takeBlock` and `refund` are used when it has them. */
  store: QuotaCounter;
  /** The largest block, in uses (`KEYWARD_QUOTA_BLOCK_MAX`); 1 or less spends one request at a time. */
  maxBlock: number;
  /** A block is never more than 1/share of what remains in the window. Default 8. */
  share?: number;
  /** A block used up within this long after its take doubles the next. Default 1,000 ms. */
  targetMs?: number;
  /** Unspent uses of a counter not spent from for this long go back to the store. Default 2,000 ms. */
  idleReturnMs?: number;
  /** The clock (tests). */
  now?: () => number;
}

/** What a take or a return told the spends that waited for it. */
interface TakeOutcome {
  /** The `min` of a take the store refused; null when it was granted (or was a return). */
  refused: number | null;
  /** The allowance the take was for. */
  allowance: number;
}

/** What this instance holds of one counter's window. */
interface Holding {
  readonly lineageId: string;
  readonly window: string;
  readonly expiresAt: number;
  /** The allowance the held uses were taken under. */
  allowance: number;
  /** Uses taken from the store and not yet spent. */
  held: number;
  /** The size of the next block (before the share rule). */
  size: number;
  /** When the last block was taken; null before the first. */
  takenAt: number | null;
  lastUse: number;
  /** The store's count after the last take or return (what `spend` reports, less `held`). */
  storeUsed: number;
  /** The take or return in flight: every spend of this counter waits for it. */
  busy: Promise<TakeOutcome> | null;
}

/** Counts for tests, the bench and metrics. */
export interface BlockQuotaStats {
  /** Conditional updates that took uses (blocks, and single spends of size 1). */
  takes: number;
  /** Takes the store refused (the quota was spent). */
  refusedTakes: number;
  /** Decrements that gave unspent uses back (close, idle, a changed allowance). */
  returns: number;
  /** Uses given back by those decrements. */
  returnedUses: number;
  /** Uses that could not be given back (the store did not answer): counted until their window ends. */
  lostUses: number;
}

export class BlockQuotaCounter implements QuotaCounter {
  readonly stats: BlockQuotaStats = { takes: 0, refusedTakes: 0, returns: 0, returnedUses: 0, lostUses: 0 };
  private readonly store: QuotaCounter;
  private readonly maxBlock: number;
  private readonly share: number;
  private readonly targetMs: number;
  private readonly idleReturnMs: number;
  private readonly now: () => number;
  private readonly holdings = new Map<string, Holding>();
  private readonly sweeper: ReturnType<typeof setInterval>;
  private closed = false;

  constructor(options: BlockQuotaCounterOptions) {
    this.store = options.store;
    this.maxBlock = Math.max(1, Math.floor(options.maxBlock));
    this.share = Math.max(1, options.share ?? 8);
    this.targetMs = options.targetMs ?? 1_000;
    this.idleReturnMs = options.idleReturnMs ?? 2_000;
    this.now = options.now ?? Date.now;
    this.sweeper = setInterval(() => this.returnIdle(), Math.max(50, Math.floor(this.idleReturnMs / 2)));
    this.sweeper.unref?.();
  }

  async spend(lineageId: string, window: string, allowance: number, cost: number, expiresAt: number | null): Promise<number | null> {
    if (expiresAt === null || this.maxBlock <= 1) return this.store.spend(lineageId, window, allowance, cost, expiresAt);
    const id = `${lineageId} ${window}`;
    // The outcome of the take this spend waited for, if any: a refused one refuses it too.
    let waited: TakeOutcome | null = null;
    for (;;) {
      let holding = this.holdings.get(id);
      // Served from the block even while the next one is being taken.
      if (holding && holding.allowance === allowance && holding.held >= cost) {
        holding.held -= cost;
        holding.lastUse = this.now();
        return Math.max(0, holding.storeUsed - holding.held);
      }
      // After close() every spend is one conditional update of its own, as without blocks.
      if (this.closed) return this.store.spend(lineageId, window, allowance, cost, expiresAt);
      if (!holding) {
        holding = {
          lineageId,
          window,
          expiresAt,
          allowance,
          held: 0,
          size: 1,
          takenAt: null,
          lastUse: this.now(),
          storeUsed: 0,
          busy: null,
        };
        this.holdings.set(id, holding);
      }
      holding.lastUse = this.now();
      if (holding.busy) {
        waited = await holding.busy;
        continue;
      }
      if (holding.allowance !== allowance) {
        // The quota was changed (PATCH): what was taken under the old allowance goes back first,
        // and blocks are taken under the new one from then on.
        waited = null;
        await this.giveBack(holding, allowance);
        continue;
      }
      const need = cost - holding.held;
      if (waited && waited.refused !== null && waited.allowance === allowance && need >= waited.refused) return null;
      const outcome = await this.take(holding, need);
      if (outcome.refused !== null) return null;
      waited = null;
    }
  }

  /**
   * The store's count less what this instance holds unspent: the store's count includes every
   * instance's held blocks, so on several instances this is at least what was admitted, never
   * less (docs/limits.md, "Quota blocks").
   */
  async used(lineageId: string, window: string): Promise<number> {
    const stored = await this.store.used(lineageId, window);
    return Math.max(0, stored - (this.holdings.get(`${lineageId} ${window}`)?.held ?? 0));
  }

  /**
   * Gives back uses a request spent (never below zero). When this instance holds a block of the
   * window and the uses fit in it without passing `maxBlock - 1` held, they go back into the
   * block (no write); otherwise to the store.
   */
  async refund(lineageId: string, window: string, cost: number): Promise<number> {
    const holding = this.holdings.get(`${lineageId} ${window}`);
    if (holding && !holding.busy && !this.closed && holding.held + cost <= this.maxBlock - 1) {
      holding.held += cost;
      return Math.max(0, holding.storeUsed - holding.held);
    }
    if (!this.store.refund) throw new Error("this quota store cannot give uses back");
    return Number(await this.store.refund(lineageId, window, cost));
  }

  /** Passes a block take through (a block counter in front of another takes from the one behind). */
  async takeBlock(
    lineageId: string,
    window: string,
    allowance: number,
    block: QuotaBlockRequest,
    expiresAt: number | null,
  ): Promise<QuotaBlock | null> {
    return this.takeFromStore(lineageId, window, allowance, block, expiresAt, 0);
  }

  /** Uses this instance holds unspent, in all (tests, the bench). */
  get heldUses(): number {
    let held = 0;
    for (const holding of this.holdings.values()) held += holding.held;
    return held;
  }

  /**
   * Gives back what every counter not spent from for `idleReturnMs` holds, and forgets counters
   * whose window has ended (their uses count for a window that is over). Runs on a timer.
   */
  returnIdle(): void {
    const now = this.now();
    for (const [id, holding] of this.holdings) {
      if (holding.busy) continue;
      if (holding.expiresAt <= now) {
        this.holdings.delete(id);
        continue;
      }
      if (now - holding.lastUse < this.idleReturnMs) continue;
      if (holding.held === 0) {
        this.holdings.delete(id);
        continue;
      }
      // Forgotten only once the return is done: a spend meanwhile waits for it.
      void this.giveBack(holding, holding.allowance).then(() => {
        if (this.holdings.get(id) === holding && !holding.busy && holding.held === 0) this.holdings.delete(id);
      });
    }
  }

  /** Gives every unspent use back to the store, then closes the store's counter. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    await Promise.allSettled([...this.holdings.values()].map((holding) => holding.busy));
    const now = this.now();
    await Promise.all(
      [...this.holdings.values()]
        .filter((holding) => holding.held > 0 && holding.expiresAt > now)
        .map((h) => this.giveBack(h, h.allowance)),
    );
    this.holdings.clear();
    await this.store.close?.();
  }

  /** Takes a block of at least `need` uses; every spend of the counter waits for it. */
  private take(holding: Holding, need: number): Promise<TakeOutcome> {
    const now = this.now();
    if (holding.takenAt !== null) {
      const lasted = now - holding.takenAt;
      if (lasted < this.targetMs) holding.size = Math.min(this.maxBlock, holding.size * 2);
      else if (lasted >= 4 * this.targetMs) holding.size = Math.max(1, Math.floor(holding.size / 2));
    }
    holding.takenAt = now;
    const allowance = holding.allowance;
    const request: QuotaBlockRequest = { min: need, max: Math.max(need, holding.size), share: this.share };
    const taking = (async (): Promise<TakeOutcome> => {
      try {
        const block = await this.takeFromStore(holding.lineageId, holding.window, allowance, request, holding.expiresAt, holding.storeUsed);
        this.stats.takes++;
        if (!block) {
          this.stats.refusedTakes++;
          return { refused: need, allowance };
        }
        holding.held += block.taken;
        holding.storeUsed = block.used;
        return { refused: null, allowance };
      } finally {
        holding.busy = null;
      }
    })();
    holding.busy = taking;
    return taking;
  }

  /**
   * One conditional update: a plain spend when the block is a single request's need, else the
   * store's `takeBlock`. A store without `takeBlock` gets a spend sized from the count it last
   * answered (stale, so it may be refused: then the need alone is tried).
   */
  private async takeFromStore(
    lineageId: string,
    window: string,
    allowance: number,
    request: QuotaBlockRequest,
    expiresAt: number | null,
    lastUsed: number,
  ): Promise<QuotaBlock | null> {
    if (request.min > allowance) return null;
    if (request.max <= request.min) {
      const used = await this.store.spend(lineageId, window, allowance, request.min, expiresAt);
      return used === null ? null : { taken: request.min, used };
    }
    if (this.store.takeBlock) return this.store.takeBlock(lineageId, window, allowance, request, expiresAt);
    const size = Math.min(blockSize(allowance, lastUsed, request), allowance);
    const used = await this.store.spend(lineageId, window, allowance, size, expiresAt);
    if (used !== null) return { taken: size, used };
    if (size === request.min) return null;
    const single = await this.store.spend(lineageId, window, allowance, request.min, expiresAt);
    return single === null ? null : { taken: request.min, used: single };
  }

  /** Gives the unspent uses back (a decrement, never below 0); a failed return leaves them counted until the window ends. */
  private giveBack(holding: Holding, nextAllowance: number): Promise<TakeOutcome> {
    const rest = holding.held;
    const allowance = holding.allowance;
    holding.held = 0;
    holding.allowance = nextAllowance;
    const returning = (async (): Promise<TakeOutcome> => {
      try {
        if (rest > 0) {
          if (!this.store.refund) throw new Error("this quota store cannot give uses back");
          holding.storeUsed = Number(await this.store.refund(holding.lineageId, holding.window, rest));
          this.stats.returns++;
          this.stats.returnedUses += rest;
        }
      } catch {
        this.stats.lostUses += rest;
      } finally {
        holding.busy = null;
      }
      return { refused: null, allowance };
    })();
    holding.busy = returning;
    return returning;
  }
}
