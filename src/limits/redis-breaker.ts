/**
 * A circuit breaker for calls to Redis (docs/limits.md, "Backends and failure"): after a call
 * fails or times out, calls skip Redis for `openMs` and take the fallback at once, so a hung
 * Redis costs one timeout per period rather than one per request; then a single call probes it,
 * and its success lets every call through again.
 */
export class RedisBreaker {
  private openUntil = 0;
  private probeStartedAt: number | null = null;

  constructor(
    private readonly openMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** True while no failure is outstanding: every call may go to Redis (no probe pending). */
  get closed(): boolean {
    return this.openUntil === 0;
  }

  /** True while calls skip Redis (a failure was seen less than `openMs` ago, or a probe is out). */
  get open(): boolean {
    return this.openUntil !== 0 && !this.mayProbe(this.now());
  }

  /**
   * Whether a call may go to Redis now. After the open period the first caller becomes the probe
   * and the others keep skipping until it reports; a probe that never reports (a client without
   * a time limit) is replaced after another period.
   */
  enter(): boolean {
    if (this.openUntil === 0) return true;
    const now = this.now();
    if (!this.mayProbe(now)) return false;
    this.probeStartedAt = now;
    return true;
  }

  /** A call Redis answered: every call goes to Redis again. */
  succeeded(): void {
    this.openUntil = 0;
    this.probeStartedAt = null;
  }

  /** A call failed or timed out: skip Redis for the next `openMs`. */
  failed(): void {
    this.openUntil = this.now() + this.openMs;
    this.probeStartedAt = null;
  }

  private mayProbe(now: number): boolean {
    if (now < this.openUntil) return false;
    return this.probeStartedAt === null || now - this.probeStartedAt >= this.openMs;
  }
}
