import type {
  KeyRequestRecord,
  KeyRequestStatus,
  SessionRecord,
  UserLinkPurpose,
  UserLinkRecord,
  UserRecord,
  UserRole,
} from "../core/accounts.js";
import type { AuditEvent, KeyRecord, OwnerRef, OwnerType } from "../core/model.js";
import type { MembershipRecord } from "../core/organizations.js";

export type UserChanges = Partial<Pick<UserRecord, "disabled" | "role" | "passwordHash" | "mustChangePassword">>;

export interface KeyRequestFilter {
  owner?: OwnerRef;
  /** One side of an owner (`GET /v1/key-requests?owner_type=&owner_id=`); `owner`, when set, is both. */
  ownerType?: OwnerType;
  ownerId?: string;
  status?: KeyRequestStatus;
}

/** What `GET /v1/users` filters on; every given criterion must hold. */
export interface UserListFilter {
  /**
   * The search box: users whose email contains `email` (case-insensitive: emails are stored
   * lower-cased), or whose id is `id`.
   */
  search?: { email: string; id?: string };
  role?: UserRole;
  disabled?: boolean;
}

/** Oldest first, as users were always listed; the cursor is the last row of the previous page. */
export interface UserCursor {
  createdAt: number;
  id: string;
}

/** Which of a user's sessions to end: one (`sessionId`), or all but the caller's own (`exceptDigest`), or all. */
export interface EndSessions {
  sessionId?: string;
  exceptDigest?: string;
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

  /** Every user, or those matching `filter`: all the pages of `listUsers` together. */
  countUsers(filter?: UserListFilter): Promise<number>;
  /** Inserts the user and its audit event; `false` when the email is taken. */
  insertUser(user: UserRecord, audit: AuditEvent | null): Promise<boolean>;
  getUser(id: string): Promise<UserRecord | null>;
  getUserByEmail(email: string): Promise<UserRecord | null>;
  listUsers(filter: UserListFilter, limit: number, after: UserCursor | null): Promise<{ users: UserRecord[]; next: UserCursor | null }>;
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
  /** The user's live sessions (last seen at or after `idleBefore`, created at or after `createdBefore`), newest first. */
  listUserSessions(userId: string, idleBefore: number, createdBefore: number): Promise<SessionRecord[]>;
  /**
   * Ends sessions of the user (`which`) and, when any ended, appends `audit(ended)` in the same
   * transaction. Returns how many ended.
   */
  endUserSessions(userId: string, which: EndSessions, audit: (ended: number) => AuditEvent): Promise<number>;
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

  // Single sign-on (docs/sso.md).
  /** The user an identity provider's subject is linked to. */
  getOidcLink(issuer: string, subject: string): Promise<OidcLinkRecord | null>;
  /**
   * Links a subject to a user, with `user` inserted first when given (just-in-time creation),
   * and appends the audit events, in one transaction. `conflict`, with nothing changed, when the
   * subject is linked already, the user is linked to another subject of this issuer, or the new
   * user's email is taken.
   */
  insertOidcLink(link: OidcLinkRecord, user: UserRecord | null, audits: AuditEvent[]): Promise<"created" | "conflict">;
  /** Stores a sign-in under way. */
  insertOidcFlow(flow: OidcFlowRecord): Promise<void>;
  /** Deletes the sign-in under way with this state digest and returns it: a state works once. */
  takeOidcFlow(stateDigest: string): Promise<OidcFlowRecord | null>;
  /** Deletes sign-ins under way that expired at `now`; returns how many. */
  deleteExpiredOidcFlows(now: number): Promise<number>;

  // Organization members (docs/organizations.md)
  getMembership(organizationId: string, userId: string): Promise<MembershipRecord | null>;
  /** The organizations a user belongs to, by id. */
  listMembershipsOfUser(userId: string): Promise<MembershipRecord[]>;
  /** An organization's members, oldest first. */
  listOrganizationMembers(organizationId: string): Promise<MembershipRecord[]>;
  /**
   * Adds a member or changes their role, audited. `last_owner`: the change would leave an
   * organization that had an owner with none, and nothing was written.
   */
  saveMembership(membership: MembershipRecord, audit: AuditEvent): Promise<MembershipChange>;
  /** Removes a member, audited; `last_owner` as for saveMembership. */
  removeMembership(organizationId: string, userId: string, audit: AuditEvent): Promise<MembershipChange>;
}

export type MembershipChange = "done" | "not_found" | "last_owner";

/** An identity provider's subject (`iss`, `sub`) linked to a Keyward user. */
export interface OidcLinkRecord {
  issuer: string;
  subject: string;
  userId: string;
  createdAt: number;
}

/**
 * A single sign-on under way, from `/v1/session/oidc/start` to its callback: stored by the
 * SHA-256 digest of its `state`, bound to the browser that started it by the digest of a cookie.
 */
export interface OidcFlowRecord {
  stateDigest: string;
  browserDigest: string;
  nonce: string;
  codeVerifier: string;
  redirectUri: string;
  returnTo: string;
  expiresAt: number;
}
