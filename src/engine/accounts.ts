import { createHash, randomBytes } from "node:crypto";
import { LRUCache } from "lru-cache";
import { CONTROL_NAMES, loosenedControls } from "../authority/controls.js";
import {
  type AskedKey,
  hasPassword,
  KEY_REQUEST_ID_KIND,
  type KeyRequestRecord,
  NO_PASSWORD,
  normalizeEmail,
  SESSION_ID_KIND,
  type SessionRecord,
  USER_ID_KIND,
  type UserLinkPurpose,
  type UserRecord,
  type UserRole,
} from "../core/accounts.js";
import { KeywardError, refusalError } from "../core/errors.js";
import { computeKeyStatus, type KeyRecord, type OwnerRef, type RequestContext } from "../core/model.js";
import { newKeyRecord } from "../core/new-key-record.js";
import { hashPassword, MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, verifyPassword, verifyPasswordAgainstNothing } from "../core/passwords.js";
import { generateId, generateRandomBase62 } from "../core/random.js";
import { findMissingScopes } from "../core/scopes.js";
import type { AccountStore, DecisionResult, EndSessions, KeyRequestFilter, UserListFilter } from "../ports/account-store.js";
import { buildAuditEvent } from "./audit.js";
import type { Keyward, Page } from "./keyward.js";
import { SignInThrottle } from "./sign-in-throttle.js";

export interface AccountsOptions {
  /** A session ends after this long without a request. Default 30 minutes. */
  sessionIdleMs?: number;
  /** A session ends this long after sign-in, however active. Default 12 hours. */
  sessionMaxMs?: number;
  /** The setup link works for this long. Default 24 hours. */
  setupTokenTtlMs?: number;
  /** Failed sign-ins allowed per account+address and per address in the throttle window. Defaults 5 and 20. */
  signInFailuresPerAccount?: number;
  signInFailuresPerAddress?: number;
  /** Failed sign-ins per account over every address before the slowdown (docs/hardening.md). Default 10. */
  signInAccountLimit?: number;
  /** IPv6 sign-in attempts are counted by this prefix length. Default 64. */
  signInIpv6Prefix?: number;
  /** Default 15 minutes. */
  signInWindowMs?: number;
  /** Live sessions per user; a sign-in past it ends the oldest. Default 10. */
  maxSessionsPerUser?: number;
  /** An invite link works for this long. Default 72 hours. */
  inviteTtlMs?: number;
  /** A password-reset link works for this long. Default 1 hour. */
  resetTtlMs?: number;
}

/** A one-time link as issued: the token (shown once, never stored) and when it stops working. */
export interface IssuedUserLink {
  purpose: UserLinkPurpose;
  token: string;
  expiresAt: number;
}

/** The dashboard page a link opens: the token travels in the fragment, which browsers never send to a server. */
export const USER_LINK_PAGES: Record<UserLinkPurpose, string> = { invite: "invite", reset: "reset" };

/**
 * The throttle account that link-token attempts are counted under (with the address): no email
 * can be it, since emails are stored trimmed. Its account-wide slowdown is never applied, so
 * nobody can lock everyone out of their links by guessing.
 */
const LINK_ATTEMPTS = " link-token";

/** Addresses a person signed in from within this long count as theirs during a slowdown. */
const GOOD_ADDRESS_MS = 30 * 86_400_000;
/** How long a looked-up list of good addresses is reused. */
const GOOD_ADDRESS_MEMO_MS = 60_000;

/** Repeated sign-in failures of one account from one address within one window, not yet audited. */
interface FailureRun {
  windowStart: number;
  /** Failures after the window's first (which was audited on its own). */
  repeated: number;
  lastAt: number;
  targetId: string;
  email: string;
  reason: string;
  context: Omit<RequestContext, "actor">;
}

/** The secret cookie value is never stored: only its SHA-256. */
export const digestToken = (token: string): string => createHash("sha256").update(token).digest("base64url");

