import type { Environment } from "./key-format.js";

/**
 * Who holds a key: a person (`user`), a system (`application`), or a company whose members
 * manage its keys together (`organization`, docs/organizations.md).
 */
export type OwnerType = "user" | "application" | "organization";

export const OWNER_TYPES: readonly OwnerType[] = ["user", "application", "organization"];

export interface OwnerRef {
  type: OwnerType;
  id: string;
}

/**
 * Limits an owner's keys draw from together, on top of each key's own (the tighter wins,
 * docs/organizations.md): exact across instances, as a key's own limits are.
 */
export interface SharedLimits {
  rateLimit: RateLimitSpec | null;
  concurrency: number | null;
  quota: QuotaSpec | null;
}

export interface OwnerRecord extends OwnerRef {
  disabled: boolean;
  createdAt: number;
  /** A display name (organizations); null when none was given. */
  name: string | null;
  /** Shared limits, or null when the owner's keys are limited by their own limits only. */
  limits: SharedLimits | null;
}

/** What the verify path needs of a key's owner beside its disabled flag: its shared limits, counted from its creation. */
export interface OwnerLimits extends SharedLimits {
  owner: OwnerRef;
  createdAt: number;
}

export interface RateLimitSpec {
  requests: number;
  per_seconds: number;
  burst?: number;
}

export type QuotaSpec =
  | { limit: number; period: "day" | "month" }
  | { remaining: number; refill?: { amount: number; every_seconds: number } };

/**
 * `awaiting_pickup`: a production key issued by an approval whose requester has not claimed it
 * yet (docs/authority.md). Nobody holds its secret, so it verifies for no one.
 */
export type KeyStatus = "active" | "disabled" | "revoked" | "expired" | "awaiting_pickup";

/**
 * A delegation ceiling: what a key with `keys:write` may confer on the keys it mints or manages
 * (docs/authority.md). Without one, a key confers its own environment and its own
 * non-management scopes only.
 */
export interface DelegationCeiling {
  scopes: string[];
  environments: Environment[];
}

/** A key as stored: never the plaintext, only its digest. Times are epoch milliseconds. */
export interface KeyRecord {
  id: string;
  digest: string;
  hashVersion: number;
  ref: string;
  name: string;
  owner: OwnerRef;
  environment: Environment;
  scopes: string[];
  enabled: boolean;
  createdAt: number;
  updatedAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
  revokedReason: string | null;
  lastUsedAt: number | null;
  /** The client address of the last successful use (written with usage, not per request). */
  lastUsedIp: string | null;
  rateLimit: RateLimitSpec | null;
  concurrency: number | null;
  quota: QuotaSpec | null;
  allowedCidrs: string[];
  metadata: Record<string, unknown>;
  rotatedFrom: string | null;
  replacedBy: string | null;
  graceEndsAt: number | null;
  /** The first key of a rotation chain: successors share its limit and quota counters. */
  lineageId: string;
  /** What this key may confer when it mints or manages keys; null: its own environment and non-management scopes. */
  delegation: DelegationCeiling | null;
  /** Issued by an approval and not yet claimed by its requester. */
  awaitingPickup: boolean;
  /**
   * The declared legacy format (docs/migrating.md) of a key imported from another system, whose
   * digest is that system's (`legacy:…`); null for a key in the Keyward format.
   */
  legacyFormat: string | null;
  /** The id the key had in the system it was imported from (unique): imports match on it. */
  externalId: string | null;
}

/** The fields a PATCH may change. */
export type KeyChanges = Partial<
  Pick<
    KeyRecord,
    "name" | "scopes" | "expiresAt" | "rateLimit" | "concurrency" | "quota" | "allowedCidrs" | "metadata" | "enabled" | "delegation"
  >
>;

/** Fields set by lifecycle operations (revoke, rotate, usage). */
export type KeyLifecycleChanges = KeyChanges &
  Partial<Pick<KeyRecord, "revokedAt" | "revokedReason" | "replacedBy" | "graceEndsAt" | "lastUsedAt" | "lastUsedIp" | "awaitingPickup">>;

export interface Actor {
  type: "admin_key" | "key" | "user" | "system" | "cli" | "portal";
  id: string;
}

/** Who asked for a change, and from where: the context of every management action. */
export interface RequestContext {
  actor: Actor;
  ip?: string | undefined;
  userAgent?: string | undefined;
  requestId?: string | undefined;
  /**
   * The host application's person behind a portal session (docs/embedding.md): recorded in the
   * details of every audit event made through it, beside the actor `{type: "portal", id}`.
   */
  hostActor?: { id: string; email: string | null } | undefined;
}

/** One audit record, written in the same transaction as the change it records. */
export interface AuditEvent {
  id: string;
  at: number;
  actor: Actor;
  action: string;
  targetType: "key" | "owner" | "key_request" | "user" | "system" | "webhook" | "portal_session";
  targetId: string;
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
  /** Before/after of changed fields; never secrets or digests. */
  changes: Record<string, { from: unknown; to: unknown }> | null;
  /** Free-form, non-secret details (a revoke reason, a leak source). */
  details: Record<string, unknown> | null;
}

/** A key's status at `now`: revocation (and an ended rotation grace) first, then awaiting pickup, disabled, expiry. */
export function computeKeyStatus(key: KeyRecord, now: number): KeyStatus {
  if (key.revokedAt !== null && key.revokedAt <= now) return "revoked";
  if (key.graceEndsAt !== null && key.graceEndsAt <= now) return "revoked";
  if (key.awaitingPickup) return "awaiting_pickup";
  if (!key.enabled) return "disabled";
  if (key.expiresAt !== null && key.expiresAt <= now) return "expired";
  return "active";
}
