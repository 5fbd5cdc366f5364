import { type DenialCode, OUTCOME_HTTP_STATUS } from "./outcomes.js";

interface ErrorDefinition {
  status: number;
  title: string;
  /** How to solve it: the text docs/errors.md must carry (a test keeps the two in step). */
  solve: string;
}

const denial = (title: string, solve: string, code: DenialCode): ErrorDefinition => ({
  status: OUTCOME_HTTP_STATUS[code],
  title,
  solve,
});

/**
 * The one registry of error codes Keyward answers with. Outcome codes come first (their status
 * from OUTCOME_HTTP_STATUS); then request and management errors.
 */
export const ERROR_REGISTRY = {
  MISSING: denial(
    "API key required",
    "Send the key in `Authorization: ApiKey <key>`, `Authorization: Bearer <key>`, `X-API-Key` or HTTP Basic.",
    "MISSING",
  ),
  MALFORMED: denial(
    "Malformed API key",
    "The credential is not a key of this deployment: check for a typo, truncation, a foreign prefix or a wrong header scheme.",
    "MALFORMED",
  ),
  NOT_FOUND: denial("Unknown API key", "The key is well-formed but unknown or deleted: use a key issued by this deployment.", "NOT_FOUND"),
  DISABLED: denial("API key disabled", "The key or its owner is disabled: ask an administrator to enable it.", "DISABLED"),
  REVOKED: denial(
    "API key revoked",
    "The key was revoked or its rotation grace period ended: use its successor or create a new key.",
    "REVOKED",
  ),
  EXPIRED: denial("API key expired", "The key is past its expiry: rotate it or create a new key.", "EXPIRED"),
  LEGACY_KEY_RETIRED: denial(
    "Legacy API key retired",
    "The key is in a legacy format (imported from the system before Keyward) whose sunset date has passed: ask for it to be rotated, which issues a key in the Keyward format, and use the new key.",
    "LEGACY_KEY_RETIRED",
  ),
  ENVIRONMENT_MISMATCH: denial(
    "Wrong environment",
    "A sandbox key was sent to a production-only route, or the reverse: use a key of the route's environment.",
    "ENVIRONMENT_MISMATCH",
  ),
  IP_NOT_ALLOWED: denial(
    "Address not allowed",
    "The client address is outside the key's CIDR allow-list: call from an allowed address or update the list.",
    "IP_NOT_ALLOWED",
  ),
  INSUFFICIENT_SCOPE: denial(
    "Insufficient scope",
    "The key lacks a scope the route requires: create a key with the named scopes.",
    "INSUFFICIENT_SCOPE",
  ),
  RATE_LIMITED: denial(
    "Rate limit exceeded",
    "Too many requests for this key: wait for `Retry-After` seconds and slow down.",
    "RATE_LIMITED",
  ),
  CONCURRENCY_LIMITED: denial(
    "Too many requests in flight",
    "The key has as many requests in flight as it may: wait for one to finish before sending the next.",
    "CONCURRENCY_LIMITED",
  ),
  QUOTA_EXCEEDED: denial(
    "Quota exceeded",
    "The key's quota is spent: wait for the period to reset (`Retry-After`) or raise the quota.",
    "QUOTA_EXCEEDED",
  ),
  TOO_MANY_FAILED_ATTEMPTS: {
    status: 429,
    title: "Too many failed attempts",
    solve:
      "This client address sent too many unknown or malformed keys: wait `Retry-After` seconds and check which key it sends. Keys already known to the server keep working meanwhile.",
  },
  AMBIGUOUS_CREDENTIALS: { status: 400, title: "Ambiguous credentials", solve: "Send exactly one key, in one header, once." },
  KEY_IN_URL: {
    status: 400,
    title: "API key in URL",
    solve: "Never put a key in a URL (it ends up in logs and histories): send it in a header, and rotate the exposed key.",
  },
  VALIDATION_FAILED: { status: 400, title: "Invalid request", solve: "Fix the fields listed in `errors` and send the request again." },
  INVALID_JSON: {
    status: 400,
    title: "Invalid JSON body",
    solve: "Send a well-formed JSON object (keys such as `__proto__` are refused).",
  },
  INVALID_CURSOR: { status: 400, title: "Invalid cursor", solve: "Pass back the `next_cursor` of a previous page unchanged." },
  PAYLOAD_TOO_LARGE: { status: 413, title: "Payload too large", solve: "Send a smaller body (the limit is in docs/configuration.md)." },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: "Unsupported media type", solve: "Send `Content-Type: application/json`." },
  FORBIDDEN: { status: 403, title: "Forbidden", solve: "The caller may not do this: use a key or account with the needed rights." },
  RESOURCE_NOT_FOUND: { status: 404, title: "Not found", solve: "Check the identifier; resources of other users are not visible to you." },
  ROUTE_NOT_FOUND: { status: 404, title: "Route not found", solve: "Check the method and path against /openapi.json." },
  METHOD_NOT_ALLOWED: { status: 405, title: "Method not allowed", solve: "Check the method against /openapi.json." },
  CONFLICT: {
    status: 409,
    title: "Conflict",
    solve: "The resource changed state (already rotated, revoked or decided): reload it and retry if still needed.",
  },
  STORE_UNAVAILABLE: {
    status: 503,
    title: "Store unavailable",
    solve: "The database cannot be reached: retry after `Retry-After` seconds; nothing was changed.",
  },
  LIMITER_UNAVAILABLE: {
    status: 503,
    title: "Limiter unavailable",
    solve:
      "The shared limiter (Redis) cannot be reached and `KEYWARD_LIMITER_FAILURE` is `closed`: retry after `Retry-After` seconds, restore Redis, or choose `degrade`.",
  },
  LEASE_NOT_FOUND: {
    status: 404,
    title: "Lease not found",
    solve: "The concurrency lease was already released or has expired: nothing to do.",
  },
  SESSION_REQUIRED: {
    status: 401,
    title: "Sign-in required",
    solve: "Sign in to the dashboard again: the session is missing, expired (idle or absolute timeout) or was ended.",
  },
  SIGN_IN_FAILED: {
    status: 401,
    title: "Sign-in failed",
    solve: "The email or password is wrong, or the account is disabled: check both, or ask an administrator.",
  },
  SIGN_IN_THROTTLED: {
    status: 429,
    title: "Too many sign-in attempts",
    solve: "Wait for `Retry-After` seconds before trying again.",
  },
  CSRF_FAILED: {
    status: 403,
    title: "Cross-site request refused",
    solve: "A dashboard session call must come from the dashboard's own origin with its `X-CSRF-Token` header.",
  },
  SETUP_NOT_ALLOWED: {
    status: 403,
    title: "Setup not allowed",
    solve:
      "The setup link is wrong, expired or already used: restart `keyward serve` on a store with no users for a new one, or run `keyward users create --admin`.",
  },
  ACCOUNT_LINK_INVALID: {
    status: 400,
    title: "Invalid or expired link",
    solve:
      "The invite or password-reset link is wrong, was already used, was replaced by a newer one, or has expired (invites last 72 hours, resets 1 hour): ask an administrator for a new link.",
  },
  PASSWORD_CHANGE_REQUIRED: {
    status: 403,
    title: "New password required",
    solve:
      "An administrator requires you to choose a new password before anything else: change it with POST /v1/session/password (the dashboard shows the page), then retry.",
  },
  PASSWORD_SIGN_IN_DISABLED: {
    status: 403,
    title: "Password sign-in is off",
    solve:
      'This deployment signs people in through single sign-on only (KEYWARD_PASSWORD_SIGN_IN=off): use "Sign in with SSO" (GET /v1/session/oidc/start); passwords cannot be used, set, changed or reset.',
  },
  PORTAL_TOKEN_INVALID: {
    status: 401,
    title: "Invalid portal token",
    solve:
      "Send the token of a portal session as `Authorization: Portal <token>` (never in a cookie or a URL), exactly as `POST /v1/portal-sessions` returned it: this one is unknown or malformed.",
  },
  PORTAL_SESSION_EXPIRED: {
    status: 401,
    title: "Portal session expired",
    solve: "The portal session has passed its `expires_at`: the host application opens a new one (`POST /v1/portal-sessions`).",
  },
  PORTAL_SESSION_REVOKED: {
    status: 401,
    title: "Portal session revoked",
    solve:
      "The portal session was revoked, or the key that opened it was revoked, disabled or has expired: the host application opens a new one.",
  },
  KEY_CREATION_CAPPED: {
    status: 429,
    title: "Too many keys created",
    solve: "Members may create a limited number of keys per hour (KEYWARD_MEMBER_KEY_CREATES_PER_HOUR): wait for `Retry-After` seconds.",
  },
  KEY_AWAITING_PICKUP: {
    status: 409,
    title: "Key awaiting pickup",
    solve:
      "This production key was approved but its requester has not claimed it yet: claim it (POST /v1/key-requests/{id}/claim) before rotating or changing it.",
  },
  NO_GRACE_PERIOD: {
    status: 409,
    title: "No rotation grace to end",
    solve:
      "No key of this key's rotation lineage before it is in a grace period (it was never rotated with one, or the grace already ended or was revoked): nothing works that should not, so there is nothing to end.",
  },
  KEY_REQUEST_STALE: {
    status: 409,
    title: "Key request is stale",
    solve:
      "The sandbox key was revoked, disabled, expired or widened since the request was made: reject this request and ask the requester for a new one.",
  },
  OWNER_FOLLOWS_USER: {
    status: 409,
    title: "Owner follows its user",
    solve: "This owner is a dashboard user: enable or disable the user (PATCH /v1/users/{id}), which sets the owner in step.",
  },
  INTERNAL_ERROR: {
    status: 500,
    title: "Internal error",
    solve: "An unexpected error: report the `request_id` to the operator, who will find it in the logs.",
  },
  INVALID_CONFIGURATION: {
    status: 500,
    title: "Invalid configuration",
    solve: "A setting is wrong: the message names it; see docs/configuration.md.",
  },
  HASH_SECRET_MISMATCH: {
    status: 500,
    title: "Hash secret mismatch",
    solve:
      "This process's `KEYWARD_HASH_SECRET` is missing or differs from the one the store's keys are hashed with (the message names the variable and version): give every process on the store (server, workers, CLI) the same value. While rotating, keep the old version in the list (`v2:new,v1:old`).",
  },
  CLIENT_MISCONFIGURED: {
    status: 500,
    title: "Keyward client misconfigured",
    solve:
      "The Keyward service refused the client's own call: its service key is wrong, revoked or disabled, or lacks the `keys:verify` scope, or the URL is not a Keyward service. The app logs the service's answer once; give `keyward/client` the service's base URL and a key with `keys:verify`.",
  },
} as const satisfies Record<string, ErrorDefinition>;

