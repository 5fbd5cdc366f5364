import type Database from "better-sqlite3";
import type { KeyRequestRecord, SessionRecord, UserLinkPurpose, UserLinkRecord, UserRecord } from "../../core/accounts.js";
import { AUDIT_GENESIS_HASH } from "../../core/audit-chain.js";
import { KeywardError } from "../../core/errors.js";
import type { AuditEvent, KeyRecord } from "../../core/model.js";
import type { MembershipRecord } from "../../core/organizations.js";
import type {
  AccountStore,
  ClaimedSecret,
  DecisionResult,
  EndSessions,
  KeyRequestCursor,
  KeyRequestFilter,
  MembershipChange,
  OidcFlowRecord,
  OidcLinkRecord,
  UserChanges,
  UserCursor,
  UserListFilter,
} from "../../ports/account-store.js";
import {
  accountsAuthoritySchema,
  accountsSchema,
  endSessionsQuery,
  endsSessions,
  type KeyRequestRow,
  keyRequestQuery,
  keyRequestToValues,
  pageOfKeyRequests,
  pageOfUsers,
  rowToKeyRequest,
  rowToSession,
  rowToUser,
  rowToUserLink,
  type SessionRow,
  ACCOUNT_SQL as SQL,
  sessionIdsSchema,
  sessionToValues,
  type UserLinkRow,
  type UserRow,
  userCountQuery,
  userLinksSchema,
  userLinkToValues,
  userQuery,
  userToValues,
  userUpdate,
} from "../account-rows.js";
import { MEMBERSHIP_SQL, type MembershipRow, membershipSchema, membershipToValues, rowToMembership } from "../membership-rows.js";
import {
  OIDC_SQL,
  type OidcFlowRow,
  type OidcLinkRow,
  oidcFlowToValues,
  oidcLinkToValues,
  oidcSchema,
  rowToOidcFlow,
  rowToOidcLink,
} from "../oidc-rows.js";
import { AUDIT_INSERT_COLUMNS, chainedAuditRowValues } from "../rows.js";
import { applySqliteMigrations, type SqliteMigration } from "./migrations.js";
import { prepareKeyWrites } from "./sqlite-key-rows.js";

export const ACCOUNTS_SQLITE_MIGRATIONS: readonly SqliteMigration[] = [
  { name: "accounts/0001_users_sessions_key_requests", sql: accountsSchema("INTEGER", " STRICT") },
  { name: "accounts/0002_authority", sql: accountsAuthoritySchema("1", "0") },
  { name: "accounts/0003_user_links", sql: userLinksSchema("INTEGER", " STRICT") },
  { name: "accounts/0004_session_ids", sql: sessionIdsSchema("'ses_' || lower(hex(randomblob(16)))") },
  { name: "accounts/0005_oidc", sql: oidcSchema("INTEGER", " STRICT") },
  { name: "accounts/0006_organization_members", sql: membershipSchema("INTEGER", " STRICT") },
];

/**
 * AccountStore on the SQLite database of a SqliteKeyStore (same connection), so a key-request
 * approval inserts the key, updates the request and appends both audit events in one
 * immediate transaction.
 */
export class SqliteAccountStore implements AccountStore {
  constructor(private readonly db: Database.Database) {}

  private appendChained(event: AuditEvent): void {
    const last = this.db.prepare<[], { hash: string }>("SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1").get();
    this.db
      .prepare(`INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS}) VALUES (${AUDIT_INSERT_COLUMNS.split(",").map(() => "?")})`)
      .run(...chainedAuditRowValues(event, last?.hash ?? AUDIT_GENESIS_HASH));
  }

  private write<T>(work: () => T): T {
    return this.db.transaction(work).immediate();
  }

  async migrate(): Promise<void> {
    applySqliteMigrations(this.db, ACCOUNTS_SQLITE_MIGRATIONS);
  }

  async countUsers(filter?: UserListFilter): Promise<number> {
    if (!filter) return (this.db.prepare(SQL.countUsers).get() as { n: number }).n;
    const query = userCountQuery(filter);
    return (this.db.prepare(query.sql).get(...query.values) as { n: number }).n;
  }

