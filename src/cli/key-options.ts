import { InvalidArgumentError } from "commander";
import { isValidCidr } from "../core/cidr.js";
import { KeywardError } from "../core/errors.js";
import type { QuotaSpec, RateLimitSpec } from "../core/model.js";
import { parseTimestamp } from "../core/timestamps.js";
import { parseDuration } from "./durations.js";

/**
 * The key settings of `keyward keys create` and `keys update`, parsed into the fields the HTTP API
 * takes (docs/api.md). A bad value throws commander's InvalidArgumentError: the CLI prints it with
 * the flag's name and exits 2, before the store is opened.
 */

/**
 * What a parser's null (`none`: remove the setting) becomes in commander, which turns an option
 * value of null into an empty string; `removable` wraps a parser for it, `orNull` unwraps.
 */
export const NONE: unique symbol = Symbol("none");
export type Removable<T> = T | typeof NONE;
export const removable =
  <T>(parse: (value: string) => T | null) =>
  (value: string): Removable<T> =>
    parse(value) ?? NONE;
export const orNull = <T>(value: Removable<T> | undefined): T | null | undefined => (value === NONE ? null : value);

/** `none` (or `never` for an expiry): remove the setting (`keys update`). */
const isNone = (value: string) => /^(none|never)$/i.test(value.trim());

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };
const UNIT_NAMES: Record<string, string> = {
  s: "s",
  sec: "s",
  second: "s",
  m: "m",
  min: "m",
  minute: "m",
  h: "h",
  hour: "h",
  d: "d",
  day: "d",
};

function integerIn(text: string, min: number, max: number, what: string): number {
  const n = /^\d{1,16}$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${what} must be an integer from ${min} to ${max}`);
  return n;
}

/**
 * `5/s`, `100/m`, `1000/h`, `50000/d`, or a window of several units (`100/10s`, `300/5m`):
 * `rate_limit` `{requests, per_seconds}` (the window at most a day). `none` removes it.
 */
export function parseRateLimit(value: string): RateLimitSpec | null {
  if (isNone(value)) return null;
  const match = /^(\d+)\s*\/\s*(\d*)\s*([a-z]+)$/i.exec(value.trim());
  const unit = match ? UNIT_NAMES[(match[3] as string).toLowerCase()] : undefined;
  if (!match || !unit)
    throw new InvalidArgumentError("use <requests>/<s|m|h|d>, e.g. 5/s, 100/m, 1000/h, or a window such as 300/5m; none removes it");
  const requests = integerIn(match[1] as string, 1, 1_000_000, "requests");
  const count = match[2] ? integerIn(match[2], 1, 86_400, "the window") : 1;
  const perSeconds = count * (UNIT_SECONDS[unit] as number);
  if (perSeconds > 86_400) throw new InvalidArgumentError("the window is at most a day (86400 s)");
  return { requests, per_seconds: perSeconds };
}

/** `--burst <n>`: the bucket size of the rate limit (default its requests). */
export const parseBurst = (value: string): number => integerIn(value.trim(), 1, 1_000_000, "--burst");

/** `--concurrency <n>`: requests in flight at once, 1 to 10000; `none` removes it. */
export function parseConcurrency(value: string): number | null {
  if (isNone(value)) return null;
  return integerIn(value.trim(), 1, 10_000, "--concurrency");
}

/**
 * The two quota shapes of the API: `<n>/day` or `<n>/month` (`{limit, period}`, a calendar
 * window in UTC), or `<n>` alone (`{remaining}`: credits, spent until none is left, refilled with
 * `--quota-refill`). `none` removes it.
 */
export function parseQuota(value: string): QuotaSpec | null {
  if (isNone(value)) return null;
  const text = value.trim();
  const periodic = /^(\d+)\s*\/\s*(day|month)$/i.exec(text);
  if (periodic)
    return {
      limit: integerIn(periodic[1] as string, 1, 1_000_000_000_000, "the quota"),
      period: (periodic[2] as string).toLowerCase() as "day" | "month",
    };
  if (/^\d+$/.test(text)) return { remaining: integerIn(text, 0, 1_000_000_000_000, "the credits") };
  throw new InvalidArgumentError("use <n>/day, <n>/month, or <n> alone for credits (with --quota-refill <n>/<duration>); none removes it");
}

/** `--quota-refill 100/1h`: credits added every duration (at most a year) to a `<n>` quota. */
export function parseQuotaRefill(value: string): { amount: number; every_seconds: number } {
  const match = /^(\d+)\s*\/\s*(\d*)([smhdw])$/.exec(value.trim());
  const ms = match ? parseDuration(`${match[2] || "1"}${match[3]}`) : null;
  if (!match || ms === null) throw new InvalidArgumentError("use <amount>/<duration>, e.g. 100/1h or 1000/30d");
  const everySeconds = ms / 1000;
  if (everySeconds > 31_536_000) throw new InvalidArgumentError("the refill period is at most a year");
  return { amount: integerIn(match[1] as string, 1, 1_000_000_000, "the refill amount"), every_seconds: everySeconds };
}

/** Repeatable `--cidr`: each an IPv4 or IPv6 address or CIDR, or `none` (see `cidrsOf`). */
export function collectCidr(value: string, previous: string[] | undefined): string[] {
  const cidr = value.trim();
  if (!isNone(cidr) && !isValidCidr(cidr)) throw new InvalidArgumentError(`${cidr} is not an IPv4 or IPv6 address or CIDR`);
  return [...(previous ?? []), isNone(cidr) ? "none" : cidr];
}

/** The `allowed_cidrs` of the `--cidr` flags: undefined when none is given; `none`, alone, clears the list. */
export function cidrsOf(values: string[] | undefined): string[] | undefined {
  if (values === undefined) return undefined;
  if (!values.includes("none")) return values;
  if (values.length > 1) throw new KeywardError("VALIDATION_FAILED", "--cidr none clears the list: give it alone");
  return [];
}

/** Repeatable `--metadata key=value`: string values; a key given twice is refused. */
export function collectMetadata(value: string, previous: Record<string, string> | undefined): Record<string, string> {
  const eq = value.indexOf("=");
  const name = eq < 0 ? "" : value.slice(0, eq).trim();
  if (!name) throw new InvalidArgumentError("use key=value");
  if (name.length > 64) throw new InvalidArgumentError(`metadata keys are at most 64 characters: ${name.slice(0, 20)}…`);
  if (previous && Object.hasOwn(previous, name)) throw new InvalidArgumentError(`${name} is given twice`);
  return { ...previous, [name]: value.slice(eq + 1) };
}

/** `--metadata-json '{"team": "payments"}'`: any JSON object (numbers, lists and nesting too). */
export function parseMetadataJson(value: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new InvalidArgumentError("not valid JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new InvalidArgumentError("must be a JSON object");
  return parsed as Record<string, unknown>;
}

/** `--expires-in 30d` (s, m, h, d, w): milliseconds from now; `never` removes the expiry. */
export function parseExpiresIn(value: string): number | null {
  if (isNone(value)) return null;
  const ms = parseDuration(value);
  if (ms === null || ms === 0) throw new InvalidArgumentError("use a duration such as 30d, 12h, 15m, 90s or 2w; never removes the expiry");
  return ms;
}

/** `--expires-at 2027-01-31T00:00:00Z`: an RFC 3339 time; `never` removes the expiry. */
export function parseExpiresAt(value: string): number | null {
  if (isNone(value)) return null;
  const at = parseTimestamp(value.trim());
  if (at === null) throw new InvalidArgumentError("use an RFC 3339 time such as 2027-01-31T00:00:00Z; never removes the expiry");
  return at;
}
