import type {
  KeyRequestRecord,
  KeyRequestStatus,
  SessionRecord,
  UserLinkPurpose,
  UserLinkRecord,
  UserRecord,
  UserRole,
} from "../core/accounts.js";
import type { OwnerType } from "../core/model.js";
import type { EndSessions, KeyRequestCursor, KeyRequestFilter, UserChanges, UserCursor, UserListFilter } from "../ports/account-store.js";
import { containsPattern } from "./sql-filters.js";

/**
 * Rows and SQL shared by the SQLite and PostgreSQL account stores. Booleans are stored as 0/1
 * in both, times as epoch milliseconds, so one mapping serves both. SQL is written with `?`;
 * PostgreSQL numbers the placeholders with `numberPlaceholders`.
 */
export interface UserRow {
  id: string;
  email: string;
  role: string;
  password_hash: string;
  disabled: number;
  must_change_password: number;
  created_at: number | string;
  updated_at: number | string;
}

export interface UserLinkRow {
  digest: string;
  user_id: string;
  purpose: string;
  created_at: number | string;
  expires_at: number | string;
}

export interface SessionRow {
  id: string;
  digest: string;
  user_id: string;
  csrf_token: string;
  created_at: number | string;
  last_seen_at: number | string;
  ip: string | null;
  user_agent: string | null;
}

export interface KeyRequestRow {
  id: string;
  sandbox_key_id: string;
  owner_type: string;
  owner_id: string;
  requested_by_type: string;
  requested_by_id: string;
  reason: string | null;
  status: string;
  created_at: number | string;
  decided_at: number | string | null;
  decided_by: string | null;
  decision_reason: string | null;
  issued_key_id: string | null;
  claimed_at: number | string | null;
  asked: string | null;
}

const time = (value: number | string | null): number | null => (value === null ? null : Number(value));

export const rowToUser = (row: UserRow): UserRecord => ({
  id: row.id,
  email: row.email,
  role: row.role as UserRole,
  passwordHash: row.password_hash,
  disabled: Number(row.disabled) === 1,
  mustChangePassword: Number(row.must_change_password) === 1,
  createdAt: Number(row.created_at),
  updatedAt: Number(row.updated_at),
});

export const rowToUserLink = (row: UserLinkRow): UserLinkRecord => ({
  digest: row.digest,
  userId: row.user_id,
  purpose: row.purpose as UserLinkPurpose,
  createdAt: Number(row.created_at),
  expiresAt: Number(row.expires_at),
});

export const userLinkToValues = (link: UserLinkRecord): unknown[] => [
  link.digest,
  link.userId,
  link.purpose,
  link.createdAt,
  link.expiresAt,
];

export const rowToSession = (row: SessionRow): SessionRecord => ({
  id: row.id,
  digest: row.digest,
  userId: row.user_id,
  csrfToken: row.csrf_token,
  createdAt: Number(row.created_at),
  lastSeenAt: Number(row.last_seen_at),
  ip: row.ip,
  userAgent: row.user_agent,
});

export const rowToKeyRequest = (row: KeyRequestRow): KeyRequestRecord => ({
  id: row.id,
  sandboxKeyId: row.sandbox_key_id,
  owner: { type: row.owner_type as OwnerType, id: row.owner_id },
  requestedBy: { type: row.requested_by_type as "user" | "key", id: row.requested_by_id },
  reason: row.reason,
  status: row.status as KeyRequestStatus,
  createdAt: Number(row.created_at),
  decidedAt: time(row.decided_at),
  decidedBy: row.decided_by,
  decisionReason: row.decision_reason,
  issuedKeyId: row.issued_key_id,
  claimedAt: time(row.claimed_at),
  asked: row.asked === null || row.asked === undefined ? null : JSON.parse(row.asked),
});

export const userToValues = (u: UserRecord): unknown[] => [
  u.id,
  u.email,
  u.role,
  u.passwordHash,
  u.disabled ? 1 : 0,
  u.mustChangePassword ? 1 : 0,
  u.createdAt,
  u.updatedAt,
];

export const sessionToValues = (s: SessionRecord): unknown[] => [
  s.id,
  s.digest,
  s.userId,
  s.csrfToken,
  s.createdAt,
  s.lastSeenAt,
  s.ip,
  s.userAgent,
];

export const keyRequestToValues = (r: KeyRequestRecord): unknown[] => [
  r.id,
  r.sandboxKeyId,
  r.owner.type,
  r.owner.id,
  r.requestedBy.type,
  r.requestedBy.id,
  r.reason,
  r.status,
  r.createdAt,
  r.decidedAt,
  r.decidedBy,
  r.decisionReason,
  r.issuedKeyId,
  r.claimedAt,
  r.asked === null ? null : JSON.stringify(r.asked),
];

