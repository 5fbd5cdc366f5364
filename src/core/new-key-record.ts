import type { Environment } from "./key-format.js";
import type { DelegationCeiling, KeyRecord, OwnerRef, QuotaSpec, RateLimitSpec } from "./model.js";

/** What a new key is made of; everything else starts empty. */
export interface NewKeyFields {
  id: string;
  /** The stored form of its secret: digest, hash version and display ref (never the plaintext). */
  secret: { digest: string; hashVersion: number; ref: string };
  name: string;
  owner: OwnerRef;
  environment: Environment;
  scopes: readonly string[];
  now: number;
  enabled?: boolean;
  expiresAt?: number | null;
  rateLimit?: RateLimitSpec | null;
  concurrency?: number | null;
  quota?: QuotaSpec | null;
  allowedCidrs?: readonly string[];
  metadata?: Record<string, unknown>;
  /** The key this one succeeds (rotation). */
  rotatedFrom?: string | null;
  /** The rotation chain it continues; a key that starts one is its own lineage. */
  lineageId?: string;
  delegation?: DelegationCeiling | null;
  awaitingPickup?: boolean;
  /** An imported key in a declared legacy format (its digest is `legacy:…`). */
  legacyFormat?: string | null;
  /** The key's id in the system it was imported from. */
  externalId?: string | null;
}

/**
 * A new key record: never used, never revoked, not replaced, with no grace period. The one place
 * that knows which fields a fresh key starts with, for creation, rotation, production-key
 * approval and the bench's seeding.
 */
export function newKeyRecord(fields: NewKeyFields): KeyRecord {
  return {
    id: fields.id,
    digest: fields.secret.digest,
    hashVersion: fields.secret.hashVersion,
    ref: fields.secret.ref,
    name: fields.name,
    owner: { type: fields.owner.type, id: fields.owner.id },
    environment: fields.environment,
    scopes: [...new Set(fields.scopes)],
    enabled: fields.enabled ?? true,
    createdAt: fields.now,
    updatedAt: fields.now,
    expiresAt: fields.expiresAt ?? null,
    revokedAt: null,
    revokedReason: null,
    lastUsedAt: null,
    lastUsedIp: null,
    rateLimit: fields.rateLimit ?? null,
    concurrency: fields.concurrency ?? null,
    quota: fields.quota ?? null,
    allowedCidrs: [...(fields.allowedCidrs ?? [])],
    metadata: fields.metadata ?? {},
    rotatedFrom: fields.rotatedFrom ?? null,
    replacedBy: null,
    graceEndsAt: null,
    lineageId: fields.lineageId ?? fields.id,
    delegation: fields.delegation ? { scopes: [...fields.delegation.scopes], environments: [...fields.delegation.environments] } : null,
    awaitingPickup: fields.awaitingPickup ?? false,
    legacyFormat: fields.legacyFormat ?? null,
    externalId: fields.externalId ?? null,
  };
}