  async insertUser(user: UserRecord, audit: AuditEvent | null): Promise<boolean> {
    return this.write(() => {
      if (this.db.prepare(SQL.insertUser).run(...userToValues(user)).changes === 0) return false;
      if (audit) this.appendChained(audit);
      return true;
    });
  }

  async getUser(id: string): Promise<UserRecord | null> {
    const row = this.db.prepare<[string], UserRow>(SQL.getUser).get(id);
    return row ? rowToUser(row) : null;
  }

  async getUserByEmail(email: string): Promise<UserRecord | null> {
    const row = this.db.prepare<[string], UserRow>(SQL.getUserByEmail).get(email);
    return row ? rowToUser(row) : null;
  }

  async listUsers(filter: UserListFilter, limit: number, after: UserCursor | null) {
    const query = userQuery(filter, limit, after);
    return pageOfUsers(this.db.prepare<unknown[], UserRow>(query.sql).all(...query.values), limit);
  }

  async updateUser(id: string, changes: UserChanges, audit: AuditEvent, now: number): Promise<UserRecord | null> {
    return this.write(() => {
      const update = userUpdate(id, changes, now);
      if (this.db.prepare(update.sql).run(...update.values).changes === 0) return null;
      if (endsSessions(changes)) {
        this.db.prepare(SQL.deleteUserSessions).run(id);
        this.db.prepare(SQL.deleteUserLinks).run(id);
      }
      this.appendChained(audit);
      return rowToUser(this.db.prepare<[string], UserRow>(SQL.getUser).get(id) as UserRow);
    });
  }

  async insertUserLink(link: UserLinkRecord, audit: AuditEvent): Promise<void> {
    this.write(() => {
      this.db.prepare(SQL.deleteUserLinks).run(link.userId);
      this.db.prepare(SQL.insertUserLink).run(...userLinkToValues(link));
      this.appendChained(audit);
    });
  }

  async getUserLink(digest: string): Promise<UserLinkRecord | null> {
    const row = this.db.prepare<[string], UserLinkRow>(SQL.getUserLink).get(digest);
    return row ? rowToUserLink(row) : null;
  }

  async consumeUserLink(
    digest: string,
    userId: string,
    purpose: UserLinkPurpose,
    passwordHash: string,
    audit: AuditEvent,
    now: number,
  ): Promise<UserRecord | null> {
    return this.write(() => {
      const user = this.db.prepare<[string], UserRow>(SQL.getUser).get(userId);
      if (!user || Number(user.disabled) === 1) return null;
      if (this.db.prepare(SQL.consumeUserLink).run(digest, userId, purpose, now).changes === 0) return null;
      const update = userUpdate(userId, { passwordHash, mustChangePassword: false }, now);
      this.db.prepare(update.sql).run(...update.values);
      this.db.prepare(SQL.deleteUserSessions).run(userId);
      this.db.prepare(SQL.deleteUserLinks).run(userId);
      this.appendChained(audit);
      return rowToUser(this.db.prepare<[string], UserRow>(SQL.getUser).get(userId) as UserRow);
    });
  }

  async deleteExpiredUserLinks(now: number): Promise<number> {
    return this.db.prepare(SQL.deleteExpiredUserLinks).run(now).changes;
  }

  async setSetupToken(digest: string, expiresAt: number): Promise<void> {
    this.write(() => {
      this.db.prepare(SQL.setSetupToken).run(digest, expiresAt);
    });
  }

  async createFirstAdmin(tokenDigest: string, user: UserRecord, audit: AuditEvent, now: number): Promise<boolean> {
    return this.write(() => {
      if (!this.db.prepare(SQL.matchSetupToken).get(tokenDigest, now)) return false;
      if ((this.db.prepare(SQL.countUsers).get() as { n: number }).n > 0) return false;
      this.db.prepare(SQL.insertUser).run(...userToValues(user));
      this.db.prepare(SQL.deleteSetupToken).run();
      this.appendChained(audit);
      return true;
    });
  }

  async insertSession(session: SessionRecord, audit: AuditEvent, maxPerUser?: number): Promise<void> {
    this.write(() => {
      this.db.prepare(SQL.insertSession).run(...sessionToValues(session));
      if (maxPerUser !== undefined)
        this.db
          .prepare(SQL.trimUserSessions)
          .run(session.userId, session.digest, session.userId, session.digest, Math.max(0, maxPerUser - 1));
      this.appendChained(audit);
    });
  }