const marks = (n: number) => Array.from({ length: n }, () => "?").join(", ");

export const ACCOUNT_SQL = {
  countUsers: "SELECT COUNT(*) AS n FROM users",
  insertUser: `INSERT INTO users (id, email, role, password_hash, disabled, must_change_password, created_at, updated_at) VALUES (${marks(8)}) ON CONFLICT DO NOTHING`,
  getUser: "SELECT * FROM users WHERE id = ?",
  getUserByEmail: "SELECT * FROM users WHERE email = ?",
  deleteUserSessions: "DELETE FROM sessions WHERE user_id = ?",
  // One live link per user: issuing one deletes the others (docs/dashboard.md).
  deleteUserLinks: "DELETE FROM user_links WHERE user_id = ?",
  insertUserLink: `INSERT INTO user_links (digest, user_id, purpose, created_at, expires_at) VALUES (${marks(5)})`,
  getUserLink: "SELECT * FROM user_links WHERE digest = ?",
  // Single use: the delete is the arbiter between two concurrent uses of one link.
  consumeUserLink: "DELETE FROM user_links WHERE digest = ? AND user_id = ? AND purpose = ? AND expires_at > ?",
  deleteExpiredUserLinks: "DELETE FROM user_links WHERE expires_at <= ?",
  deleteSetupToken: "DELETE FROM setup_token",
  // An upsert: instances starting together on one PostgreSQL each set a token; a delete then
  // insert let two of them insert row 1 at once, and the loser failed to start.
  setSetupToken:
    "INSERT INTO setup_token (id, digest, expires_at) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET digest = excluded.digest, expires_at = excluded.expires_at",
  matchSetupToken: "SELECT 1 AS ok FROM setup_token WHERE digest = ? AND expires_at > ?",
  insertSession: `INSERT INTO sessions (id, digest, user_id, csrf_token, created_at, last_seen_at, ip, user_agent) VALUES (${marks(8)})`,
  // Live: the complement of deleteExpiredSessions.
  listUserSessions:
    "SELECT * FROM sessions WHERE user_id = ? AND last_seen_at >= ? AND created_at >= ? ORDER BY created_at DESC, id DESC LIMIT 1000",
  getSession: "SELECT * FROM sessions WHERE digest = ?",
  touchSession: "UPDATE sessions SET last_seen_at = ? WHERE digest = ?",
  deleteSession: "DELETE FROM sessions WHERE digest = ?",
  // The cap (docs/dashboard.md): keeps the newest `limit` other sessions of the user besides the new one.
  trimUserSessions: `DELETE FROM sessions WHERE user_id = ? AND digest <> ? AND digest NOT IN
    (SELECT digest FROM sessions WHERE user_id = ? AND digest <> ? ORDER BY created_at DESC, last_seen_at DESC, digest DESC LIMIT ?)`,
  deleteExpiredSessions: "DELETE FROM sessions WHERE last_seen_at < ? OR created_at < ?",
  pendingForKey: "SELECT 1 AS ok FROM key_requests WHERE sandbox_key_id = ? AND status = 'pending'",
  insertKeyRequest: `INSERT INTO key_requests (id, sandbox_key_id, owner_type, owner_id, requested_by_type, requested_by_id, reason, status,
    created_at, decided_at, decided_by, decision_reason, issued_key_id, claimed_at, asked) VALUES (${marks(15)})`,
  getKeyRequest: "SELECT * FROM key_requests WHERE id = ?",
  approve:
    "UPDATE key_requests SET status = 'approved', decided_at = ?, decided_by = ?, issued_key_id = ? WHERE id = ? AND status = 'pending'",
  reject:
    "UPDATE key_requests SET status = 'rejected', decided_at = ?, decided_by = ?, decision_reason = ? WHERE id = ? AND status = 'pending'",
  claim: "UPDATE key_requests SET claimed_at = ? WHERE id = ? AND status = 'approved' AND claimed_at IS NULL",
  // The pickup: only a key still awaiting it, and not revoked meanwhile (docs/authority.md).
  setKeySecret:
    "UPDATE keys SET digest = ?, hash_version = ?, ref = ?, updated_at = ?, awaiting_pickup = ? WHERE id = ? AND awaiting_pickup = ? AND revoked_at IS NULL",
} as const;

