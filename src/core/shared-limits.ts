import type { QuotaSpec, RateLimitSpec, SharedLimits } from "./model.js";

/** Shared limits in the API's spelling (docs/organizations.md): what the API answers, the audit trail records and the store keeps. */
export interface SharedLimitsJson {
  rate_limit: RateLimitSpec | null;
  concurrency: number | null;
  quota: QuotaSpec | null;
}

/** Null when nothing is limited: an owner with empty shared limits has none. */
export function sharedLimitsJson(limits: SharedLimits | null): SharedLimitsJson | null {
  if (!limits || (limits.rateLimit === null && limits.concurrency === null && limits.quota === null)) return null;
  return { rate_limit: limits.rateLimit, concurrency: limits.concurrency, quota: limits.quota };
}

export function sharedLimitsFromApi(json: Partial<SharedLimitsJson> | null): SharedLimits | null {
  if (!json) return null;
  const limits = { rateLimit: json.rate_limit ?? null, concurrency: json.concurrency ?? null, quota: json.quota ?? null };
  return sharedLimitsJson(limits) ? limits : null;
}