const EMAIL = /^[^\s@<>"'`]{1,64}@[^\s@<>"'`]{1,190}\.[^\s@<>"'`]{1,63}$/;

/** The same rules for every password (setup, users, invites, resets, changes); `null` password: none is set (an invite). */
function validateCredentials(email: string, password: string | null, field = "body.password"): string {
  const normalized = normalizeEmail(email);
  const errors = [];
  if (!EMAIL.test(normalized)) errors.push({ field: "body.email", message: "must be an email address" });
  if (password !== null && (password.length < MIN_PASSWORD_LENGTH || password.length > MAX_PASSWORD_LENGTH))
    errors.push({ field, message: `must be ${MIN_PASSWORD_LENGTH} to ${MAX_PASSWORD_LENGTH} characters` });
  if (errors.length > 0) throw new KeywardError("VALIDATION_FAILED", errors.map((e) => `${e.field}: ${e.message}`).join("; "), { errors });
  return normalized;
}

/** A link token as issued: 32 base62 characters (190 bits), as the setup token. */
const LINK_TOKEN = /^[0-9A-Za-z]{32}$/;

function encodeCursor(cursor: { createdAt: number; id: string } | null): string | null {
  return cursor === null ? null : Buffer.from(`${cursor.createdAt}.${cursor.id}`).toString("base64url");
}

function decodeCursor(value: string | undefined, kind = KEY_REQUEST_ID_KIND): { createdAt: number; id: string } | null {
  if (!value) return null;
  const match = new RegExp(`^(\\d{1,15})\\.(${kind}_[0-9A-Za-z]{16,40})$`).exec(Buffer.from(value, "base64url").toString("utf8"));
  if (!match) throw new KeywardError("INVALID_CURSOR", "cursor is not one this server issued");
  return { createdAt: Number(match[1]), id: match[2] as string };
}

/** What a request asks for: the sandbox key's permissions as they are when it is made. */
export function askedOf(sandbox: KeyRecord): AskedKey {
  return {
    name: sandbox.name,
    scopes: [...sandbox.scopes],
    rateLimit: sandbox.rateLimit,
    concurrency: sandbox.concurrency,
    quota: sandbox.quota,
    allowedCidrs: [...sandbox.allowedCidrs],
    metadata: sandbox.metadata,
  };
}

/** Why a request can no longer be approved: its sandbox key is not active, or holds more than was asked. */
export function staleReason(sandbox: KeyRecord, asked: AskedKey, now: number): string | null {
  const status = computeKeyStatus(sandbox, now);
  if (status !== "active") return `the sandbox key is ${status} since the request was made`;
  const widened = findMissingScopes(asked.scopes, sandbox.scopes);
  if (widened.length > 0) return `the sandbox key was widened since the request was made: ${widened.join(", ")}`;
  const loosened = loosenedControls({ ...sandbox, ...asked, enabled: true, expiresAt: null }, { ...sandbox, expiresAt: null });
  if (loosened.length > 0)
    return `the sandbox key's controls were loosened since the request was made: ${loosened.map((f) => CONTROL_NAMES[f]).join(", ")}`;
  return null;
}

const DECISION_ERRORS: Record<Exclude<DecisionResult, "done">, KeywardError> = {
  not_found: new KeywardError("RESOURCE_NOT_FOUND", "no such key request"),
  conflict: new KeywardError("CONFLICT", "the key request was already decided"),
};

/**
 * A new dashboard session for `userId` and its cookie token: the token is returned once and only
 * its digest is stored (docs/dashboard.md, "Sessions"). Password and SSO sign-in both open theirs here.
 */
export function newSession(
  userId: string,
  context: { ip?: string | undefined; userAgent?: string | undefined },
  now: number,
): { token: string; session: SessionRecord } {
  const token = randomBytes(32).toString("base64url");
  const session: SessionRecord = {
    id: generateId(SESSION_ID_KIND),
    digest: digestToken(token),
    userId,
    csrfToken: randomBytes(24).toString("base64url"),
    createdAt: now,
    lastSeenAt: now,
    ip: context.ip ?? null,
    userAgent: context.userAgent?.slice(0, 256) ?? null,
  };
  return { token, session };
}

/**
 * People and their requests: dashboard users, sign-in and sessions, the first-admin setup and
 * production key requests. Every change writes its audit event in the same transaction.
 */
export class Accounts {
  readonly sessionIdleMs: number;
  readonly sessionMaxMs: number;
  private readonly setupTokenTtlMs: number;
  readonly linkTtlMs: Record<UserLinkPurpose, number>;
  readonly maxSessionsPerUser: number;
  readonly throttle: SignInThrottle;
  /** Recent good sign-in addresses (buckets) per account, looked up in the audit trail. */
  private readonly goodAddresses: LRUCache<string, { buckets: Set<string>; at: number }>;
  /** Sign-in failures coalesced in the audit trail: one row per account and address per window, then a count. */
  private readonly failureRuns: LRUCache<string, FailureRun>;
  /** Runs evicted from `failureRuns` with uncounted failures, written at the next sweep. */
  private evictedRuns: FailureRun[] = [];