/** `UPDATE users SET …` for the changed fields, with its values (the id last). */
export function userUpdate(id: string, changes: UserChanges, now: number): { sql: string; values: unknown[] } {
  const set: string[] = ["updated_at = ?"];
  const values: unknown[] = [now];
  if (changes.disabled !== undefined) {
    set.push("disabled = ?");
    values.push(changes.disabled ? 1 : 0);
  }
  if (changes.role !== undefined) {
    set.push("role = ?");
    values.push(changes.role);
  }
  if (changes.passwordHash !== undefined) {
    set.push("password_hash = ?");
    values.push(changes.passwordHash);
  }
  if (changes.mustChangePassword !== undefined) {
    set.push("must_change_password = ?");
    values.push(changes.mustChangePassword ? 1 : 0);
  }
  return { sql: `UPDATE users SET ${set.join(", ")} WHERE id = ?`, values: [...values, id] };
}

/**
 * Whether a user change must end the user's sessions (docs/security.md, check 21), and with them
 * the user's outstanding invite or reset link: a disabled person, or a new password, leaves none.
 */
export const endsSessions = (changes: UserChanges): boolean => changes.disabled === true || changes.passwordHash !== undefined;

/** WHERE clause (and its values) for a user listing or count. */
function userWhere(filter: UserListFilter, after: UserCursor | null): { clause: string; values: unknown[] } {
  const where: string[] = [];
  const values: unknown[] = [];
  if (filter.search) {
    // Emails are stored lower-cased (normalizeEmail), so LIKE with a lower-cased pattern is
    // case-insensitive on both databases, with the same folding as the stored emails.
    const email = "email LIKE ? ESCAPE '\\'";
    where.push(filter.search.id ? `(${email} OR id = ?)` : email);
    values.push(containsPattern(filter.search.email.toLowerCase()));
    if (filter.search.id) values.push(filter.search.id);
  }
  if (filter.role) {
    where.push("role = ?");
    values.push(filter.role);
  }
  if (filter.disabled !== undefined) {
    // The column is 0/1 on both databases.
    where.push(`disabled = ${filter.disabled ? 1 : 0}`);
  }
  if (after) {
    where.push("(created_at > ? OR (created_at = ? AND id > ?))");
    values.push(after.createdAt, after.createdAt, after.id);
  }
  return { clause: where.length > 0 ? `WHERE ${where.join(" AND ")}` : "", values };
}

/** `SELECT … FROM users` for a filter and page, oldest first (`limit + 1` rows: the extra one says a next page exists). */
export function userQuery(filter: UserListFilter, limit: number, after: UserCursor | null): { sql: string; values: unknown[] } {
  const { clause, values } = userWhere(filter, after);
  return { sql: `SELECT * FROM users ${clause} ORDER BY created_at, id LIMIT ?`, values: [...values, limit + 1] };
}

export function userCountQuery(filter: UserListFilter): { sql: string; values: unknown[] } {
  const { clause, values } = userWhere(filter, null);
  return { sql: `SELECT COUNT(*) AS n FROM users ${clause}`, values };
}

/** The page and the cursor after it, from `limit + 1` rows. */
export function pageOfUsers(rows: UserRow[], limit: number): { users: UserRecord[]; next: UserCursor | null } {
  const users = rows.slice(0, limit).map(rowToUser);
  const last = users[users.length - 1];
  return { users, next: rows.length > limit && last ? { createdAt: last.createdAt, id: last.id } : null };
}

/** `DELETE FROM sessions …` for the sessions of a user that `which` names. */
export function endSessionsQuery(userId: string, which: EndSessions): { sql: string; values: unknown[] } {
  let sql = "DELETE FROM sessions WHERE user_id = ?";
  const values: unknown[] = [userId];
  if (which.sessionId !== undefined) {
    sql += " AND id = ?";
    values.push(which.sessionId);
  }
  if (which.exceptDigest !== undefined) {
    sql += " AND digest <> ?";
    values.push(which.exceptDigest);
  }
  return { sql, values };
}

/** `SELECT … FROM key_requests` for a filter and page, newest first. */
export function keyRequestQuery(
  filter: KeyRequestFilter,
  limit: number,
  after: KeyRequestCursor | null,
): { sql: string; values: unknown[] } {
  const where: string[] = [];
  const values: unknown[] = [];
  const ownerType = filter.owner?.type ?? filter.ownerType;
  const ownerId = filter.owner?.id ?? filter.ownerId;
  if (ownerType) {
    where.push("owner_type = ?");
    values.push(ownerType);
    // Every type spelled out: the owner index leads with the type, and an owner id alone would scan.
  } else if (ownerId) where.push("owner_type IN ('user', 'application', 'organization')");
  if (ownerId) {
    where.push("owner_id = ?");
    values.push(ownerId);
  }
  if (filter.status) {
    where.push("status = ?");
    values.push(filter.status);
  }
  if (after) {
    where.push("(created_at < ? OR (created_at = ? AND id < ?))");
    values.push(after.createdAt, after.createdAt, after.id);
  }
  const clause = where.length > 0 ? `WHERE ${where.join(" AND ")}` : "";
  return { sql: `SELECT * FROM key_requests ${clause} ORDER BY created_at DESC, id DESC LIMIT ?`, values: [...values, limit + 1] };
}

