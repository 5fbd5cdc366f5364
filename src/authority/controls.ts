import { parseCidr } from "../core/cidr.js";
import type { KeyRecord, QuotaSpec, RateLimitSpec } from "../core/model.js";
import { SNAKE } from "../engine/audit.js";

/** The controls on a key that limit its use: a member may tighten them, never loosen one an admin set (docs/authority.md). */
export type ControlField = "enabled" | "expiresAt" | "rateLimit" | "concurrency" | "quota" | "allowedCidrs";

export type KeyControls = Pick<KeyRecord, ControlField>;

export const CONTROL_FIELDS: readonly ControlField[] = ["enabled", "expiresAt", "rateLimit", "concurrency", "quota", "allowedCidrs"];

/** The API's name of each control, for messages and audit diffs (the audit trail's own names). */
export const CONTROL_NAMES: Record<ControlField, string> = SNAKE;

const burstOf = (limit: RateLimitSpec) => limit.burst ?? limit.requests;

/** More requests a second, or a larger burst, or no limit at all. */
function loosensRateLimit(before: RateLimitSpec | null, after: RateLimitSpec | null): boolean {
  if (before === null) return false;
  if (after === null) return true;
  return after.requests * before.per_seconds > before.requests * after.per_seconds || burstOf(after) > burstOf(before);
}

function loosensConcurrency(before: number | null, after: number | null): boolean {
  if (before === null) return false;
  return after === null || after > before;
}

/**
 * A quota is loosened when it allows more: no quota, a larger limit for the same period, more
 * remaining uses, or a faster refill. A change of kind or period counts as loosening (the two
 * are not comparable), so only a quota of the same shape can be tightened.
 */
function loosensQuota(before: QuotaSpec | null, after: QuotaSpec | null): boolean {
  if (before === null) return false;
  if (after === null) return true;
  if ("limit" in before) return !("limit" in after) || after.period !== before.period || after.limit > before.limit;
  if (!("remaining" in after)) return true;
  if (after.remaining > before.remaining) return true;
  if (!after.refill) return false;
  if (!before.refill) return true;
  return after.refill.amount * before.refill.every_seconds > before.refill.amount * after.refill.every_seconds;
}

/** Inside: every address of `inner` lies in `outer`. */
function cidrWithin(inner: string, outer: string): boolean {
  const a = parseCidr(inner);
  const b = parseCidr(outer);
  if (!a || !b || a[0].kind() !== b[0].kind() || a[1] < b[1]) return false;
  return a[0].match(b as never);
}

/** An empty list allows every address; otherwise every new range must lie inside an old one. */
function loosensCidrs(before: readonly string[], after: readonly string[]): boolean {
  if (before.length === 0) return false;
  if (after.length === 0) return true;
  return after.some((range) => !before.some((old) => cidrWithin(range, old)));
}

/** Which controls `after` loosens compared with `before` (each one a right restored or widened). */
export function loosenedControls(before: KeyControls, after: KeyControls): ControlField[] {
  const loosened: ControlField[] = [];
  if (!before.enabled && after.enabled) loosened.push("enabled");
  if (before.expiresAt !== null && (after.expiresAt === null || after.expiresAt > before.expiresAt)) loosened.push("expiresAt");
  if (loosensRateLimit(before.rateLimit, after.rateLimit)) loosened.push("rateLimit");
  if (loosensConcurrency(before.concurrency, after.concurrency)) loosened.push("concurrency");
  if (loosensQuota(before.quota, after.quota)) loosened.push("quota");
  if (loosensCidrs(before.allowedCidrs, after.allowedCidrs)) loosened.push("allowedCidrs");
  return loosened;
}
