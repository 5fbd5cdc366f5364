// Formatting: times, key states and limits in the words people use.
import { h } from "./dom.js";

const DATE_TIME = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const NUMBER = new Intl.NumberFormat();

export const num = (n) => NUMBER.format(n);

/** A local date and time ("3 Dec 2026, 09:47"), or an em dash. */
export const fmtTime = (iso) => (iso ? DATE_TIME.format(new Date(iso)) : "—");

/** A <time> element: the local time shown, the exact UTC instant in `datetime` and `title`. */
export const timeEl = (iso, text = fmtTime(iso)) => (iso ? h("time", { datetime: iso, title: iso }, text) : "—");

const UNITS = [
  ["year", 365 * 86_400_000],
  ["month", 30 * 86_400_000],
  ["week", 7 * 86_400_000],
  ["day", 86_400_000],
  ["hour", 3_600_000],
  ["minute", 60_000],
];

/** "in 3 days", "2 hours ago", "now". */
export function relative(iso, now = Date.now()) {
  const delta = new Date(iso).getTime() - now;
  for (const [unit, ms] of UNITS) {
    if (Math.abs(delta) >= ms) return RELATIVE.format(Math.round(delta / ms), unit);
  }
  return RELATIVE.format(Math.round(delta / 1000), "second");
}

export const DAY_MS = 86_400_000;
/** A key this close to its expiry is marked. */
export const EXPIRING_SOON_MS = 7 * DAY_MS;

/** The expiry cell: "never", "in 3 days" (marked when close), "expired 2 days ago". */
export function expiryEl(key, now = Date.now()) {
  if (!key.expires_at) return h("span", { class: "muted" }, "never");
  const at = new Date(key.expires_at).getTime();
  if (at <= now)
    return h(
      "time",
      { datetime: key.expires_at, title: fmtTime(key.expires_at), class: "warn-text" },
      `expired ${relative(key.expires_at, now)}`,
    );
  const soon = at - now <= EXPIRING_SOON_MS;
  return h(
    "time",
    { datetime: key.expires_at, title: fmtTime(key.expires_at), class: soon ? "warn-text" : null },
    soon ? `expires ${relative(key.expires_at, now)}` : relative(key.expires_at, now),
  );
}

export const expiringSoon = (key, now = Date.now()) =>
  key.status === "active" && key.expires_at !== null && new Date(key.expires_at).getTime() - now <= EXPIRING_SOON_MS;

/** The management scopes (docs/api.md): a key holding one can manage keys, users or the audit log. */
export const MANAGEMENT_SCOPES = ["admin", "keys:read", "keys:write", "keys:verify", "users:write", "audit:read", "portal:create"];

/** Why a key (or the settings of one about to be created) is powerful: [] when it is not. */
export function powerReasons(scopes, expiresAt) {
  const reasons = [];
  if (scopes.includes("*")) reasons.push("every scope (*)");
  const management = scopes.filter(
    (s) => MANAGEMENT_SCOPES.includes(s) || (s.endsWith(":*") && MANAGEMENT_SCOPES.some((m) => m.startsWith(s.slice(0, -1)))),
  );
  if (management.length > 0) reasons.push(`management scope${management.length > 1 ? "s" : ""} ${management.join(", ")}`);
  if (!expiresAt) reasons.push("no expiry");
  return reasons;
}

/** Management scopes or `*` make a key powerful; no expiry alone is marked separately. */
export const isPowerful = (key) => powerReasons(key.scopes, "x").length > 0;

/**
 * What state a key is in, for people: the stored status plus what the list alone does not say.
 * `context`: {requests: Map sandbox key id → latest request, predecessor: key|null}.
 */
