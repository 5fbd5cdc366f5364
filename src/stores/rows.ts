import { type AuditChainEntry, computeAuditHash } from "../core/audit-chain.js";
import type { Environment } from "../core/key-format.js";
import type { AuditEvent, KeyLifecycleChanges, KeyRecord, OwnerType } from "../core/model.js";

/**
 * The row shape shared by the SQL stores: snake_case columns, JSON for structured fields,
 * integers (epoch ms) for times. SQLite and PostgreSQL map to and from it the same way.
 */
export interface KeyRow {
  id: string;
  digest: string;
  hash_version: number;
  ref: string;
  name: string;
  owner_type: string;
  owner_id: string;
  environment: string;
  scopes: string;
  enabled: number | boolean;
  created_at: number | string;
  updated_at: number | string;
  expires_at: number | string | null;
  revoked_at: number | string | null;
  revoked_reason: string | null;
  last_used_at: number | string | null;
  last_used_ip: string | null;
  rate_limit: string | null;
  concurrency: number | null;
  quota: string | null;
  allowed_cidrs: string;
  metadata: string;
  rotated_from: string | null;
  replaced_by: string | null;
  grace_ends_at: number | string | null;
  lineage_id: string;
  delegation: string | null;
  awaiting_pickup: number | boolean;
  legacy_format: string | null;
  external_id: string | null;
}

export const KEY_COLUMNS = [
  "id",
  "digest",
  "hash_version",
  "ref",
  "name",
  "owner_type",
  "owner_id",
  "environment",
  "scopes",
  "enabled",
  "created_at",
  "updated_at",
  "expires_at",
  "revoked_at",
  "revoked_reason",
  "last_used_at",
  "rate_limit",
  "concurrency",
  "quota",
  "allowed_cidrs",
  "metadata",
  "rotated_from",
  "replaced_by",
  "grace_ends_at",
  "lineage_id",
  "last_used_ip",
  "delegation",
  "awaiting_pickup",
  "legacy_format",
  "external_id",
] as const;

const toTime = (value: number | string | null): number | null => (value === null ? null : Number(value));

export function rowToKey(row: KeyRow): KeyRecord {
  return {
    id: row.id,
    digest: row.digest,
    hashVersion: row.hash_version,
    ref: row.ref,
    name: row.name,
    owner: { type: row.owner_type as OwnerType, id: row.owner_id },
    environment: row.environment as Environment,
    scopes: JSON.parse(row.scopes),
    enabled: Boolean(row.enabled),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    expiresAt: toTime(row.expires_at),
    revokedAt: toTime(row.revoked_at),
    revokedReason: row.revoked_reason,
    lastUsedAt: toTime(row.last_used_at),
    lastUsedIp: row.last_used_ip,
    rateLimit: row.rate_limit === null ? null : JSON.parse(row.rate_limit),
    concurrency: row.concurrency,
    quota: row.quota === null ? null : JSON.parse(row.quota),
    allowedCidrs: JSON.parse(row.allowed_cidrs),
    metadata: JSON.parse(row.metadata),
    rotatedFrom: row.rotated_from,
    replacedBy: row.replaced_by,
    graceEndsAt: toTime(row.grace_ends_at),
    lineageId: row.lineage_id,
    delegation: row.delegation === null || row.delegation === undefined ? null : JSON.parse(row.delegation),
    awaitingPickup: Boolean(row.awaiting_pickup),
    legacyFormat: row.legacy_format ?? null,
    externalId: row.external_id ?? null,
  };
}

const json = (value: unknown): string | null => (value === null || value === undefined ? null : JSON.stringify(value));

/** Column values of a whole key, in KEY_COLUMNS order. Booleans as 0/1 (SQLite has no boolean). */
export function keyToRowValues(key: KeyRecord, booleanAsInteger: boolean): unknown[] {
  return [
    key.id,
    key.digest,
    key.hashVersion,
    key.ref,
    key.name,
    key.owner.type,
    key.owner.id,
    key.environment,
    JSON.stringify(key.scopes),
    booleanAsInteger ? (key.enabled ? 1 : 0) : key.enabled,
    key.createdAt,
    key.updatedAt,
    key.expiresAt,
    key.revokedAt,
    key.revokedReason,
    key.lastUsedAt,
    json(key.rateLimit),
    key.concurrency,
    json(key.quota),
    JSON.stringify(key.allowedCidrs),
    JSON.stringify(key.metadata),
    key.rotatedFrom,
    key.replacedBy,
    key.graceEndsAt,
    key.lineageId,
    key.lastUsedIp,
    json(key.delegation),
    booleanAsInteger ? (key.awaitingPickup ? 1 : 0) : key.awaitingPickup,
    key.legacyFormat,
    key.externalId,
  ];
}

