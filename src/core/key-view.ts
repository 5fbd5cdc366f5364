import { keyFormatLabel } from "./legacy-formats.js";
import { computeKeyStatus, type KeyRecord, type OwnerRef } from "./model.js";

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** The key object of the HTTP API (docs/api.md): never the secret or its digest. */
export interface PublicKey {
  id: string;
  ref: string;
  name: string;
  owner: OwnerRef;
  environment: KeyRecord["environment"];
  scopes: string[];
  status: ReturnType<typeof computeKeyStatus>;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  last_used_ip: string | null;
  revoked_at: string | null;
  revoked_reason: string | null;
  rate_limit: KeyRecord["rateLimit"];
  concurrency: number | null;
  quota: KeyRecord["quota"];
  allowed_cidrs: string[];
  metadata: Record<string, unknown>;
  rotated_from: string | null;
  replaced_by: string | null;
  grace_ends_at: string | null;
  grantable_scopes: string[] | null;
  grantable_environments: KeyRecord["environment"][] | null;
  /** `keyward`, or `legacy:<name>` for a key imported in a declared legacy format (docs/migrating.md). */
  format: string;
  /** The key's id in the system it was imported from. */
  external_id: string | null;
}

export function toPublicKey(key: KeyRecord, now: number): PublicKey {
  return {
    id: key.id,
    ref: key.ref,
    name: key.name,
    owner: { type: key.owner.type, id: key.owner.id },
    environment: key.environment,
    scopes: key.scopes,
    status: computeKeyStatus(key, now),
    created_at: iso(key.createdAt) as string,
    expires_at: iso(key.expiresAt),
    last_used_at: iso(key.lastUsedAt),
    last_used_ip: key.lastUsedIp ?? null,
    revoked_at: iso(key.revokedAt),
    revoked_reason: key.revokedReason,
    rate_limit: key.rateLimit,
    concurrency: key.concurrency,
    quota: key.quota,
    allowed_cidrs: key.allowedCidrs,
    metadata: key.metadata,
    rotated_from: key.rotatedFrom,
    replaced_by: key.replacedBy,
    grace_ends_at: iso(key.graceEndsAt),
    grantable_scopes: key.delegation?.scopes ?? null,
    grantable_environments: key.delegation?.environments ?? null,
    format: keyFormatLabel(key.legacyFormat),
    external_id: key.externalId,
  };
}

/** What a verified request's handler receives about its key. */
export interface VerifiedKey {
  id: string;
  ref: string;
  name: string;
  owner: OwnerRef;
  environment: KeyRecord["environment"];
  scopes: string[];
  metadata: Record<string, unknown>;
  expiresAt: string | null;
}

export function toVerifiedKey(key: KeyRecord): VerifiedKey {
  return {
    id: key.id,
    ref: key.ref,
    name: key.name,
    owner: key.owner,
    environment: key.environment,
    scopes: key.scopes,
    metadata: key.metadata,
    expiresAt: iso(key.expiresAt),
  };
}