  constructor(
    readonly keyward: Keyward,
    readonly store: AccountStore,
    options: AccountsOptions = {},
  ) {
    this.sessionIdleMs = options.sessionIdleMs ?? 30 * 60_000;
    this.sessionMaxMs = options.sessionMaxMs ?? 12 * 3_600_000;
    this.setupTokenTtlMs = options.setupTokenTtlMs ?? 24 * 3_600_000;
    this.linkTtlMs = { invite: options.inviteTtlMs ?? 72 * 3_600_000, reset: options.resetTtlMs ?? 3_600_000 };
    this.maxSessionsPerUser = options.maxSessionsPerUser ?? 10;
    // Bounded memory whatever an attacker sends: LRUs of counters on the engine's clock.
    this.throttle = new SignInThrottle({
      perAccountAddress: options.signInFailuresPerAccount ?? 5,
      perAddress: options.signInFailuresPerAddress ?? 20,
      perAccount: options.signInAccountLimit ?? 10,
      windowMs: options.signInWindowMs ?? 15 * 60_000,
      ipv6Prefix: options.signInIpv6Prefix ?? 64,
    });
    this.goodAddresses = new LRUCache({ max: 10_000 });
    this.failureRuns = new LRUCache({
      max: 50_000,
      dispose: (run, _key, reason) => {
        if (reason === "evict" && run.repeated > 0 && this.evictedRuns.length < 10_000) this.evictedRuns.push(run);
      },
    });
  }

  private now(): number {
    return this.keyward.clock.now();
  }

  // ---------------------------------------------------------------- setup and users

  /** On a store with no users: a fresh one-time setup token (its digest stored), else null. */
  async issueSetupToken(): Promise<string | null> {
    if ((await this.store.countUsers()) > 0) return null;
    const token = generateRandomBase62(32);
    await this.store.setSetupToken(digestToken(token), this.now() + this.setupTokenTtlMs);
    return token;
  }

  async setupFirstAdmin(token: string, email: string, password: string, context: Omit<RequestContext, "actor">): Promise<UserRecord> {
    const user = await this.newUser(email, password, "admin");
    const audit = buildAuditEvent(
      { ...context, actor: { type: "system", id: "setup" } },
      user.createdAt,
      "user.created",
      { type: "user", id: user.id },
      null,
      { email: user.email, role: user.role, via: "setup" },
    );
    if (!(await this.store.createFirstAdmin(digestToken(token), user, audit, user.createdAt))) throw new KeywardError("SETUP_NOT_ALLOWED");
    return user;
  }

  /** A new user; without a password (null), one who is invited to choose it (NO_PASSWORD). */
  private async newUser(email: string, password: string | null, role: UserRole): Promise<UserRecord> {
    const normalized = validateCredentials(email, password);
    const now = this.now();
    return {
      id: generateId(USER_ID_KIND),
      email: normalized,
      role,
      passwordHash: password === null ? NO_PASSWORD : await hashPassword(password),
      disabled: false,
      mustChangePassword: false,
      createdAt: now,
      updatedAt: now,
    };
  }

  async createUser(input: { email: string; password: string; role: UserRole }, context: RequestContext): Promise<UserRecord> {
    return this.insertNewUser(await this.newUser(input.email, input.password, input.role), context);
  }

  /**
   * A dashboard user without a password, invited to choose one: the result carries a one-time
   * invite link (its token shown once).
   */
  async inviteUser(
    input: { email: string; role: UserRole },
    context: RequestContext,
  ): Promise<{ user: UserRecord; invite: IssuedUserLink }> {
    const user = await this.insertNewUser(await this.newUser(input.email, null, input.role), context);
    return { user, invite: await this.issueUserLink(user, "invite", context) };
  }

  private async insertNewUser(user: UserRecord, context: RequestContext): Promise<UserRecord> {
    const audit = buildAuditEvent(context, user.createdAt, "user.created", { type: "user", id: user.id }, null, {
      email: user.email,
      role: user.role,
      ...(hasPassword(user) ? {} : { invited: true }),
    });
    if (!(await this.store.insertUser(user, audit))) throw new KeywardError("CONFLICT", "a user with this email exists");
    return user;
  }

  // ---------------------------------------------------------------- invites and password resets

