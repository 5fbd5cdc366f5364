import { isValidCidr } from "../core/cidr.js";
import { type FieldError, KeywardError } from "../core/errors.js";
import type { Environment } from "../core/key-format.js";
import { type DelegationCeiling, type KeyChanges, OWNER_TYPES, type OwnerRef, type QuotaSpec, type RateLimitSpec } from "../core/model.js";
import { findEscalatingScopes, isValidScope, MAX_SCOPES_PER_KEY } from "../core/scopes.js";

/** What a caller gives to create a key (engine-level, camelCase). */
export interface CreateKeyInput {
  owner: OwnerRef;
  name: string;
  environment: Environment;
  scopes: string[];
  expiresAt?: number | null;
  rateLimit?: RateLimitSpec | null;
  concurrency?: number | null;
  quota?: QuotaSpec | null;
  allowedCidrs?: string[];
  metadata?: Record<string, unknown>;
  /** What the key may confer when it mints or manages keys (docs/authority.md). */
  delegation?: DelegationCeiling | null;
}

export const LIMITS = {
  nameLength: 100,
  ownerIdLength: 128,
  metadataBytes: 4096,
  metadataDepth: 5,
  metadataKeys: 64,
  cidrs: 64,
  maxGraceSeconds: 30 * 24 * 3600,
} as const;

// No control characters (CR/LF would split log lines) and no angle brackets (HTML).
const NAME_PATTERN = /^[^\u0000-\u001f\u007f<>]+$/;
const OWNER_ID_PATTERN = /^[A-Za-z0-9_.@:-]+$/;

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