export type ErrorCode = keyof typeof ERROR_REGISTRY;

export interface FieldError {
  field: string;
  message: string;
}

/** An error with a registered code. Thrown for misuse and bad requests; verify outcomes are data instead. */
export class KeywardError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly errors: FieldError[] | undefined;
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ErrorCode, detail?: string, extra: { errors?: FieldError[]; retryAfterSeconds?: number; cause?: unknown } = {}) {
    super(detail ?? ERROR_REGISTRY[code].title, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = "KeywardError";
    this.code = code;
    this.status = ERROR_REGISTRY[code].status;
    this.errors = extra.errors;
    this.retryAfterSeconds = extra.retryAfterSeconds;
  }
}

/**
 * A KeywardError for a refusal that a flood repeats (an address blocked after its failed
 * attempts), made without a stack trace: V8 captures one for every `new Error`, and under a
 * flood of unknown keys from one address that was ~6% of the CPU each answer cost. A refusal is
 * an expected outcome, so its stack says nothing the code and message do not.
 */
export function refusalError(code: ErrorCode, detail: string, extra: { retryAfterSeconds?: number } = {}): KeywardError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new KeywardError(code, detail, extra);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

export function isKeywardError(error: unknown): error is KeywardError {
  return error instanceof KeywardError;
}