  /**
   * A one-time link for `user` (docs/dashboard.md): an invite (the person has no password yet;
   * 72 hours) or a password reset (1 hour). The token is shown once; its digest is stored, and a
   * newer link of the user revokes the older. Using it sets the password, ends the user's
   * sessions and clears `mustChangePassword`; the old password works until then.
   */
  async issueUserLink(user: UserRecord, purpose: UserLinkPurpose, context: RequestContext): Promise<IssuedUserLink> {
    if (user.disabled) throw new KeywardError("CONFLICT", "the user is disabled: enable them first");
    if (purpose === "invite" && hasPassword(user))
      throw new KeywardError("CONFLICT", "the user has already chosen a password: issue a password reset instead");
    const token = generateRandomBase62(32);
    const now = this.now();
    const expiresAt = now + this.linkTtlMs[purpose];
    const audit = buildAuditEvent(
      context,
      now,
      purpose === "invite" ? "user.invited" : "user.password_reset_issued",
      { type: "user", id: user.id },
      null,
      { expires_at: new Date(expiresAt).toISOString() },
    );
    await this.store.insertUserLink({ digest: digestToken(token), userId: user.id, purpose, createdAt: now, expiresAt }, audit);
    return { purpose, token, expiresAt };
  }

  /**
   * The user a link is for, while it works: throttled per address as sign-ins are (docs/hardening.md),
   * and a wrong, used, replaced or expired link is one answer (ACCOUNT_LINK_INVALID) counted as a failure.
   */
  async inspectUserLink(token: string, purpose: UserLinkPurpose, ip: string | undefined): Promise<{ user: UserRecord; expiresAt: number }> {
    this.refuseLinkThrottled(ip);
    const found = await this.liveLink(token, purpose);
    if (!found) throw this.failedLinkAttempt(ip);
    return found;
  }

  /**
   * Uses a link once: sets the chosen password (the setup rules), ends the user's sessions and
   * other links, clears `mustChangePassword`, audits it, in one transaction. The caller signs the
   * person in with the new password.
   */
  async acceptUserLink(
    token: string,
    purpose: UserLinkPurpose,
    password: string,
    context: Omit<RequestContext, "actor">,
  ): Promise<UserRecord> {
    this.refuseLinkThrottled(context.ip);
    // The password is checked first: a password too short must not use up the link.
    if (password.length < MIN_PASSWORD_LENGTH || password.length > MAX_PASSWORD_LENGTH) validateCredentials("x@example.com", password);
    const found = await this.liveLink(token, purpose);
    if (!found) throw this.failedLinkAttempt(context.ip);
    const now = this.now();
    const audit = buildAuditEvent(
      { ...context, actor: { type: "user", id: found.user.id } },
      now,
      purpose === "invite" ? "user.invite_accepted" : "user.password_reset",
      { type: "user", id: found.user.id },
    );
    const user = await this.store.consumeUserLink(digestToken(token), found.user.id, purpose, await hashPassword(password), audit, now);
    // Used, replaced or expired between the look-up and now, or the user was disabled meanwhile.
    if (!user) throw this.failedLinkAttempt(context.ip);
    return user;
  }

  /** The link and its user, when the token names a link of this purpose that still works. */
  private async liveLink(token: string, purpose: UserLinkPurpose): Promise<{ user: UserRecord; expiresAt: number } | null> {
    if (!LINK_TOKEN.test(token)) return null;
    const link = await this.store.getUserLink(digestToken(token));
    if (!link || link.purpose !== purpose || link.expiresAt <= this.now()) return null;
    const user = await this.store.getUser(link.userId);
    if (!user || user.disabled) return null;
    return { user, expiresAt: link.expiresAt };
  }

  /** Link attempts share the sign-in throttle's per-address windows, never its account-wide slowdown. */
  private refuseLinkThrottled(ip: string | undefined): void {
    const wait = this.throttle.state(LINK_ATTEMPTS, ip, this.now()).local;
    if (wait > 0)
      throw refusalError("SIGN_IN_THROTTLED", "too many failed attempts; try again later", {
        retryAfterSeconds: Math.max(1, Math.ceil(wait / 1000)),
      });
  }

  private failedLinkAttempt(ip: string | undefined): KeywardError {
    this.throttle.fail(LINK_ATTEMPTS, ip, this.now());
    return new KeywardError("ACCOUNT_LINK_INVALID");
  }

  /** An administrator requires (or stops requiring) a new password at the user's next request. */
  async setMustChangePassword(id: string, required: boolean, context: RequestContext): Promise<UserRecord> {
    const before = await this.getUser(id);
    const now = this.now();
    const audit = buildAuditEvent(
      context,
      now,
      required ? "user.password_change_required" : "user.password_change_waived",
      { type: "user", id },
      { must_change_password: { from: before.mustChangePassword, to: required } },
    );
    const user = await this.store.updateUser(id, { mustChangePassword: required }, audit, now);
    if (!user) throw new KeywardError("RESOURCE_NOT_FOUND", "no such user");
    return user;
  }

