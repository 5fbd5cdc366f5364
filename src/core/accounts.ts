import type { OwnerRef, QuotaSpec, RateLimitSpec } from "./model.js";

/** Dashboard roles: an admin manages everyone's keys; a member only their own. */
export type UserRole = "admin" | "member";

/** A person with a dashboard login. Times are epoch milliseconds. The password is only ever a scrypt hash. */
export interface UserRecord {
  id: string;
  email: string;
  role: UserRole;
  /** The scrypt hash; empty (NO_PASSWORD) for a person invited who has not chosen one yet. */
  passwordHash: string;
  disabled: boolean;
  /** An administrator requires a new password: the person's session may do nothing else until they choose one. */
  mustChangePassword: boolean;
  createdAt: number;
  updatedAt: number;
}

/** The password hash of a user who has none yet (invited): no password verifies against it. */
export const NO_PASSWORD = "";

export const hasPassword = (user: Pick<UserRecord, "passwordHash">): boolean => user.passwordHash !== NO_PASSWORD;

/** What a one-time link lets its holder do: an invite sets the first password, a reset replaces it. */
export type UserLinkPurpose = "invite" | "reset";

/** A one-time invite or password-reset link, stored by the SHA-256 digest of its token (never the token). */
export interface UserLinkRecord {
  digest: string;
  userId: string;
  purpose: UserLinkPurpose;
  createdAt: number;
  expiresAt: number;
}

/** A dashboard session, stored by the SHA-256 digest of its cookie token (never the token itself). */
export interface SessionRecord {
  /**
   * The session's public id (`ses_…`), shown in session lists and used to end one session. A
   * separate random value, not derived from the token or its digest: it reveals nothing about
   * either, and needs no server secret (docs/dashboard.md).
   */
  id: string;
  digest: string;
  userId: string;
  /** Sent back in `X-CSRF-Token` on every unsafe request the session makes. */
  csrfToken: string;
  createdAt: number;
  lastSeenAt: number;
  ip: string | null;
  userAgent: string | null;
}

export type KeyRequestStatus = "pending" | "approved" | "rejected";

/** A request for a production key, made from a sandbox key. */
export interface KeyRequestRecord {
  id: string;
  sandboxKeyId: string;
  /** The sandbox key's owner: the production key goes to the same owner. */
  owner: OwnerRef;
  /** Who asked: a user id, or the sandbox key id when its holder asked with the key itself. */
  requestedBy: { type: "user" | "key"; id: string };
  reason: string | null;
  status: KeyRequestStatus;
  createdAt: number;
  decidedAt: number | null;
  decidedBy: string | null;
  decisionReason: string | null;
  /** The production key issued on approval. */
  issuedKeyId: string | null;
  /** When the requester picked up the plaintext (once). */
  claimedAt: number | null;
  /**
   * What was asked, recorded from the sandbox key when the request was made: approval issues
   * exactly this (docs/authority.md). Null only for requests made before it was recorded.
   */
  asked: AskedKey | null;
}

/** The permissions a production key request asks for. */
export interface AskedKey {
  name: string;
  scopes: string[];
  rateLimit: RateLimitSpec | null;
  concurrency: number | null;
  quota: QuotaSpec | null;
  allowedCidrs: string[];
  metadata: Record<string, unknown>;
  /**
   * The production key expires this long after approval: the asker's longest allowed expiry (a
   * portal session's policy, docs/embedding.md), so approval never issues a key the asker could
   * not have made. Absent: no expiry, as the sandbox key's own expiry is not carried over.
   */
  lifetimeMs?: number;
}

export const USER_ID_KIND = "usr";
export const KEY_REQUEST_ID_KIND = "kreq";
export const SESSION_ID_KIND = "ses";

/** Emails are compared case-insensitively: stored trimmed and lower-cased. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}
