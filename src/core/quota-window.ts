import type { QuotaSpec } from "./model.js";

/**
 * Which counter a quota spends from, how much that counter may hold, and when it resets.
 * Windows are named so that every instance and every store computes the same name.
 */
export interface QuotaWindow {
  /** `d:2026-11-23`, `m:2026-11`, `r:<index>` (refill windows) or `total`. */
  name: string;
  allowance: number;
  /** Epoch ms at which a fresh window starts; null when the uses never come back. */
  resetsAt: number | null;
}

const DAY_MS = 86_400_000;

/**
 * Periods reset at the UTC boundary. `{remaining}` without refill is a lifetime allowance.
 * With `refill: {amount, every_seconds}` time is cut into windows of `every_seconds` counted
 * from the Unix epoch; the window the key was created in allows `remaining`, each later one
 * `amount`.
 */
export function quotaWindow(spec: QuotaSpec, now: number, keyCreatedAt: number): QuotaWindow {
  if ("limit" in spec) {
    const date = new Date(now);
    if (spec.period === "day") {
      const start = Math.floor(now / DAY_MS) * DAY_MS;
      return { name: `d:${date.toISOString().slice(0, 10)}`, allowance: spec.limit, resetsAt: start + DAY_MS };
    }
    const resetsAt = Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1);
    return { name: `m:${date.toISOString().slice(0, 7)}`, allowance: spec.limit, resetsAt };
  }
  if (!spec.refill) return { name: "total", allowance: spec.remaining, resetsAt: null };
  const every = spec.refill.every_seconds * 1000;
  const index = Math.floor(now / every);
  const first = Math.floor(keyCreatedAt / every);
  return { name: `r:${index}`, allowance: index === first ? spec.remaining : spec.refill.amount, resetsAt: (index + 1) * every };
}

/** Seconds a client should wait when a quota is spent: to the reset, or a day when uses never come back. */
export function quotaRetryAfterSeconds(window: QuotaWindow, now: number): number {
  return window.resetsAt === null ? 86_400 : Math.max(1, Math.ceil((window.resetsAt - now) / 1000));
}
