import type { AuditEvent } from "../core/model.js";
import type { PortalSessionRecord } from "../core/portal-policy.js";

/**
 * Portal sessions (docs/embedding.md), on the key store's database: every change shares a
 * transaction with its audit event. The token is never stored, only its digest.
 */
export interface PortalSessionStore {
  migrate(): Promise<void>;
  /** Inserts the session and, if missing, its owner (owners appear on first use). */
  insert(session: PortalSessionRecord, audit: AuditEvent): Promise<void>;
  get(id: string): Promise<PortalSessionRecord | null>;
  findByDigest(digest: string): Promise<PortalSessionRecord | null>;
  /** Sets `revoked_at` unless already revoked; the session as it is now, or null when there is none. */
  revoke(id: string, at: number, audit: AuditEvent): Promise<PortalSessionRecord | null>;
  /** Deletes sessions that ended (expired or revoked) before `before`; how many. */
  purgeEnded(before: number): Promise<number>;
}
