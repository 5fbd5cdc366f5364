import type pg from "pg";
import type { KeyRequestRecord, SessionRecord, UserLinkPurpose, UserLinkRecord, UserRecord } from "../../core/accounts.js";
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
  ACCOUNT_SQL,
  accountsAuthoritySchema,
  accountsSchema,
  endSessionsQuery,
  endsSessions,
  type KeyRequestRow,
  keyRequestQuery,
  keyRequestToValues,
  numberPlaceholders,
  pageOfKeyRequests,
  pageOfUsers,
  rowToKeyRequest,
  rowToSession,
  rowToUser,
  rowToUserLink,
  type SessionRow,
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
import { keyToRowValues } from "../rows.js";
import { applyPostgresMigrations, type PostgresMigration } from "./migrations.js";
import { appendChained, ENSURE_OWNER, INSERT_KEY, inTransaction } from "./postgres-key-store.js";

export const ACCOUNTS_POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  { name: "accounts/0001_users_sessions_key_requests", sql: accountsSchema("BIGINT", "") },
  { name: "accounts/0002_authority", sql: accountsAuthoritySchema("true", "false") },
  { name: "accounts/0003_user_links", sql: userLinksSchema("BIGINT", "") },
  { name: "accounts/0004_session_ids", sql: sessionIdsSchema("'ses_' || replace(gen_random_uuid()::text, '-', '')") },
  { name: "accounts/0005_oidc", sql: oidcSchema("BIGINT", "") },
  { name: "accounts/0006_organization_members", sql: membershipSchema("BIGINT", "") },
];

const MEMBERSHIP_PG = Object.fromEntries(Object.entries(MEMBERSHIP_SQL).map(([name, sql]) => [name, numberPlaceholders(sql)])) as Record<
  keyof typeof MEMBERSHIP_SQL,
  string
>;

const SQL = Object.fromEntries(Object.entries(ACCOUNT_SQL).map(([name, sql]) => [name, numberPlaceholders(sql)])) as Record<
  keyof typeof ACCOUNT_SQL,
  string
>;

const OIDC_PG = Object.fromEntries(Object.entries(OIDC_SQL).map(([name, sql]) => [name, numberPlaceholders(sql)])) as Record<
  keyof typeof OIDC_SQL,
  string
>;

/** AccountStore on the pool of a PostgresKeyStore: approvals share one transaction with the key they issue. */
export class PostgresAccountStore implements AccountStore {
  constructor(private readonly pool: pg.Pool) {}