  async getSession(digest: string): Promise<SessionRecord | null> {
    const row = this.db.prepare<[string], SessionRow>(SQL.getSession).get(digest);
    return row ? rowToSession(row) : null;
  }

  async touchSession(digest: string, at: number): Promise<void> {
    this.db.prepare(SQL.touchSession).run(at, digest);
  }

  async deleteSession(digest: string): Promise<void> {
    this.db.prepare(SQL.deleteSession).run(digest);
  }

  async listUserSessions(userId: string, idleBefore: number, createdBefore: number): Promise<SessionRecord[]> {
    return this.db.prepare<unknown[], SessionRow>(SQL.listUserSessions).all(userId, idleBefore, createdBefore).map(rowToSession);
  }

  async endUserSessions(userId: string, which: EndSessions, audit: (ended: number) => AuditEvent): Promise<number> {
    return this.write(() => {
      const query = endSessionsQuery(userId, which);
      const ended = this.db.prepare(query.sql).run(...query.values).changes;
      if (ended > 0) this.appendChained(audit(ended));
      return ended;
    });
  }

  async deleteExpiredSessions(idleBefore: number, createdBefore: number): Promise<number> {
    return this.db.prepare(SQL.deleteExpiredSessions).run(idleBefore, createdBefore).changes;
  }

  async insertKeyRequest(request: KeyRequestRecord, audit: AuditEvent): Promise<"created" | "conflict"> {
    return this.write(() => {
      if (this.db.prepare(SQL.pendingForKey).get(request.sandboxKeyId)) return "conflict";
      this.db.prepare(SQL.insertKeyRequest).run(...keyRequestToValues(request));
      this.appendChained(audit);
      return "created";
    });
  }

  async getKeyRequest(id: string): Promise<KeyRequestRecord | null> {
    const row = this.db.prepare<[string], KeyRequestRow>(SQL.getKeyRequest).get(id);
    return row ? rowToKeyRequest(row) : null;
  }

  async listKeyRequests(filter: KeyRequestFilter, limit: number, after: KeyRequestCursor | null) {
    const query = keyRequestQuery(filter, limit, after);
    return pageOfKeyRequests(this.db.prepare<unknown[], KeyRequestRow>(query.sql).all(...query.values), limit);
  }

  private decide(id: string, apply: () => number, after: () => void): DecisionResult {
    return this.write((): DecisionResult => {
      if (apply() === 0) return this.db.prepare(SQL.getKeyRequest).get(id) ? "conflict" : "not_found";
      after();
      return "done";
    });
  }

  async approveKeyRequest(id: string, decidedBy: string, at: number, key: KeyRecord, audits: AuditEvent[]): Promise<DecisionResult> {
    return this.decide(
      id,
      () => this.db.prepare(SQL.approve).run(at, decidedBy, key.id, id).changes,
      () => {
        this.db
          .prepare("INSERT INTO owners (type, id, disabled, created_at) VALUES (?, ?, 0, ?) ON CONFLICT DO NOTHING")
          .run(key.owner.type, key.owner.id, at);
        prepareKeyWrites(this.db).insert(key);
        for (const audit of audits) this.appendChained(audit);
      },
    );
  }

  async rejectKeyRequest(id: string, decidedBy: string, at: number, reason: string, audit: AuditEvent): Promise<DecisionResult> {
    return this.decide(
      id,
      () => this.db.prepare(SQL.reject).run(at, decidedBy, reason, id).changes,
      () => this.appendChained(audit),
    );
  }

  async claimKeyRequest(id: string, at: number, secret: ClaimedSecret, audit: AuditEvent): Promise<DecisionResult> {
    return this.decide(
      id,
      () => this.db.prepare(SQL.claim).run(at, id).changes,
      () => {
        const request = this.db.prepare<[string], KeyRequestRow>(SQL.getKeyRequest).get(id) as KeyRequestRow;
        const picked = this.db
          .prepare(SQL.setKeySecret)
          .run(secret.digest, secret.hashVersion, secret.ref, at, 0, request.issued_key_id, 1);
        if (picked.changes === 0) throw new KeywardError("CONFLICT", "the issued key was revoked before it was picked up");
        this.appendChained(audit);
      },
    );
  }