const CHANGE_COLUMNS: Record<keyof KeyLifecycleChanges, { column: string; encode: (v: never) => unknown }> = {
  name: { column: "name", encode: (v: string) => v },
  scopes: { column: "scopes", encode: (v: string[]) => JSON.stringify(v) },
  expiresAt: { column: "expires_at", encode: (v: number | null) => v },
  rateLimit: { column: "rate_limit", encode: (v: unknown) => json(v) },
  concurrency: { column: "concurrency", encode: (v: number | null) => v },
  quota: { column: "quota", encode: (v: unknown) => json(v) },
  allowedCidrs: { column: "allowed_cidrs", encode: (v: string[]) => JSON.stringify(v) },
  metadata: { column: "metadata", encode: (v: unknown) => JSON.stringify(v) },
  enabled: { column: "enabled", encode: (v: boolean) => v },
  delegation: { column: "delegation", encode: (v: unknown) => json(v) },
  awaitingPickup: { column: "awaiting_pickup", encode: (v: boolean) => v },
  revokedAt: { column: "revoked_at", encode: (v: number | null) => v },
  revokedReason: { column: "revoked_reason", encode: (v: string | null) => v },
  replacedBy: { column: "replaced_by", encode: (v: string | null) => v },
  graceEndsAt: { column: "grace_ends_at", encode: (v: number | null) => v },
  lastUsedAt: { column: "last_used_at", encode: (v: number | null) => v },
  lastUsedIp: { column: "last_used_ip", encode: (v: string | null) => v },
};

/** Column/value pairs for an UPDATE from a set of changes. */
export function changesToColumns(changes: KeyLifecycleChanges, booleanAsInteger: boolean): { column: string; value: unknown }[] {
  const out: { column: string; value: unknown }[] = [];
  for (const [field, value] of Object.entries(changes)) {
    if (value === undefined) continue;
    const spec = CHANGE_COLUMNS[field as keyof KeyLifecycleChanges];
    if (!spec) throw new Error(`unknown key field: ${field}`);
    let encoded = spec.encode(value as never);
    if ((field === "enabled" || field === "awaitingPickup") && booleanAsInteger) encoded = value ? 1 : 0;
    out.push({ column: spec.column, value: encoded });
  }
  return out;
}

export interface AuditRow {
  seq: number | string;
  id: string;
  at: number | string;
  actor_type: string;
  actor_id: string;
  action: string;
  target_type: string;
  target_id: string;
  ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  changes: string | null;
  details: string | null;
  prev_hash: string;
  hash: string;
}

/** The column values of an audit row that its hash covers, in AUDIT_INSERT_COLUMNS order. */
export function auditRowHashedValues(row: AuditRow): unknown[] {
  return [
    row.id,
    row.at,
    row.actor_type,
    row.actor_id,
    row.action,
    row.target_type,
    row.target_id,
    row.ip,
    row.user_agent,
    row.request_id,
    row.changes,
    row.details,
  ];
}

export function auditRowToChainEntry(row: AuditRow): AuditChainEntry {
  return { seq: Number(row.seq), id: row.id, values: auditRowHashedValues(row), prevHash: row.prev_hash, hash: row.hash };
}

/** Column values for inserting `event` after the event whose hash is `prevHash`. */
export function chainedAuditRowValues(event: AuditEvent, prevHash: string): unknown[] {
  const values = auditToRowValues(event);
  return [...values, prevHash, computeAuditHash(prevHash, values)];
}

function auditToRowValues(event: AuditEvent): unknown[] {
  return [
    event.id,
    event.at,
    event.actor.type,
    event.actor.id,
    event.action,
    event.targetType,
    event.targetId,
    event.ip,
    event.userAgent,
    event.requestId,
    json(event.changes),
    json(event.details),
  ];
}

export const AUDIT_INSERT_COLUMNS =
  "id, at, actor_type, actor_id, action, target_type, target_id, ip, user_agent, request_id, changes, details, prev_hash, hash";

export function rowToAudit(row: AuditRow): AuditEvent {
  return {
    id: row.id,
    at: Number(row.at),
    actor: { type: row.actor_type as AuditEvent["actor"]["type"], id: row.actor_id },
    action: row.action,
    targetType: row.target_type as AuditEvent["targetType"],
    targetId: row.target_id,
    ip: row.ip,
    userAgent: row.user_agent,
    requestId: row.request_id,
    changes: row.changes === null ? null : JSON.parse(row.changes),
    details: row.details === null ? null : JSON.parse(row.details),
  };
}
