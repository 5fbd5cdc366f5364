import ipaddr from "ipaddr.js";

/**
 * The failed-attempt throttle (docs/security.md, checks 7 and 9) as pure decisions: a fixed window per client
 * address. Every MALFORMED or NOT_FOUND answer counts one attempt; once `limit` attempts are
 * counted in the window, the address is blocked until the window ends. Memory and Redis apply
 * the same rule (the Lua script mirrors `countAttempt`).
 */
export interface FailedAttemptPolicy {
  /** Attempts allowed per window; the next one is refused. */
  limit: number;
  windowMs: number;
}

export interface AttemptWindow {
  count: number;
  /** When the window ends (ms since the epoch). */
  resetAt: number;
}

/** How long the address must wait (ms); 0 when it may try. */
export function blockedForMs(window: AttemptWindow | undefined, policy: FailedAttemptPolicy, now: number): number {
  if (!window || window.resetAt <= now || window.count < policy.limit) return 0;
  return window.resetAt - now;
}

/** The window after adding `delta` attempts (negative: a refund); an ended window starts afresh. */
export function countAttempt(window: AttemptWindow | undefined, policy: FailedAttemptPolicy, now: number, delta = 1): AttemptWindow {
  if (!window || window.resetAt <= now) return { count: Math.max(0, delta), resetAt: now + policy.windowMs };
  return { count: Math.max(0, window.count + delta), resetAt: window.resetAt };
}

/**
 * Merges what the shared counter (Redis) answered into this instance's view: the larger count
 * wins, so attempts made on other instances block here too.
 */
export function mergeSharedCount(local: AttemptWindow | undefined, shared: AttemptWindow, now: number): AttemptWindow {
  if (!local || local.resetAt <= now || shared.count >= local.count) return shared;
  return local;
}

/**
 * The address a client is counted under: IPv4-mapped IPv6 (`::ffff:1.2.3.4`, how Node reports
 * dual-stack peers) as IPv4, and IPv6 by its /64, since one host usually holds a whole /64 and
 * could otherwise step through addresses to dodge the count. Unparsable input counts as itself.
 * `ipv6Prefix` (1–128, default 64) sets the IPv6 grouping; the sign-in throttle makes it
 * configurable (docs/hardening.md).
 */
export function attemptAddress(ip: string, ipv6Prefix = 64): string {
  if (!ip.includes(":")) return ip;
  if (!ipaddr.IPv6.isValid(ip)) return ip;
  const address = ipaddr.IPv6.parse(ip);
  if (address.isIPv4MappedAddress()) return address.toIPv4Address().toString();
  const bits = Math.min(128, Math.max(1, Math.floor(ipv6Prefix)));
  const groups = Math.ceil(bits / 16);
  const head = address.parts.slice(0, groups).map((part, i) => {
    const kept = Math.min(16, bits - i * 16);
    return (part & (0xffff << (16 - kept)) & 0xffff).toString(16);
  });
  return `${head.join(":")}${groups < 8 ? "::" : ""}/${bits}`;
}