  // ---------------------------------------------------------------- single sign-on (docs/sso.md)

  async getOidcLink(issuer: string, subject: string): Promise<OidcLinkRecord | null> {
    const row = this.db.prepare<[string, string], OidcLinkRow>(OIDC_SQL.getLink).get(issuer, subject);
    return row ? rowToOidcLink(row) : null;
  }

  async insertOidcLink(link: OidcLinkRecord, user: UserRecord | null, audits: AuditEvent[]): Promise<"created" | "conflict"> {
    const conflict = new Error("oidc link conflict");
    try {
      return this.write(() => {
        if (user && this.db.prepare(SQL.insertUser).run(...userToValues(user)).changes === 0) throw conflict;
        // A user linked to another subject of this issuer breaks UNIQUE (issuer, user_id): a conflict too.
        let inserted = 0;
        try {
          inserted = this.db.prepare(OIDC_SQL.insertLink).run(...oidcLinkToValues(link)).changes;
        } catch (error) {
          if ((error as { code?: string }).code?.startsWith("SQLITE_CONSTRAINT")) throw conflict;
          throw error;
        }
        if (inserted === 0) throw conflict;
        for (const audit of audits) this.appendChained(audit);
        return "created" as const;
      });
    } catch (error) {
      if (error === conflict) return "conflict";
      throw error;
    }
  }

  async insertOidcFlow(flow: OidcFlowRecord): Promise<void> {
    this.db.prepare(OIDC_SQL.insertFlow).run(...oidcFlowToValues(flow));
  }

  async takeOidcFlow(stateDigest: string): Promise<OidcFlowRecord | null> {
    const row = this.db.prepare<[string], OidcFlowRow>(OIDC_SQL.takeFlow).get(stateDigest);
    return row ? rowToOidcFlow(row) : null;
  }

  async deleteExpiredOidcFlows(now: number): Promise<number> {
    return this.db.prepare(OIDC_SQL.deleteExpiredFlows).run(now).changes;
  }

  // ---------------------------------------------------------------- organization members (docs/organizations.md)

  async getMembership(organizationId: string, userId: string): Promise<MembershipRecord | null> {
    const row = this.db.prepare<[string, string], MembershipRow>(MEMBERSHIP_SQL.get).get(organizationId, userId);
    return row ? rowToMembership(row) : null;
  }

  async listMembershipsOfUser(userId: string): Promise<MembershipRecord[]> {
    return this.db.prepare<[string], MembershipRow>(MEMBERSHIP_SQL.ofUser).all(userId).map(rowToMembership);
  }

  async listOrganizationMembers(organizationId: string): Promise<MembershipRecord[]> {
    return this.db.prepare<[string], MembershipRow>(MEMBERSHIP_SQL.ofOrganization).all(organizationId).map(rowToMembership);
  }

  async saveMembership(membership: MembershipRecord, audit: AuditEvent): Promise<MembershipChange> {
    return this.changeMembers(membership.organizationId, audit, () => {
      this.db.prepare(MEMBERSHIP_SQL.upsert).run(...membershipToValues(membership));
      return true;
    });
  }

  async removeMembership(organizationId: string, userId: string, audit: AuditEvent): Promise<MembershipChange> {
    return this.changeMembers(organizationId, audit, () => this.db.prepare(MEMBERSHIP_SQL.remove).run(organizationId, userId).changes > 0);
  }

  /** One change to an organization's members, refused when it would leave an organization that had an owner with none. */
  private changeMembers(organizationId: string, audit: AuditEvent, change: () => boolean): MembershipChange {
    const owners = () => (this.db.prepare(MEMBERSHIP_SQL.countOwners).get(organizationId) as { n: number }).n;
    const lastOwner = new Error("last owner");
    try {
      return this.write(() => {
        const before = owners();
        if (!change()) return "not_found" as const;
        if (before > 0 && owners() === 0) throw lastOwner;
        this.appendChained(audit);
        return "done" as const;
      });
    } catch (error) {
      if (error === lastOwner) return "last_owner";
      throw error;
    }
  }
}