/** Plain objects only (or null-prototype ones, which JSON parsers may build): not Map, Date, class instances. */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (!isObject(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function checkMetadata(value: unknown, path: string, depth: number, errors: FieldError[]): void {
  if (depth > LIMITS.metadataDepth) {
    errors.push({ field: path, message: `nesting deeper than ${LIMITS.metadataDepth} levels` });
    return;
  }
  if (typeof value === "number" && !Number.isFinite(value)) errors.push({ field: path, message: "numbers must be finite" });
  if (value === null || typeof value === "string" || typeof value === "number" || typeof value === "boolean") return;
  // Embedding apps may pass anything; only what JSON can carry is stored.
  if (!Array.isArray(value) && !isPlainObject(value)) {
    errors.push({ field: path, message: "must be a string, number, boolean, null, list or object" });
    return;
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
  for (const [name, child] of entries) {
    if (name === "__proto__" || name === "constructor" || name === "prototype") {
      errors.push({ field: `${path}.${name}`, message: "reserved name" });
      continue;
    }
    checkMetadata(child, `${path}.${name}`, depth + 1, errors);
  }
}

function checkScopeList(scopes: unknown, field: string, errors: FieldError[]): void {
  if (!Array.isArray(scopes)) {
    errors.push({ field, message: "must be a list" });
    return;
  }
  if (scopes.length > MAX_SCOPES_PER_KEY) errors.push({ field, message: `at most ${MAX_SCOPES_PER_KEY} scopes` });
  scopes.forEach((scope, i) => {
    if (typeof scope !== "string" || !isValidScope(scope))
      errors.push({ field: `${field}[${i}]`, message: "must match segment(:segment)*, segments [a-z0-9_.-]+ or *" });
  });
}

function checkDelegation(delegation: DelegationCeiling | null | undefined, errors: FieldError[]): void {
  if (delegation === undefined || delegation === null) return;
  if (!isObject(delegation)) {
    errors.push({ field: "grantable_scopes", message: "must be a list" });
    return;
  }
  checkScopeList(delegation.scopes, "grantable_scopes", errors);
  const environments = delegation.environments as unknown;
  if (
    !Array.isArray(environments) ||
    environments.length === 0 ||
    environments.some((environment) => environment !== "sandbox" && environment !== "production")
  )
    errors.push({ field: "grantable_environments", message: "a non-empty list of sandbox and production" });
}

/**
 * A ceiling may hold management scopes only where the key holds them itself: a ceiling lets a
 * key confer, never gives it rights (docs/authority.md).
 */
export function validateDelegationHeld(scopes: readonly string[], delegation: DelegationCeiling | null | undefined): void {
  if (!delegation) return;
  const beyond = findEscalatingScopes(scopes, delegation.scopes);
  if (beyond.length > 0)
    fail([{ field: "grantable_scopes", message: `management scopes the key does not hold itself: ${beyond.join(", ")}` }]);
}

function checkSettings(input: Partial<CreateKeyInput & KeyChanges>, now: number, errors: FieldError[]): void {
  if (input.name !== undefined) {
    if (typeof input.name !== "string" || input.name.trim().length === 0 || input.name.length > LIMITS.nameLength) {
      errors.push({ field: "name", message: `must be 1 to ${LIMITS.nameLength} characters` });
    } else if (!NAME_PATTERN.test(input.name)) {
      errors.push({ field: "name", message: "must not contain control characters or < >" });
    }
  }
  if (input.scopes !== undefined) checkScopeList(input.scopes, "scopes", errors);
  checkDelegation(input.delegation, errors);
  if (input.expiresAt !== undefined && input.expiresAt !== null) {
    if (!Number.isFinite(input.expiresAt)) errors.push({ field: "expires_at", message: "must be an ISO 8601 time" });
    else if (input.expiresAt <= now) errors.push({ field: "expires_at", message: "must be in the future" });
  }
  const rate = input.rateLimit;
  if (rate !== undefined && rate !== null && !isObject(rate)) errors.push({ field: "rate_limit", message: "must be an object" });
  else if (rate) {
    if (!Number.isSafeInteger(rate.requests) || rate.requests < 1 || rate.requests > 1_000_000)
      errors.push({ field: "rate_limit.requests", message: "an integer from 1 to 1000000" });
    if (!Number.isSafeInteger(rate.per_seconds) || rate.per_seconds < 1 || rate.per_seconds > 86_400)
      errors.push({ field: "rate_limit.per_seconds", message: "an integer from 1 to 86400" });
    if (rate.burst !== undefined && (!Number.isSafeInteger(rate.burst) || rate.burst < 1 || rate.burst > 1_000_000))
      errors.push({ field: "rate_limit.burst", message: "an integer from 1 to 1000000" });
  }
  if (
    input.concurrency !== undefined &&
    input.concurrency !== null &&
    (!Number.isSafeInteger(input.concurrency) || input.concurrency < 1 || input.concurrency > 10_000)
  ) {
    errors.push({ field: "concurrency", message: "an integer from 1 to 10000" });
  }
  const quota = input.quota;
  if (quota !== undefined && quota !== null && !isObject(quota)) errors.push({ field: "quota", message: "must be an object" });
  else if (quota) {
    if ("limit" in quota) {
      if (!Number.isSafeInteger(quota.limit) || quota.limit < 1) errors.push({ field: "quota.limit", message: "a positive integer" });
      if (quota.period !== "day" && quota.period !== "month") errors.push({ field: "quota.period", message: "day or month" });
    } else {
      if (!Number.isSafeInteger(quota.remaining) || quota.remaining < 0)
        errors.push({ field: "quota.remaining", message: "a non-negative integer" });
      const refill = quota.refill;
      if (refill !== undefined && !isObject(refill)) errors.push({ field: "quota.refill", message: "must be an object" });
      else if (refill !== undefined) {
        if (!Number.isSafeInteger(refill.amount) || refill.amount < 1)
          errors.push({ field: "quota.refill.amount", message: "a positive integer" });
        if (!Number.isSafeInteger(refill.every_seconds) || refill.every_seconds < 1 || refill.every_seconds > 31_536_000)
          errors.push({ field: "quota.refill.every_seconds", message: "an integer from 1 to 31536000 (a year)" });
      }
    }
  }
  if (input.allowedCidrs !== undefined && !Array.isArray(input.allowedCidrs)) {
    errors.push({ field: "allowed_cidrs", message: "must be a list" });
  } else if (input.allowedCidrs !== undefined) {
    if (input.allowedCidrs.length > LIMITS.cidrs) errors.push({ field: "allowed_cidrs", message: `at most ${LIMITS.cidrs} entries` });
    input.allowedCidrs.forEach((cidr, i) => {
      if (typeof cidr !== "string" || !isValidCidr(cidr))
        errors.push({ field: `allowed_cidrs[${i}]`, message: "not an IPv4 or IPv6 address or CIDR" });
    });
  }
  if (input.metadata !== undefined) {
    if (!isPlainObject(input.metadata)) {
      errors.push({ field: "metadata", message: "must be an object" });
    } else {
      if (Object.keys(input.metadata).length > LIMITS.metadataKeys)
        errors.push({ field: "metadata", message: `at most ${LIMITS.metadataKeys} top-level fields` });
      const before = errors.length;
      checkMetadata(input.metadata, "metadata", 1, errors);
      // Sized only once it is known to be JSON (a BigInt or a cycle would throw).
      if (errors.length === before && Buffer.byteLength(JSON.stringify(input.metadata)) > LIMITS.metadataBytes)
        errors.push({ field: "metadata", message: `at most ${LIMITS.metadataBytes} bytes as JSON` });
    }
  }
}

function fail(errors: FieldError[]): never {
  throw new KeywardError("VALIDATION_FAILED", errors.map((e) => `${e.field}: ${e.message}`).join("; "), { errors });
}

/** Semantic checks shared by every edge (HTTP, CLI, embedding apps); the HTTP schema checks shapes first. */
export function validateCreateKeyInput(input: CreateKeyInput, now: number): void {
  if (!isObject(input)) fail([{ field: "body", message: "must be an object" }]);
  const errors: FieldError[] = [];
  if (!input.owner || !OWNER_TYPES.includes(input.owner.type))
    errors.push({ field: "owner.type", message: "user, application or organization" });
  else if (typeof input.owner.id !== "string" || !OWNER_ID_PATTERN.test(input.owner.id) || input.owner.id.length > LIMITS.ownerIdLength) {
    errors.push({ field: "owner.id", message: `1 to ${LIMITS.ownerIdLength} characters of A-Z a-z 0-9 _ . @ : -` });
  }
  if (input.name === undefined) errors.push({ field: "name", message: "required" });
  if (input.environment !== "sandbox" && input.environment !== "production")
    errors.push({ field: "environment", message: "sandbox or production" });
  if (!Array.isArray(input.scopes)) errors.push({ field: "scopes", message: "required" });
  checkSettings(input, now, errors);
  if (errors.length) fail(errors);
  validateDelegationHeld(input.scopes, input.delegation);
}

/**
 * The checks of a key an import creates (docs/migrating.md): those of a new key, except that its
 * expiry may be past (the key is imported as it is, and answers EXPIRED).
 */
export function validateImportedKeyInput(input: CreateKeyInput): void {
  validateCreateKeyInput(input, Number.NEGATIVE_INFINITY);
}

export function validateKeyChanges(changes: KeyChanges, now: number): void {
  if (!isObject(changes)) fail([{ field: "body", message: "must be an object" }]);
  const errors: FieldError[] = [];
  if (changes.enabled !== undefined && typeof changes.enabled !== "boolean") errors.push({ field: "enabled", message: "true or false" });
  checkSettings(changes, now, errors);
  if (errors.length) fail(errors);
}

export function validateGraceSeconds(graceSeconds: number): void {
  if (!Number.isSafeInteger(graceSeconds) || graceSeconds < 0 || graceSeconds > LIMITS.maxGraceSeconds) {
    fail([{ field: "grace_seconds", message: `an integer from 0 to ${LIMITS.maxGraceSeconds}` }]);
  }
}