  /** A page of users, oldest first (`limit` 1–200, default 50), and the cursor of the next. */
  async listUsers(filter: UserListFilter, page: { limit?: number; cursor?: string }): Promise<Page<UserRecord>> {
    const limit = Math.min(Math.max(page.limit ?? 50, 1), 200);
    const result = await this.store.listUsers(filter, limit, decodeCursor(page.cursor, USER_ID_KIND));
    return { data: result.users, nextCursor: encodeCursor(result.next) };
  }

  async getUser(id: string): Promise<UserRecord> {
    const user = await this.store.getUser(id);
    if (!user) throw new KeywardError("RESOURCE_NOT_FOUND", "no such user");
    return user;
  }

  /**
   * Disabling a user ends its sessions (same transaction) and disables its keys (through the
   * owner flag, at once on every instance); enabling restores both.
   */
  async setUserDisabled(id: string, disabled: boolean, context: RequestContext): Promise<UserRecord> {
    const before = await this.getUser(id);
    if (context.actor.type === "user" && context.actor.id === id && disabled)
      throw new KeywardError("FORBIDDEN", "you cannot disable your own account");
    const now = this.now();
    const audit = buildAuditEvent(
      context,
      now,
      disabled ? "user.disabled" : "user.enabled",
      { type: "user", id },
      {
        disabled: { from: before.disabled, to: disabled },
      },
    );
    const user = await this.store.updateUser(id, { disabled }, audit, now);
    if (!user) throw new KeywardError("RESOURCE_NOT_FOUND", "no such user");
    await this.keyward.setOwnerDisabled({ type: "user", id }, disabled, context);
    return user;
  }

  /**
   * A person changes their own password: the current one must be right (a failure counts like a
   * failed sign-in), and every session of theirs ends in the same transaction as the change.
   */
  async changePassword(user: UserRecord, current: string, next: string, context: RequestContext): Promise<UserRecord> {
    await this.refuseThrottled(user.email, context.ip, "too many failed attempts; try again later");
    if (current.length > MAX_PASSWORD_LENGTH || !(await verifyPassword(current, user.passwordHash))) {
      this.throttle.fail(user.email, context.ip, this.now());
      throw new KeywardError("SIGN_IN_FAILED", "the current password is wrong");
    }
    validateCredentials(user.email, next, "body.new_password");
    if (user.mustChangePassword && next === current)
      throw new KeywardError("VALIDATION_FAILED", "body.new_password: must differ from the current password", {
        errors: [{ field: "body.new_password", message: "must differ from the current password" }],
      });
    const now = this.now();
    const audit = buildAuditEvent(context, now, "user.password_changed", { type: "user", id: user.id });
    const updated = await this.store.updateUser(user.id, { passwordHash: await hashPassword(next), mustChangePassword: false }, audit, now);
    if (!updated) throw new KeywardError("RESOURCE_NOT_FOUND", "no such user");
    return updated;
  }

  // ---------------------------------------------------------------- sign-in and sessions

  /**
   * Throws SIGN_IN_THROTTLED while `email` may not try from `ip` (docs/hardening.md): the
   * address's own windows always apply; the account-wide slowdown does not apply to addresses
   * the person recently signed in from, so an attacker elsewhere cannot lock them out.
   */
  private async refuseThrottled(email: string, ip: string | undefined, message: string): Promise<void> {
    const account = normalizeEmail(email);
    const now = this.now();
    const wait = this.throttle.state(account, ip, now);
    let ms = wait.local;
    if (ms === 0 && wait.account > 0 && !(await this.isGoodAddress(account, ip, now))) ms = wait.account;
    if (ms > 0) throw refusalError("SIGN_IN_THROTTLED", message, { retryAfterSeconds: Math.max(1, Math.ceil(ms / 1000)) });
  }

  /** Whether the account signed in successfully from this address (its bucket) within the last 30 days. */
  private async isGoodAddress(account: string, ip: string | undefined, now: number): Promise<boolean> {
    if (!ip) return false;
    let known = this.goodAddresses.get(account);
    if (!known || now - known.at > GOOD_ADDRESS_MEMO_MS) {
      const user = account.length <= 320 ? await this.store.getUserByEmail(account) : null;
      const buckets = new Set<string>();
      if (user) {
        const page = await this.keyward.store.listAuditEvents(
          { actorId: user.id, action: "session.signed_in", since: now - GOOD_ADDRESS_MS },
          50,
          null,
        );
        for (const event of page.events) if (event.ip) buckets.add(this.throttle.bucket(event.ip));
      }
      known = { buckets, at: now };
      this.goodAddresses.set(account, known);
    }
    return known.buckets.has(this.throttle.bucket(ip));
  }

