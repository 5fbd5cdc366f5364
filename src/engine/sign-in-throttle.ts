import { LRUCache } from "lru-cache";
import { type AttemptWindow, attemptAddress, blockedForMs, countAttempt, type FailedAttemptPolicy } from "../core/failed-attempts.js";

export interface SignInThrottleOptions {
  /** Failures per account and address in a window; the next attempt waits for the window's end. Default 5. */
  perAccountAddress?: number;
  /** Failures per address (any account) in a window. Default 20. */
  perAddress?: number;
  /** Failures per account over every address in a window before the slowdown starts. Default 10. */
  perAccount?: number;
  /** Default 15 minutes; also the longest slowdown step. */
  windowMs?: number;
  /** IPv6 clients are counted by this prefix length (IPv4-mapped IPv6 as IPv4). Default 64. */
  ipv6Prefix?: number;
  /** The first slowdown step; each further failure doubles it, up to `windowMs`. Default 30 s. */
  slowdownBaseMs?: number;
  /** Counters kept at most per table (LRU): memory stays bounded whatever an attacker sends. Default 50,000. */
  maxEntries?: number;
}

/** One account's failures over every address. */
interface AccountRun {
  failures: number;
  lastAt: number;
  /** While `now` is before this, attempts for the account wait (except from its good addresses). */
  lockedUntil: number;
}

/** How long an attempt must wait (ms): `local` for its address, `account` for the account-wide slowdown. */
export interface ThrottleState {
  local: number;
  account: number;
}

/**
 * The dashboard's sign-in throttle (docs/hardening.md), in memory, on the engine's clock:
 *
 * - per account and address, and per address: fixed windows (the failed-attempt rule of
 *   core/failed-attempts.ts), addresses grouped as the key throttle groups them
 *   (`attemptAddress`: IPv4-mapped IPv6 as IPv4, IPv6 by a prefix);
 * - per account over every address: after `perAccount` failures each further failure locks the
 *   account for a step that doubles (30 s, 1 min, 2 min, … up to the window). Attempts refused
 *   during a step are not checked and not counted, so a step always ends; the caller lets the
 *   account's own recent good addresses through regardless (no lockout an attacker controls).
 */
export class SignInThrottle {
  readonly windowMs: number;
  readonly ipv6Prefix: number;
  private readonly accountAddress: FailedAttemptPolicy;
  private readonly address: FailedAttemptPolicy;
  private readonly perAccount: number;
  private readonly slowdownBaseMs: number;
  private readonly windows: LRUCache<string, AttemptWindow>;
  private readonly accounts: LRUCache<string, AccountRun>;

  constructor(options: SignInThrottleOptions = {}) {
    this.windowMs = options.windowMs ?? 15 * 60_000;
    this.ipv6Prefix = options.ipv6Prefix ?? 64;
    this.accountAddress = { limit: options.perAccountAddress ?? 5, windowMs: this.windowMs };
    this.address = { limit: options.perAddress ?? 20, windowMs: this.windowMs };
    this.perAccount = options.perAccount ?? 10;
    this.slowdownBaseMs = options.slowdownBaseMs ?? 30_000;
    const max = options.maxEntries ?? 50_000;
    this.windows = new LRUCache({ max });
    this.accounts = new LRUCache({ max });
  }

  /** The address an attempt is counted under. */
  bucket(ip: string | undefined): string {
    return ip ? attemptAddress(ip, this.ipv6Prefix) : "";
  }

  private keys(account: string, ip: string | undefined): [string, string] {
    const bucket = this.bucket(ip);
    return [`a:${account}|${bucket}`, `i:${bucket}`];
  }

  /** How long an attempt for `account` from `ip` must wait; zeros when it may try. */
  state(account: string, ip: string | undefined, now: number): ThrottleState {
    const [accountKey, addressKey] = this.keys(account, ip);
    const local = Math.max(
      blockedForMs(this.windows.get(accountKey), this.accountAddress, now),
      blockedForMs(this.windows.get(addressKey), this.address, now),
    );
    const run = this.accounts.get(account);
    return { local, account: run && run.lockedUntil > now ? run.lockedUntil - now : 0 };
  }

  /** Counts a checked attempt that failed. */
  fail(account: string, ip: string | undefined, now: number): void {
    const [accountKey, addressKey] = this.keys(account, ip);
    this.windows.set(accountKey, countAttempt(this.windows.get(accountKey), this.accountAddress, now));
    this.windows.set(addressKey, countAttempt(this.windows.get(addressKey), this.address, now));
    const previous = this.accounts.get(account);
    // A run ends after a quiet window (no failure and no step in force).
    const live = previous && now - Math.max(previous.lastAt, previous.lockedUntil) < this.windowMs ? previous : undefined;
    const failures = (live?.failures ?? 0) + 1;
    const over = failures - this.perAccount;
    const step = over >= 0 ? Math.min(this.windowMs, this.slowdownBaseMs * 2 ** Math.min(over, 30)) : 0;
    this.accounts.set(account, { failures, lastAt: now, lockedUntil: step > 0 ? now + step : 0 });
  }

  /** A right password: the account+address count starts afresh (the account-wide run decays by itself). */
  succeed(account: string, ip: string | undefined): void {
    this.windows.delete(this.keys(account, ip)[0]);
  }
}
