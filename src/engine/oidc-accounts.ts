import { NO_PASSWORD, normalizeEmail, type SessionRecord, USER_ID_KIND, type UserRecord, type UserRole } from "../core/accounts.js";
import type { AuditEvent, RequestContext } from "../core/model.js";
import { generateId } from "../core/random.js";
import { type Accounts, newSession } from "./accounts.js";
import { buildAuditEvent } from "./audit.js";

/** What the identity provider says about the person, after the ID token was validated (docs/sso.md). */
export interface OidcIdentity {
  /** The provider's issuer identifier (the validated `iss`). */
  issuer: string;
  subject: string;
  email: string | null;
  /** `email_verified` as sent; undefined when the provider does not send it. */
  emailVerified: boolean | undefined;
  /** The groups claim's values (absent: none). */
  groups: string[];
}

export interface OidcMappingRules {
  /** A user in one of these groups is an admin, else a member; empty: the provider does not manage roles. */
  adminGroups: readonly string[];
  /** Lower-cased email domains allowed to sign in; empty: any. */
  allowedDomains: readonly string[];
}

/** Why a single sign-on was refused: the dashboard shows a message per reason (`/dashboard/#/signin?error=sso_<reason>`). */
export type OidcRefusal = "email_missing" | "email_unverified" | "domain_not_allowed" | "account_disabled" | "account_linked";

export class OidcSignInRefused extends Error {
  constructor(readonly reason: OidcRefusal) {
    super(`single sign-on refused: ${reason}`);
  }
}

const EMAIL = /^[^\s@<>"'`]{1,64}@[^\s@<>"'`]{1,190}\.[^\s@<>"'`]{1,63}$/;

/**
 * Dashboard sign-in through an OpenID Connect provider (docs/sso.md): maps a validated identity to
 * a user — by its (issuer, subject) link, else by a verified email to an existing user (linked
 * now), else a new user without a password — re-derives the role from the groups claim, and opens
 * a session exactly as a password sign-in does. Every change is audited in its own transaction.
 */
export class OidcAccounts {
  constructor(
    private readonly accounts: Accounts,
    private readonly rules: OidcMappingRules,
  ) {}

  private now(): number {
    return this.accounts.keyward.clock.now();
  }

  /** The role the groups claim gives, or null when the provider does not manage roles. */
  private roleFromGroups(groups: readonly string[]): UserRole | null {
    if (this.rules.adminGroups.length === 0) return null;
    return groups.some((group) => this.rules.adminGroups.includes(group)) ? "admin" : "member";
  }

  async signIn(
    identity: OidcIdentity,
    context: Omit<RequestContext, "actor">,
  ): Promise<{ token: string; session: SessionRecord; user: UserRecord; created: boolean }> {
    const store = this.accounts.store;
    const email = identity.email === null ? null : normalizeEmail(identity.email);
    // Unverified is refused outright; a provider that does not say may create or use its own links only.
    if (identity.emailVerified === false) await this.refuse("email_unverified", identity, email, null, context);
    if (email === null || !EMAIL.test(email) || email.length > 320) return this.refuse("email_missing", identity, null, null, context);
    const domain = email.slice(email.lastIndexOf("@") + 1);
    if (this.rules.allowedDomains.length > 0 && !this.rules.allowedDomains.includes(domain))
      await this.refuse("domain_not_allowed", identity, email, null, context);

    const system = { ...context, actor: { type: "system" as const, id: "oidc" } };
    const wanted = this.roleFromGroups(identity.groups);
    const linkDetails = { issuer: identity.issuer, subject: identity.subject };
    let created = false;
    let user: UserRecord | null = null;
    const link = await store.getOidcLink(identity.issuer, identity.subject);
    if (link) user = await store.getUser(link.userId);
    if (!user) {
      const now = this.now();
      const existing = await store.getUserByEmail(email);
      if (existing) {
        // Linking hands an existing account to whoever the provider vouches for: only on a verified email.
        if (identity.emailVerified !== true) await this.refuse("email_unverified", identity, email, existing, context);
        const audit = buildAuditEvent(system, now, "user.sso_linked", { type: "user", id: existing.id }, null, {
          email,
          ...linkDetails,
          via: "oidc",
        });
        if ((await store.insertOidcLink({ ...linkDetails, userId: existing.id, createdAt: now }, null, [audit])) === "conflict")
          await this.refuse("account_linked", identity, email, existing, context);
        user = existing;
      } else {
        const fresh: UserRecord = {
          id: generateId(USER_ID_KIND),
          email,
          role: wanted ?? "member",
          passwordHash: NO_PASSWORD,
          disabled: false,
          mustChangePassword: false,
          createdAt: now,
          updatedAt: now,
        };
        const audit = buildAuditEvent(system, now, "user.created", { type: "user", id: fresh.id }, null, {
          email,
          role: fresh.role,
          via: "oidc",
          ...linkDetails,
        });
        // A race with another sign-in of the same person (or a user created meanwhile): retry once through the link.
        if ((await store.insertOidcLink({ ...linkDetails, userId: fresh.id, createdAt: now }, fresh, [audit])) === "conflict") {
          const raced = await store.getOidcLink(identity.issuer, identity.subject);
          user = raced ? await store.getUser(raced.userId) : null;
          if (!user) await this.refuse("account_linked", identity, email, null, context);
        } else {
          user = fresh;
          created = true;
        }
      }
    }
    if (!user) throw new Error("unreachable: no user after mapping");
    if (user.disabled) await this.refuse("account_disabled", identity, email, user, context);
    if (wanted !== null && wanted !== user.role) {
      const now = this.now();
      const audit = buildAuditEvent(
        system,
        now,
        "user.updated",
        { type: "user", id: user.id },
        { role: { from: user.role, to: wanted } },
        { via: "oidc", reason: "groups claim", ...linkDetails },
      );
      user = (await store.updateUser(user.id, { role: wanted }, audit, now)) ?? user;
    }
    return { ...(await this.openSession(user, context)), created };
  }

  /** A fresh session, as `Accounts.signIn` opens one after a password (the per-user cap, expired sessions purged). */
  private async openSession(
    user: UserRecord,
    context: Omit<RequestContext, "actor">,
  ): Promise<{ token: string; session: SessionRecord; user: UserRecord }> {
    const now = this.now();
    await this.accounts.purgeExpiredSessions(now);
    const { token, session } = newSession(user.id, context, now);
    const audit = buildAuditEvent(
      { ...context, actor: { type: "user", id: user.id } },
      now,
      "session.signed_in",
      { type: "user", id: user.id },
      null,
      { method: "oidc" },
    );
    await this.accounts.store.insertSession(session, audit, this.accounts.maxSessionsPerUser);
    return { token, session, user };
  }

  /** Audits the refusal (`session.sign_in_failed`, `method: "oidc"`) and throws it. */
  private async refuse(
    reason: OidcRefusal,
    identity: OidcIdentity,
    email: string | null,
    user: UserRecord | null,
    context: Omit<RequestContext, "actor">,
  ): Promise<never> {
    const event: AuditEvent = buildAuditEvent(
      { ...context, actor: { type: "system", id: "oidc" } },
      this.now(),
      "session.sign_in_failed",
      { type: "user", id: user?.id ?? "unknown" },
      null,
      { method: "oidc", reason, issuer: identity.issuer, subject: identity.subject, ...(email ? { email } : {}) },
    );
    await this.accounts.keyward.store.appendAuditEvent(event);
    throw new OidcSignInRefused(reason);
  }
}