  /**
   * Audits a failed sign-in, coalesced: the first failure of an account from an address in a
   * window is one row; later ones in that window are counted and written as one summary row
   * (`count`) when the window ends (`sweep`), or when the next window starts.
   */
  private async auditFailure(run: Omit<FailureRun, "windowStart" | "repeated" | "lastAt">, now: number): Promise<void> {
    const key = `${run.email}|${this.throttle.bucket(run.context.ip)}`;
    const open = this.failureRuns.get(key);
    if (open && now - open.windowStart < this.throttle.windowMs) {
      Object.assign(open, run, { repeated: open.repeated + 1, lastAt: now });
      return;
    }
    if (open && open.repeated > 0) await this.writeFailureSummary(open);
    this.failureRuns.set(key, { ...run, windowStart: now, repeated: 0, lastAt: now });
    await this.keyward.store.appendAuditEvent(
      buildAuditEvent(
        { ...run.context, actor: { type: "system", id: "sign-in" } },
        now,
        "session.sign_in_failed",
        { type: "user", id: run.targetId },
        null,
        { email: run.email, reason: run.reason, count: 1 },
      ),
    );
  }

  private async writeFailureSummary(run: FailureRun): Promise<void> {
    const count = run.repeated;
    run.repeated = 0;
    await this.keyward.store.appendAuditEvent(
      buildAuditEvent(
        { ...run.context, actor: { type: "system", id: "sign-in" } },
        this.now(),
        "session.sign_in_failed",
        { type: "user", id: run.targetId },
        null,
        {
          email: run.email,
          reason: run.reason,
          count,
          first_at: new Date(run.windowStart).toISOString(),
          last_at: new Date(run.lastAt).toISOString(),
        },
      ),
    );
  }

  /**
   * Housekeeping, run on a timer by the service and at shutdown: deletes expired sessions and
   * writes the summary rows of sign-in failure windows that have ended (`all`: every pending one).
   */
  async sweep(all = false): Promise<void> {
    const now = this.now();
    await this.purgeExpiredSessions(now);
    await this.store.deleteExpiredUserLinks(now);
    const evicted = this.evictedRuns;
    this.evictedRuns = [];
    for (const run of evicted) await this.writeFailureSummary(run);
    for (const [key, run] of [...this.failureRuns.entries()]) {
      const ended = now - run.windowStart >= this.throttle.windowMs;
      if (run.repeated > 0 && (ended || all)) await this.writeFailureSummary(run);
      if (ended) this.failureRuns.delete(key);
    }
  }

  /** Deletes every session past its idle or absolute timeout (their rows hold addresses and user agents). */
  async purgeExpiredSessions(now = this.now()): Promise<number> {
    return this.store.deleteExpiredSessions(now - this.sessionIdleMs, now - this.sessionMaxMs);
  }

  /**
   * Checks the password and opens a session. Failures are throttled per account+address, per
   * address and per account over every address (a slowdown that the account's own recent
   * addresses skip, so an attacker cannot lock a person out), answer one generic error, and are
   * audited, coalesced per account and address per window.
   */
  async signIn(
    email: string,
    password: string,
    context: Omit<RequestContext, "actor">,
  ): Promise<{ token: string; session: SessionRecord; user: UserRecord }> {
    await this.refuseThrottled(email, context.ip, "too many failed sign-ins; try again later");
    const normalized = normalizeEmail(email);
    const user = normalized.length <= 320 ? await this.store.getUserByEmail(normalized) : null;
    // No account, or one invited and without a password yet: the same time as a real check.
    const ok =
      user && hasPassword(user) && password.length <= MAX_PASSWORD_LENGTH
        ? await verifyPassword(password, user.passwordHash)
        : await verifyPasswordAgainstNothing(password.slice(0, MAX_PASSWORD_LENGTH));
    const now = this.now();
    if (!user || !ok || user.disabled) {
      this.throttle.fail(normalized, context.ip, now);
      await this.auditFailure(
        {
          targetId: user?.id ?? "unknown",
          email: normalized.slice(0, 320),
          reason: !user ? "unknown_email" : !hasPassword(user) ? "invite_pending" : user.disabled && ok ? "disabled" : "wrong_password",
          context,
        },
        now,
      );
      throw new KeywardError("SIGN_IN_FAILED", "email or password is wrong");
    }
    this.throttle.succeed(normalized, context.ip);
    if (context.ip) this.goodAddresses.get(normalized)?.buckets.add(this.throttle.bucket(context.ip));
    await this.purgeExpiredSessions(now);
    const { token, session } = newSession(user.id, context, now);
    const audit = buildAuditEvent({ ...context, actor: { type: "user", id: user.id } }, now, "session.signed_in", {
      type: "user",
      id: user.id,
    });
    await this.store.insertSession(session, audit, this.maxSessionsPerUser);
    return { token, session, user };
  }