/** The page and the cursor after it, from `limit + 1` rows. */
export function pageOfKeyRequests(rows: KeyRequestRow[], limit: number) {
  const requests = rows.slice(0, limit).map(rowToKeyRequest);
  const last = requests[requests.length - 1];
  return { requests, next: rows.length > limit && last ? { createdAt: last.createdAt, id: last.id } : null };
}

/** `?, ?, ?` → `$1, $2, $3` for PostgreSQL. */
export function numberPlaceholders(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/** The accounts schema, one statement list for both databases (types chosen to mean the same in each). */
export function accountsSchema(bigint: "INTEGER" | "BIGINT", strict: string): string {
  return `
  CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at ${bigint} NOT NULL,
    updated_at ${bigint} NOT NULL
  )${strict};
  CREATE TABLE sessions (
    digest TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    csrf_token TEXT NOT NULL,
    created_at ${bigint} NOT NULL,
    last_seen_at ${bigint} NOT NULL,
    ip TEXT,
    user_agent TEXT
  )${strict};
  CREATE INDEX sessions_user ON sessions (user_id);
  CREATE TABLE setup_token (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    digest TEXT NOT NULL,
    expires_at ${bigint} NOT NULL
  )${strict};
  CREATE TABLE key_requests (
    id TEXT PRIMARY KEY,
    sandbox_key_id TEXT NOT NULL,
    owner_type TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    requested_by_type TEXT NOT NULL,
    requested_by_id TEXT NOT NULL,
    reason TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    created_at ${bigint} NOT NULL,
    decided_at ${bigint},
    decided_by TEXT,
    decision_reason TEXT,
    issued_key_id TEXT,
    claimed_at ${bigint}
  )${strict};
  CREATE INDEX key_requests_owner ON key_requests (owner_type, owner_id, created_at DESC, id DESC);
  CREATE INDEX key_requests_created ON key_requests (created_at DESC, id DESC);
  CREATE UNIQUE INDEX key_requests_one_pending ON key_requests (sandbox_key_id) WHERE status = 'pending';
  `;
}

/**
 * Requests record what was asked when they are made (docs/authority.md). Keys issued by an
 * approval and not yet claimed become `awaiting_pickup`.
 */
export function accountsAuthoritySchema(trueValue: string, falseValue: string): string {
  return `
  ALTER TABLE key_requests ADD COLUMN asked TEXT;
  UPDATE keys SET awaiting_pickup = ${trueValue} WHERE awaiting_pickup = ${falseValue} AND id IN
    (SELECT issued_key_id FROM key_requests WHERE status = 'approved' AND claimed_at IS NULL AND issued_key_id IS NOT NULL);
  `;
}

/**
 * Public session ids and user paging (docs/api.md): every session gets a random `ses_…` id,
 * independent of its token (existing sessions get one here, so nobody is signed out by the
 * upgrade), and users are paged in creation order by an index. `fill` is the dialect's
 * expression for a fresh random id.
 */
export function sessionIdsSchema(fill: string): string {
  return `
  ALTER TABLE sessions ADD COLUMN id TEXT;
  UPDATE sessions SET id = ${fill} WHERE id IS NULL;
  CREATE UNIQUE INDEX sessions_id ON sessions (id);
  CREATE INDEX sessions_user_created ON sessions (user_id, created_at DESC);
  CREATE INDEX users_created ON users (created_at, id);
  `;
}

/**
 * Invites and password resets (docs/dashboard.md): a user may have no password yet (invited), an
 * administrator may require a new one, and one-time links are stored by the digest of their token.
 */
export function userLinksSchema(bigint: "INTEGER" | "BIGINT", strict: string): string {
  return `
  ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;
  CREATE TABLE user_links (
    digest TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    purpose TEXT NOT NULL CHECK (purpose IN ('invite', 'reset')),
    created_at ${bigint} NOT NULL,
    expires_at ${bigint} NOT NULL
  )${strict};
  CREATE INDEX user_links_user ON user_links (user_id);
  CREATE INDEX user_links_expiry ON user_links (expires_at);
  `;
}
