/** Every verification ends in exactly one of these (docs/errors.md), checked in this order. */
export const OUTCOME_CODES = [
  "VALID",
  "MISSING",
  "MALFORMED",
  "NOT_FOUND",
  "DISABLED",
  "REVOKED",
  "EXPIRED",
  "LEGACY_KEY_RETIRED",
  "ENVIRONMENT_MISMATCH",
  "IP_NOT_ALLOWED",
  "INSUFFICIENT_SCOPE",
  "RATE_LIMITED",
  "CONCURRENCY_LIMITED",
  "QUOTA_EXCEEDED",
] as const;

export type OutcomeCode = (typeof OUTCOME_CODES)[number];
export type DenialCode = Exclude<OutcomeCode, "VALID">;

/** The one table mapping outcomes to HTTP statuses at a protected route. */
export const OUTCOME_HTTP_STATUS = {
  VALID: 200,
  MISSING: 401,
  MALFORMED: 401,
  NOT_FOUND: 401,
  DISABLED: 401,
  REVOKED: 401,
  EXPIRED: 401,
  LEGACY_KEY_RETIRED: 401,
  ENVIRONMENT_MISMATCH: 403,
  IP_NOT_ALLOWED: 403,
  INSUFFICIENT_SCOPE: 403,
  RATE_LIMITED: 429,
  CONCURRENCY_LIMITED: 429,
  QUOTA_EXCEEDED: 429,
} as const satisfies Record<OutcomeCode, number>;