  /** The session for a cookie token, if it is live: idle and absolute timeouts, user still enabled. */
  async resolveSession(token: string): Promise<{ session: SessionRecord; user: UserRecord } | null> {
    if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return null;
    const digest = digestToken(token);
    const session = await this.store.getSession(digest);
    if (!session) return null;
    const now = this.now();
    if (now - session.lastSeenAt > this.sessionIdleMs || now - session.createdAt > this.sessionMaxMs) {
      await this.store.deleteSession(digest);
      return null;
    }
    const user = await this.store.getUser(session.userId);
    if (!user || user.disabled) {
      await this.store.deleteSession(digest);
      return null;
    }
    // One write a minute at most: enough precision for a 30-minute idle timeout.
    if (now - session.lastSeenAt > 60_000) await this.store.touchSession(digest, now);
    return { session, user };
  }

  /** The user's live sessions (not past the idle or absolute timeout), newest first. */
  async listSessions(userId: string): Promise<SessionRecord[]> {
    const now = this.now();
    return this.store.listUserSessions(userId, now - this.sessionIdleMs, now - this.sessionMaxMs);
  }

  /**
   * Ends sessions of a user (one, all, or all but the caller's own), with one `session.ended`
   * audit event (its `count`) in the same transaction. Expired sessions are purged first, so the
   * count is of live sessions and an expired one is not found. Returns how many ended.
   */
  async endSessions(userId: string, which: EndSessions, context: RequestContext): Promise<number> {
    const now = this.now();
    await this.purgeExpiredSessions(now);
    const scope = which.sessionId !== undefined ? "one" : which.exceptDigest !== undefined ? "others" : "all";
    const ended = await this.store.endUserSessions(userId, which, (count) =>
      buildAuditEvent(context, now, "session.ended", { type: "user", id: userId }, null, {
        count,
        scope,
        ...(which.sessionId !== undefined ? { session_id: which.sessionId } : {}),
      }),
    );
    if (which.sessionId !== undefined && ended === 0) throw new KeywardError("RESOURCE_NOT_FOUND", "no such session");
    return ended;
  }

  async signOut(token: string): Promise<void> {
    await this.store.deleteSession(digestToken(token));
  }

  // ---------------------------------------------------------------- key requests

  /** Asks for a production key for an active sandbox key; one pending request per key. */
  async requestProductionKey(
    sandboxKey: KeyRecord,
    requestedBy: KeyRequestRecord["requestedBy"],
    reason: string | null,
    context: RequestContext,
    options: { lifetimeMs?: number } = {},
  ): Promise<KeyRequestRecord> {
    const now = this.now();
    if (sandboxKey.environment !== "sandbox")
      throw new KeywardError("VALIDATION_FAILED", "only a sandbox key can ask for a production key", {
        errors: [{ field: "body.key_id", message: "must be a sandbox key" }],
      });
    if (computeKeyStatus(sandboxKey, now) !== "active") throw new KeywardError("CONFLICT", "the sandbox key is not active");
    const request: KeyRequestRecord = {
      id: generateId(KEY_REQUEST_ID_KIND),
      sandboxKeyId: sandboxKey.id,
      owner: { ...sandboxKey.owner },
      requestedBy,
      reason,
      status: "pending",
      createdAt: now,
      decidedAt: null,
      decidedBy: null,
      decisionReason: null,
      issuedKeyId: null,
      claimedAt: null,
      asked: options.lifetimeMs === undefined ? askedOf(sandboxKey) : { ...askedOf(sandboxKey), lifetimeMs: options.lifetimeMs },
    };
    const audit = buildAuditEvent(context, now, "key_request.created", { type: "key_request", id: request.id }, null, {
      sandbox_key_id: sandboxKey.id,
      owner: request.owner,
    });
    if ((await this.store.insertKeyRequest(request, audit)) === "conflict")
      throw new KeywardError("CONFLICT", "this sandbox key already has a pending request");
    return request;
  }

  async getKeyRequest(id: string): Promise<KeyRequestRecord> {
    const request = await this.store.getKeyRequest(id);
    if (!request) throw new KeywardError("RESOURCE_NOT_FOUND", "no such key request");
    return request;
  }