export function keyState(key, context = {}, now = Date.now()) {
  const states = [];
  const graceLeft = key.replaced_by && key.grace_ends_at && new Date(key.grace_ends_at).getTime() > now && key.status === "active";
  if (graceLeft) states.push({ tone: "warn", text: `rotating — old key works until ${fmtTime(key.grace_ends_at)}` });
  else if (key.replaced_by && key.status !== "revoked") states.push({ tone: "muted", text: "replaced" });
  else states.push({ tone: key.status, text: key.status.replace("_", " ") });
  const predecessor = context.predecessor;
  if (predecessor && predecessor.status === "active" && predecessor.grace_ends_at && new Date(predecessor.grace_ends_at).getTime() > now)
    states.push({ tone: "warn", text: `rotating — previous key works until ${fmtTime(predecessor.grace_ends_at)}` });
  const request = context.requests?.get(key.id);
  if (request?.status === "pending") states.push({ tone: "pending", text: "request pending" });
  if (request?.status === "approved" && !request.claimed_at) states.push({ tone: "pending", text: "production key awaiting pickup" });
  if (expiringSoon(key, now)) states.push({ tone: "warn", text: "expiring soon" });
  if (isPowerful(key)) states.push({ tone: "power", text: "powerful" });
  // Imported in a declared legacy format (docs/migrating.md): rotating it issues a Keyward key.
  if (key.format?.startsWith("legacy:")) states.push({ tone: "muted", text: "legacy" });
  return states;
}

export const badge = (tone, text) => h("span", { class: `badge ${tone}` }, text);
export const stateBadges = (states) => states.map((s, i) => [i > 0 ? " " : "", badge(s.tone, s.text)]);

export function rateText(rate) {
  if (!rate) return "none";
  const per =
    rate.per_seconds === 1
      ? "second"
      : rate.per_seconds === 60
        ? "minute"
        : rate.per_seconds === 3600
          ? "hour"
          : `${num(rate.per_seconds)} s`;
  return `${num(rate.requests)} per ${per}${rate.burst ? ` (burst ${num(rate.burst)})` : ""}`;
}

export function quotaText(quota) {
  if (!quota) return "none";
  if ("limit" in quota) return `${num(quota.limit)} per ${quota.period}`;
  const refill = quota.refill ? `, +${num(quota.refill.amount)} every ${durationText(quota.refill.every_seconds)}` : "";
  return `${num(quota.remaining)} uses left${refill}`;
}

export function durationText(seconds) {
  if (seconds % 86_400 === 0) return `${seconds / 86_400} day${seconds === 86_400 ? "" : "s"}`;
  if (seconds % 3600 === 0) return `${seconds / 3600} hour${seconds === 3600 ? "" : "s"}`;
  if (seconds % 60 === 0) return `${seconds / 60} minute${seconds === 60 ? "" : "s"}`;
  return `${seconds} s`;
}

/** The limits of a key (or of what a request asks for), as [label, text] pairs. */
export const limitPairs = (key) => [
  ["Rate limit", rateText(key.rate_limit)],
  ["Concurrency", key.concurrency ? `${num(key.concurrency)} in flight` : "none"],
  ["Quota", quotaText(key.quota)],
  ["Allowed addresses", key.allowed_cidrs.length > 0 ? key.allowed_cidrs.join(", ") : "any"],
];

/** What a key request asks for, in one line: scopes, then the limits that come with them. */
export function askedSummary(asked) {
  if (!asked) return "—";
  const parts = [asked.scopes.length > 0 ? asked.scopes.join(", ") : "no scopes"];
  if (asked.rate_limit) parts.push(rateText(asked.rate_limit));
  if (asked.concurrency) parts.push(`${asked.concurrency} in flight`);
  if (asked.quota) parts.push(quotaText(asked.quota));
  if (asked.allowed_cidrs.length > 0) parts.push(asked.allowed_cidrs.join(" "));
  const lifetime = asked.expires_after_approval_seconds;
  if (lifetime) parts.push(`expires ${plural(Math.max(1, Math.round(lifetime / 86_400)), "day")} after approval`);
  return parts.join(" · ");
}

export const plural = (n, one, many = `${one}s`) => `${num(n)} ${n === 1 ? one : many}`;
