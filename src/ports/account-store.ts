import type { KeyRequestRecord, KeyRequestStatus, SessionRecord, UserLinkPurpose, UserLinkRecord, UserRecord } from "../core/accounts.js";
import type { AuditEvent, KeyRecord, OwnerRef } from "../core/model.js";

export type UserChanges = Partial<Pick<UserRecord, "disabled" | "role" | "passwordHash" | "mustChangePassword">>;

export interface KeyRequestFilter {
  owner?: OwnerRef;
  status?: KeyRequestStatus;
}

/** Newest first; the cursor is the last row of the previous page. */
export interface KeyRequestCursor {
  createdAt: number;
  id: string;
}

export type DecisionResult = "done" | "conflict" | "not_found";

/** The secret half of a production key, set when its requester picks it up. */
export interface ClaimedSecret {
  digest: string;
  hashVersion: number;
  ref: string;
}

/**
 * Storage for people and their requests: dashboard users, sessions, the one-time setup token
 * and production key requests. Adapters live beside the KeyStore on the same database, so an
 * approval writes the request, the new key and both audit events in one transaction.
 */
export interface AccountStore {
  migrate(): Promise<void>;

  countUsers(): Promise<number>;
  /** Inserts the user and its audit event; `false` when the email is taken. */
  insertUser(user: UserRecord, audit: AuditEvent | null): Promise<boolean>;
  getUser(id: string): Promise<UserRecord | null>;
  getUserByEmail(email: string): Promise<UserRecord | null>;
  listUsers(limit: number): Promise<UserRecord[]>;
  /**
   * Applies the changes; disabling a user or changing its password ends all of its sessions and
   * deletes its invite or reset link in the same transaction.
   */
  updateUser(id: string, changes: UserChanges, audit: AuditEvent, now: number): Promise<UserRecord | null>;

  /** Stores a one-time link with its audit event, deleting the user's earlier links (a newer link revokes the older). */
  insertUserLink(link: UserLinkRecord, audit: AuditEvent): Promise<void>;
  getUserLink(digest: string): Promise<UserLinkRecord | null>;
  /**
   * Uses a link once: deletes it if it is still there, of this user and purpose and unexpired at
   * `now`, and in the same transaction sets the password (`mustChangePassword` cleared), ends the
   * user's sessions, deletes its other links and appends the audit event. Null, with nothing
   * changed, when the link was used, replaced or expired meanwhile, or the user is disabled.
   */
  consumeUserLink(
    digest: string,
    userId: string,
    purpose: UserLinkPurpose,
    passwordHash: string,
    audit: AuditEvent,
    now: number,
  ): Promise<UserRecord | null>;
  /** Deletes links expired at `now`; returns how many. */
  deleteExpiredUserLinks(now: number): Promise<number>;

  /** Stores the digest of a fresh setup token, replacing any earlier one. */
  setSetupToken(digest: string, expiresAt: number): Promise<void>;
  /**
   * The first admin: only while there are no users and the token matches and is unexpired.
   * Consumes the token. Returns whether the admin was created.
   */
  createFirstAdmin(tokenDigest: string, user: UserRecord, audit: AuditEvent, now: number): Promise<boolean>;

  /**
   * Inserts the session with its audit event; with `maxPerUser`, the user's oldest sessions
   * beyond that many (the new one included) end in the same transaction.
   */
  insertSession(session: SessionRecord, audit: AuditEvent, maxPerUser?: number): Promise<void>;
  getSession(digest: string): Promise<SessionRecord | null>;
  touchSession(digest: string, at: number): Promise<void>;
  deleteSession(digest: string): Promise<void>;
  /** Deletes sessions last seen before `idleBefore` or created before `createdBefore`; returns how many. */
  deleteExpiredSessions(idleBefore: number, createdBefore: number): Promise<number>;

  /** `conflict` when the sandbox key already has a pending request. */
  insertKeyRequest(request: KeyRequestRecord, audit: AuditEvent): Promise<"created" | "conflict">;
  getKeyRequest(id: string): Promise<KeyRequestRecord | null>;
  listKeyRequests(
    filter: KeyRequestFilter,
    limit: number,
    after: KeyRequestCursor | null,
  ): Promise<{ requests: KeyRequestRecord[]; next: KeyRequestCursor | null }>;
  /** Pending → approved, inserting the production key; `audits` (key created, request approved) in the same transaction. */
  approveKeyRequest(id: string, decidedBy: string, at: number, key: KeyRecord, audits: AuditEvent[]): Promise<DecisionResult>;
  rejectKeyRequest(id: string, decidedBy: string, at: number, reason: string, audit: AuditEvent): Promise<DecisionResult>;
  /** Once only: sets the issued key's secret digest and ref and marks the request claimed. */
  claimKeyRequest(id: string, at: number, secret: ClaimedSecret, audit: AuditEvent): Promise<DecisionResult>;
}