  async listKeyRequests(filter: KeyRequestFilter, page: { limit?: number; cursor?: string }): Promise<Page<KeyRequestRecord>> {
    const limit = Math.min(Math.max(page.limit ?? 50, 1), 200);
    const result = await this.store.listKeyRequests(filter, limit, decodeCursor(page.cursor));
    return { data: result.requests, nextCursor: encodeCursor(result.next) };
  }

  /**
   * Issues the production key with exactly what was asked when the request was made (owner,
   * name, scopes, limits, CIDRs, metadata), and refuses (KEY_REQUEST_STALE) when the sandbox key
   * has since been revoked, disabled, expired or widened (docs/authority.md). Its secret is
   * minted when the requester claims it, so the plaintext is shown to the requester only, never
   * to the approving admin, and never stored; until then the key is `awaiting_pickup`.
   */
  async approveKeyRequest(id: string, context: RequestContext): Promise<{ request: KeyRequestRecord; key: KeyRecord }> {
    const request = await this.getKeyRequest(id);
    if (request.status !== "pending") throw DECISION_ERRORS.conflict;
    const asked = request.asked;
    if (!asked) throw new KeywardError("KEY_REQUEST_STALE", "this request predates recorded requests: ask for a new one");
    const now = this.now();
    const sandbox = await this.keyward.store.getKey(request.sandboxKeyId);
    const stale = sandbox ? staleReason(sandbox, asked, now) : "the sandbox key no longer exists";
    if (stale) throw new KeywardError("KEY_REQUEST_STALE", stale);
    const keyId = generateId("key");
    // A placeholder digest of a secret nobody holds: the key verifies only after it is claimed.
    const placeholder = this.keyward.mintSecret("production");
    const key = newKeyRecord({
      id: keyId,
      secret: placeholder,
      name: asked.name,
      owner: request.owner,
      environment: "production",
      scopes: asked.scopes,
      now,
      rateLimit: asked.rateLimit,
      concurrency: asked.concurrency,
      quota: asked.quota,
      allowedCidrs: asked.allowedCidrs,
      metadata: asked.metadata,
      expiresAt: asked.lifetimeMs === undefined ? null : now + asked.lifetimeMs,
      awaitingPickup: true,
    });
    const audits = [
      buildAuditEvent(context, now, "key.created", { type: "key", id: keyId }, null, {
        owner: key.owner,
        environment: key.environment,
        scopes: key.scopes,
        ref: key.ref,
        key_request_id: id,
      }),
      buildAuditEvent(context, now, "key_request.approved", { type: "key_request", id }, null, {
        sandbox_key_id: request.sandboxKeyId,
        issued_key_id: keyId,
        owner: key.owner,
      }),
    ];
    const outcome = await this.store.approveKeyRequest(id, context.actor.id, now, key, audits);
    if (outcome !== "done") throw DECISION_ERRORS[outcome];
    return { request: await this.getKeyRequest(id), key };
  }

  async rejectKeyRequest(id: string, reason: string, context: RequestContext): Promise<KeyRequestRecord> {
    const now = this.now();
    const audit = buildAuditEvent(context, now, "key_request.rejected", { type: "key_request", id }, null, { reason });
    const outcome = await this.store.rejectKeyRequest(id, context.actor.id, now, reason, audit);
    if (outcome !== "done") throw DECISION_ERRORS[outcome];
    return this.getKeyRequest(id);
  }

  /** The requester picks up the approved production key: its plaintext, once. */
  async claimKeyRequest(id: string, context: RequestContext): Promise<{ key: string; record: KeyRecord }> {
    const request = await this.getKeyRequest(id);
    if (request.status !== "approved" || request.claimedAt !== null || !request.issuedKeyId)
      throw new KeywardError("CONFLICT", "the key request is not approved, or its key was already picked up");
    const before = await this.keyward.getKey(request.issuedKeyId);
    if (before.revokedAt !== null) throw new KeywardError("CONFLICT", "the issued key was revoked before it was picked up");
    const secret = this.keyward.mintSecret("production");
    const now = this.now();
    const audit = buildAuditEvent(context, now, "key_request.claimed", { type: "key_request", id }, null, {
      issued_key_id: request.issuedKeyId,
      ref: secret.ref,
    });
    const outcome = await this.store.claimKeyRequest(id, now, secret, audit);
    if (outcome !== "done") throw new KeywardError("CONFLICT", "the key was already picked up");
    this.keyward.cache.invalidateKey(before.id, before.digest);
    return { key: secret.plaintext, record: await this.keyward.getKey(request.issuedKeyId) };
  }

  /** Whether `owner` is the user `userId`: the rule for what a member may see and touch. */
  static ownedBy(owner: OwnerRef, userId: string): boolean {
    return owner.type === "user" && owner.id === userId;
  }
}