  private write<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, work);
  }

  private async one<T extends pg.QueryResultRow>(sql: string, values: unknown[]): Promise<T | undefined> {
    return (await this.pool.query<T>(sql, values)).rows[0];
  }

  async migrate(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await applyPostgresMigrations(client, ACCOUNTS_POSTGRES_MIGRATIONS);
    } finally {
      client.release();
    }
  }

  async countUsers(filter?: UserListFilter): Promise<number> {
    if (!filter) return Number((await this.one<{ n: string }>(SQL.countUsers, []))?.n ?? 0);
    const query = userCountQuery(filter);
    return Number((await this.one<{ n: string }>(numberPlaceholders(query.sql), query.values))?.n ?? 0);
  }

  async insertUser(user: UserRecord, audit: AuditEvent | null): Promise<boolean> {
    return this.write(async (client) => {
      if ((await client.query(SQL.insertUser, userToValues(user))).rowCount === 0) return false;
      if (audit) await appendChained(client, audit);
      return true;
    });
  }

  async getUser(id: string): Promise<UserRecord | null> {
    const row = await this.one<UserRow>(SQL.getUser, [id]);
    return row ? rowToUser(row) : null;
  }

  async getUserByEmail(email: string): Promise<UserRecord | null> {
    const row = await this.one<UserRow>(SQL.getUserByEmail, [email]);
    return row ? rowToUser(row) : null;
  }

  async listUsers(filter: UserListFilter, limit: number, after: UserCursor | null) {
    const query = userQuery(filter, limit, after);
    return pageOfUsers((await this.pool.query<UserRow>(numberPlaceholders(query.sql), query.values)).rows, limit);
  }

  async updateUser(id: string, changes: UserChanges, audit: AuditEvent, now: number): Promise<UserRecord | null> {
    return this.write(async (client) => {
      const update = userUpdate(id, changes, now);
      const row = (await client.query<UserRow>(`${numberPlaceholders(update.sql)} RETURNING *`, update.values)).rows[0];
      if (!row) return null;
      if (endsSessions(changes)) {
        await client.query(SQL.deleteUserSessions, [id]);
        await client.query(SQL.deleteUserLinks, [id]);
      }
      await appendChained(client, audit);
      return rowToUser(row);
    });
  }

  async insertUserLink(link: UserLinkRecord, audit: AuditEvent): Promise<void> {
    await this.write(async (client) => {
      // Locking the user's row serialises concurrent issues for one user: one link survives.
      await client.query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", [link.userId]);
      await client.query(SQL.deleteUserLinks, [link.userId]);
      await client.query(SQL.insertUserLink, userLinkToValues(link));
      await appendChained(client, audit);
    });
  }

  async getUserLink(digest: string): Promise<UserLinkRecord | null> {
    const row = await this.one<UserLinkRow>(SQL.getUserLink, [digest]);
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
    return this.write(async (client) => {
      const user = (await client.query<UserRow>("SELECT * FROM users WHERE id = $1 FOR UPDATE", [userId])).rows[0];
      if (!user || Number(user.disabled) === 1) return null;
      if (((await client.query(SQL.consumeUserLink, [digest, userId, purpose, now])).rowCount ?? 0) === 0) return null;
      const update = userUpdate(userId, { passwordHash, mustChangePassword: false }, now);
      const row = (await client.query<UserRow>(`${numberPlaceholders(update.sql)} RETURNING *`, update.values)).rows[0] as UserRow;
      await client.query(SQL.deleteUserSessions, [userId]);
      await client.query(SQL.deleteUserLinks, [userId]);
      await appendChained(client, audit);
      return rowToUser(row);
    });
  }

  async deleteExpiredUserLinks(now: number): Promise<number> {
    return (await this.pool.query(SQL.deleteExpiredUserLinks, [now])).rowCount ?? 0;
  }

  async setSetupToken(digest: string, expiresAt: number): Promise<void> {
    await this.write(async (client) => {
      await client.query(SQL.setSetupToken, [digest, expiresAt]);
    });
  }

  async createFirstAdmin(tokenDigest: string, user: UserRecord, audit: AuditEvent, now: number): Promise<boolean> {
    return this.write(async (client) => {
      // The token row is the latch: locking it serialises concurrent setups.
      const token = await client.query("SELECT digest FROM setup_token WHERE id = 1 FOR UPDATE");
      if (token.rowCount === 0) return false;
      if ((await client.query(SQL.matchSetupToken, [tokenDigest, now])).rowCount === 0) return false;
      if (Number((await client.query<{ n: string }>(SQL.countUsers)).rows[0]?.n ?? 0) > 0) return false;
      await client.query(SQL.insertUser, userToValues(user));
      await client.query(SQL.deleteSetupToken);
      await appendChained(client, audit);
      return true;
    });
  }

  async insertSession(session: SessionRecord, audit: AuditEvent, maxPerUser?: number): Promise<void> {
    await this.write(async (client) => {
      // Locking the user's row serialises concurrent sign-ins of one user, so the cap is exact.
      if (maxPerUser !== undefined) await client.query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", [session.userId]);
      await client.query(SQL.insertSession, sessionToValues(session));
      if (maxPerUser !== undefined)
        await client.query(SQL.trimUserSessions, [
          session.userId,
          session.digest,
          session.userId,
          session.digest,
          Math.max(0, maxPerUser - 1),
        ]);
      await appendChained(client, audit);
    });
  }

  async getSession(digest: string): Promise<SessionRecord | null> {
    const row = await this.one<SessionRow>(SQL.getSession, [digest]);
    return row ? rowToSession(row) : null;
  }

  async touchSession(digest: string, at: number): Promise<void> {
    await this.pool.query(SQL.touchSession, [at, digest]);
  }

  async deleteSession(digest: string): Promise<void> {
    await this.pool.query(SQL.deleteSession, [digest]);
  }

  async listUserSessions(userId: string, idleBefore: number, createdBefore: number): Promise<SessionRecord[]> {
    return (await this.pool.query<SessionRow>(SQL.listUserSessions, [userId, idleBefore, createdBefore])).rows.map(rowToSession);
  }

  async endUserSessions(userId: string, which: EndSessions, audit: (ended: number) => AuditEvent): Promise<number> {
    return this.write(async (client) => {
      const query = endSessionsQuery(userId, which);
      const ended = (await client.query(numberPlaceholders(query.sql), query.values)).rowCount ?? 0;
      if (ended > 0) await appendChained(client, audit(ended));
      return ended;
    });
  }

  async deleteExpiredSessions(idleBefore: number, createdBefore: number): Promise<number> {
    return (await this.pool.query(SQL.deleteExpiredSessions, [idleBefore, createdBefore])).rowCount ?? 0;
  }

  async insertKeyRequest(request: KeyRequestRecord, audit: AuditEvent): Promise<"created" | "conflict"> {
    try {
      return await this.write(async (client) => {
        // The partial unique index on pending requests is the arbiter between concurrent requests.
        await client.query(SQL.insertKeyRequest, keyRequestToValues(request));
        await appendChained(client, audit);
        return "created" as const;
      });
    } catch (error) {
      if ((error as { code?: string }).code === "23505") return "conflict";
      throw error;
    }
  }

  async getKeyRequest(id: string): Promise<KeyRequestRecord | null> {
    const row = await this.one<KeyRequestRow>(SQL.getKeyRequest, [id]);
    return row ? rowToKeyRequest(row) : null;
  }

  async listKeyRequests(filter: KeyRequestFilter, limit: number, after: KeyRequestCursor | null) {
    const query = keyRequestQuery(filter, limit, after);
    return pageOfKeyRequests((await this.pool.query<KeyRequestRow>(numberPlaceholders(query.sql), query.values)).rows, limit);
  }

  private decide(
    id: string,
    apply: (client: pg.PoolClient) => Promise<number | null>,
    after: (client: pg.PoolClient) => Promise<void>,
  ): Promise<DecisionResult> {
    return this.write(async (client): Promise<DecisionResult> => {
      if (((await apply(client)) ?? 0) === 0) {
        return (await client.query(SQL.getKeyRequest, [id])).rowCount === 0 ? "not_found" : "conflict";
      }
      await after(client);
      return "done";
    });
  }

  async approveKeyRequest(id: string, decidedBy: string, at: number, key: KeyRecord, audits: AuditEvent[]): Promise<DecisionResult> {
    return this.decide(
      id,
      async (client) => (await client.query(SQL.approve, [at, decidedBy, key.id, id])).rowCount,
      async (client) => {
        await client.query(ENSURE_OWNER, [key.owner.type, key.owner.id, at]);
        await client.query(INSERT_KEY, keyToRowValues(key, false));
        for (const audit of audits) await appendChained(client, audit);
      },
    );
  }

  async rejectKeyRequest(id: string, decidedBy: string, at: number, reason: string, audit: AuditEvent): Promise<DecisionResult> {
    return this.decide(
      id,
      async (client) => (await client.query(SQL.reject, [at, decidedBy, reason, id])).rowCount,
      (client) => appendChained(client, audit),
    );
  }

  async claimKeyRequest(id: string, at: number, secret: ClaimedSecret, audit: AuditEvent): Promise<DecisionResult> {
    return this.decide(
      id,
      async (client) => (await client.query(SQL.claim, [at, id])).rowCount,
      async (client) => {
        const request = (await client.query<KeyRequestRow>(SQL.getKeyRequest, [id])).rows[0] as KeyRequestRow;
        const picked = await client.query(SQL.setKeySecret, [
          secret.digest,
          secret.hashVersion,
          secret.ref,
          at,
          false,
          request.issued_key_id,
          true,
        ]);
        if (picked.rowCount === 0) throw new KeywardError("CONFLICT", "the issued key was revoked before it was picked up");
        await appendChained(client, audit);
      },
    );
  }

  // ---------------------------------------------------------------- single sign-on (docs/sso.md)

  async getOidcLink(issuer: string, subject: string): Promise<OidcLinkRecord | null> {
    const row = await this.one<OidcLinkRow>(OIDC_PG.getLink, [issuer, subject]);
    return row ? rowToOidcLink(row) : null;
  }

  async insertOidcLink(link: OidcLinkRecord, user: UserRecord | null, audits: AuditEvent[]): Promise<"created" | "conflict"> {
    const conflict = new Error("oidc link conflict");
    try {
      return await this.write(async (client) => {
        if (user && (await client.query(SQL.insertUser, userToValues(user))).rowCount === 0) throw conflict;
        // ON CONFLICT DO NOTHING covers both keys: the subject, and one subject per user and issuer.
        if ((await client.query(OIDC_PG.insertLink, oidcLinkToValues(link))).rowCount === 0) throw conflict;
        for (const audit of audits) await appendChained(client, audit);
        return "created" as const;
      });
    } catch (error) {
      if (error === conflict) return "conflict";
      throw error;
    }
  }

  async insertOidcFlow(flow: OidcFlowRecord): Promise<void> {
    await this.pool.query(OIDC_PG.insertFlow, oidcFlowToValues(flow));
  }

  async takeOidcFlow(stateDigest: string): Promise<OidcFlowRecord | null> {
    const row = await this.one<OidcFlowRow>(OIDC_PG.takeFlow, [stateDigest]);
    return row ? rowToOidcFlow(row) : null;
  }

  async deleteExpiredOidcFlows(now: number): Promise<number> {
    return (await this.pool.query(OIDC_PG.deleteExpiredFlows, [now])).rowCount ?? 0;
  }

  // ---------------------------------------------------------------- organization members (docs/organizations.md)

  async getMembership(organizationId: string, userId: string): Promise<MembershipRecord | null> {
    const row = await this.one<MembershipRow>(MEMBERSHIP_PG.get, [organizationId, userId]);
    return row ? rowToMembership(row) : null;
  }

  async listMembershipsOfUser(userId: string): Promise<MembershipRecord[]> {
    return (await this.pool.query<MembershipRow>(MEMBERSHIP_PG.ofUser, [userId])).rows.map(rowToMembership);
  }

  async listOrganizationMembers(organizationId: string): Promise<MembershipRecord[]> {
    return (await this.pool.query<MembershipRow>(MEMBERSHIP_PG.ofOrganization, [organizationId])).rows.map(rowToMembership);
  }

  async saveMembership(membership: MembershipRecord, audit: AuditEvent): Promise<MembershipChange> {
    return this.changeMembers(membership.organizationId, audit, async (client) => {
      await client.query(MEMBERSHIP_PG.upsert, membershipToValues(membership));
      return true;
    });
  }

  async removeMembership(organizationId: string, userId: string, audit: AuditEvent): Promise<MembershipChange> {
    return this.changeMembers(
      organizationId,
      audit,
      async (client) => ((await client.query(MEMBERSHIP_PG.remove, [organizationId, userId])).rowCount ?? 0) > 0,
    );
  }

  /**
   * One change to an organization's members, refused when it would leave an organization that
   * had an owner with none. A transaction-scoped advisory lock on the organization serialises
   * changes to it, so two owners demoting each other at once cannot both succeed.
   */
  private async changeMembers(
    organizationId: string,
    audit: AuditEvent,
    change: (client: pg.PoolClient) => Promise<boolean>,
  ): Promise<MembershipChange> {
    const lastOwner = new Error("last owner");
    const owners = async (client: pg.PoolClient) =>
      Number((await client.query<{ n: string }>(MEMBERSHIP_PG.countOwners, [organizationId])).rows[0]?.n ?? 0);
    try {
      return await this.write(async (client) => {
        await client.query("SELECT pg_advisory_xact_lock(hashtext('keyward_org:' || $1))", [organizationId]);
        const before = await owners(client);
        if (!(await change(client))) return "not_found" as const;
        if (before > 0 && (await owners(client)) === 0) throw lastOwner;
        await appendChained(client, audit);
        return "done" as const;
      });
    } catch (error) {
      if (error === lastOwner) return "last_owner";
      throw error;
    }
  }
}
