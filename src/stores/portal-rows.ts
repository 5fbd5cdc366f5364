import type { Environment } from "../core/key-format.js";
import type { Actor, OwnerType } from "../core/model.js";
import type { PortalPolicy, PortalSessionRecord } from "../core/portal-policy.js";

/** Rows and SQL shared by the SQLite and PostgreSQL portal session stores (`?` placeholders). */
export interface PortalSessionRow {
  id: string;
  digest: string;
  owner_type: string;
  owner_id: string;
  policy: string;
  host_actor_id: string;
  host_actor_email: string | null;
  created_by_type: string;
  created_by_id: string;
  created_by_owner_type: string | null;
  created_by_owner_id: string | null;
  created_at: number | string;
  expires_at: number | string;
  revoked_at: number | string | null;
  allowed_origin: string | null;
  return_url: string | null;
  app_name: string | null;
}

export const PORTAL_COLUMNS =
  "id, digest, owner_type, owner_id, policy, host_actor_id, host_actor_email, created_by_type, created_by_id, created_by_owner_type, created_by_owner_id, created_at, expires_at, revoked_at, allowed_origin, return_url, app_name";

interface StoredPolicy {
  scopes: string[];
  environments: Environment[];
  max_expires_in_days: number;
  may_request_production: boolean;
  max_keys: number | null;
}

const time = (value: number | string) => Number(value);

export function rowToPortalSession(row: PortalSessionRow): PortalSessionRecord {
  const policy = JSON.parse(row.policy) as StoredPolicy;
  return {
    id: row.id,
    digest: row.digest,
    owner: { type: row.owner_type as OwnerType, id: row.owner_id },
    policy: {
      scopes: policy.scopes,
      environments: policy.environments,
      maxExpiresInDays: policy.max_expires_in_days,
      mayRequestProduction: policy.may_request_production,
      maxKeys: policy.max_keys,
    },
    hostActor: { id: row.host_actor_id, email: row.host_actor_email },
    createdBy: { type: row.created_by_type as Actor["type"], id: row.created_by_id },
    createdByOwner:
      row.created_by_owner_type && row.created_by_owner_id
        ? { type: row.created_by_owner_type as OwnerType, id: row.created_by_owner_id }
        : null,
    createdAt: time(row.created_at),
    expiresAt: time(row.expires_at),
    revokedAt: row.revoked_at === null ? null : time(row.revoked_at),
    allowedOrigin: row.allowed_origin,
    returnUrl: row.return_url,
    appName: row.app_name,
  };
}

const policyJson = (policy: PortalPolicy): string =>
  JSON.stringify({
    scopes: policy.scopes,
    environments: policy.environments,
    max_expires_in_days: policy.maxExpiresInDays,
    may_request_production: policy.mayRequestProduction,
    max_keys: policy.maxKeys,
  } satisfies StoredPolicy);

export function portalSessionValues(s: PortalSessionRecord): unknown[] {
  return [
    s.id,
    s.digest,
    s.owner.type,
    s.owner.id,
    policyJson(s.policy),
    s.hostActor.id,
    s.hostActor.email,
    s.createdBy.type,
    s.createdBy.id,
    s.createdByOwner?.type ?? null,
    s.createdByOwner?.id ?? null,
    s.createdAt,
    s.expiresAt,
    s.revokedAt,
    s.allowedOrigin,
    s.returnUrl,
    s.appName,
  ];
}
