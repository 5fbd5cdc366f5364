import { createHash, randomBytes } from "node:crypto";
import { LRUCache } from "lru-cache";
import { CONTROL_NAMES, loosenedControls } from "../authority/controls.js";
import {
  type AskedKey,
  KEY_REQUEST_ID_KIND,
  type KeyRequestRecord,
  normalizeEmail,
  type SessionRecord,
  USER_ID_KIND,
  type UserRecord,
  type UserRole,
} from "../core/accounts.js";
import { KeywardError } from "../core/errors.js";
import { computeKeyStatus, type KeyRecord, type OwnerRef, type RequestContext } from "../core/model.js";
import { newKeyRecord } from "../core/new-key-record.js";
import { hashPassword, MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, verifyPassword, verifyPasswordAgainstNothing } from "../core/passwords.js";
import { generateId, generateRandomBase62 } from "../core/random.js";
import { findMissingScopes } from "../core/scopes.js";
import type { AccountStore, DecisionResult, KeyRequestFilter } from "../ports/account-store.js";
import { buildAuditEvent } from "./audit.js";
import type { Keyward, Page } from "./keyward.js";

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
  /** Default 15 minutes. */
  signInWindowMs?: number;
}

/** The secret cookie value is never stored: only its SHA-256. */
export const digestToken = (token: string): string => createHash("sha256").update(token).digest("base64url");

const EMAIL = /^[^\s@<>"'`]{1,64}@[^\s@<>"'`]{1,190}\.[^\s@<>"'`]{1,63}$/;

function validateCredentials(email: string, password: string): string {
  const normalized = normalizeEmail(email);
  const errors = [];
  if (!EMAIL.test(normalized)) errors.push({ field: "body.email", message: "must be an email address" });
  if (password.length < MIN_PASSWORD_LENGTH || password.length > MAX_PASSWORD_LENGTH)
    errors.push({ field: "body.password", message: `must be ${MIN_PASSWORD_LENGTH} to ${MAX_PASSWORD_LENGTH} characters` });
  if (errors.length > 0) throw new KeywardError("VALIDATION_FAILED", errors.map((e) => `${e.field}: ${e.message}`).join("; "), { errors });
  return normalized;
}

function encodeCursor(cursor: { createdAt: number; id: string } | null): string | null {
  return cursor === null ? null : Buffer.from(`${cursor.createdAt}.${cursor.id}`).toString("base64url");
}

function decodeCursor(value: string | undefined): { createdAt: number; id: string } | null {
  if (!value) return null;
  const match = /^(\d{1,15})\.(kreq_[0-9A-Za-z]{16,40})$/.exec(Buffer.from(value, "base64url").toString("utf8"));
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
 * People and their requests: dashboard users, sign-in and sessions, the first-admin setup and
 * production key requests. Every change writes its audit event in the same transaction.
 */
export class Accounts {
  readonly sessionIdleMs: number;
  readonly sessionMaxMs: number;
  private readonly setupTokenTtlMs: number;
  private readonly failures: LRUCache<string, number>;
  private readonly perAccount: number;
  private readonly perAddress: number;

  constructor(
    readonly keyward: Keyward,
    readonly store: AccountStore,
    options: AccountsOptions = {},
  ) {
    this.sessionIdleMs = options.sessionIdleMs ?? 30 * 60_000;
    this.sessionMaxMs = options.sessionMaxMs ?? 12 * 3_600_000;
    this.setupTokenTtlMs = options.setupTokenTtlMs ?? 24 * 3_600_000;
    this.perAccount = options.signInFailuresPerAccount ?? 5;
    this.perAddress = options.signInFailuresPerAddress ?? 20;
    // Bounded memory whatever an attacker sends: an LRU of counters that expire with the window.
    this.failures = new LRUCache({ max: 50_000, ttl: options.signInWindowMs ?? 15 * 60_000, ttlAutopurge: false });
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

  private async newUser(email: string, password: string, role: UserRole): Promise<UserRecord> {
    const normalized = validateCredentials(email, password);
    const now = this.now();
    return {
      id: generateId(USER_ID_KIND),
      email: normalized,
      role,
      passwordHash: await hashPassword(password),
      disabled: false,
      createdAt: now,
      updatedAt: now,
    };
  }

  async createUser(input: { email: string; password: string; role: UserRole }, context: RequestContext): Promise<UserRecord> {
    const user = await this.newUser(input.email, input.password, input.role);
    const audit = buildAuditEvent(context, user.createdAt, "user.created", { type: "user", id: user.id }, null, {
      email: user.email,
      role: user.role,
    });
    if (!(await this.store.insertUser(user, audit))) throw new KeywardError("CONFLICT", "a user with this email exists");
    return user;
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
    const [accountKey] = this.throttleKeys(user.email, context.ip);
    if ((this.failures.get(accountKey) ?? 0) >= this.perAccount)
      throw new KeywardError("SIGN_IN_THROTTLED", "too many failed attempts; try again later", { retryAfterSeconds: 900 });
    if (current.length > MAX_PASSWORD_LENGTH || !(await verifyPassword(current, user.passwordHash))) {
      this.failures.set(accountKey, (this.failures.get(accountKey) ?? 0) + 1);
      throw new KeywardError("SIGN_IN_FAILED", "the current password is wrong");
    }
    validateCredentials(user.email, next);
    const now = this.now();
    const audit = buildAuditEvent(context, now, "user.password_changed", { type: "user", id: user.id });
    const updated = await this.store.updateUser(user.id, { passwordHash: await hashPassword(next) }, audit, now);
    if (!updated) throw new KeywardError("RESOURCE_NOT_FOUND", "no such user");
    return updated;
  }

  // ---------------------------------------------------------------- sign-in and sessions

  private throttleKeys(email: string, ip: string | undefined): [string, string] {
    return [`a:${normalizeEmail(email)}|${ip ?? ""}`, `i:${ip ?? ""}`];
  }

  /**
   * Checks the password and opens a session. Failures are throttled per account+address and per
   * address (so one attacker cannot lock a person out from everywhere), answer one generic
   * error, and are audited.
   */
  async signIn(
    email: string,
    password: string,
    context: Omit<RequestContext, "actor">,
  ): Promise<{ token: string; session: SessionRecord; user: UserRecord }> {
    const [accountKey, addressKey] = this.throttleKeys(email, context.ip);
    if ((this.failures.get(accountKey) ?? 0) >= this.perAccount || (this.failures.get(addressKey) ?? 0) >= this.perAddress) {
      throw new KeywardError("SIGN_IN_THROTTLED", "too many failed sign-ins; try again later", { retryAfterSeconds: 900 });
    }
    const normalized = normalizeEmail(email);
    const user = normalized.length <= 320 ? await this.store.getUserByEmail(normalized) : null;
    const ok =
      user && password.length <= MAX_PASSWORD_LENGTH
        ? await verifyPassword(password, user.passwordHash)
        : await verifyPasswordAgainstNothing(password.slice(0, MAX_PASSWORD_LENGTH));
    const now = this.now();
    if (!user || !ok || user.disabled) {
      this.failures.set(accountKey, (this.failures.get(accountKey) ?? 0) + 1);
      this.failures.set(addressKey, (this.failures.get(addressKey) ?? 0) + 1);
      await this.keyward.store.appendAuditEvent(
        buildAuditEvent(
          { ...context, actor: { type: "system", id: "sign-in" } },
          now,
          "session.sign_in_failed",
          { type: "user", id: user?.id ?? "unknown" },
          null,
          { email: normalized.slice(0, 320), reason: !user ? "unknown_email" : user.disabled && ok ? "disabled" : "wrong_password" },
        ),
      );
      throw new KeywardError("SIGN_IN_FAILED", "email or password is wrong");
    }
    this.failures.delete(accountKey);
    const token = randomBytes(32).toString("base64url");
    const session: SessionRecord = {
      digest: digestToken(token),
      userId: user.id,
      csrfToken: randomBytes(24).toString("base64url"),
      createdAt: now,
      lastSeenAt: now,
      ip: context.ip ?? null,
      userAgent: context.userAgent?.slice(0, 256) ?? null,
    };
    const audit = buildAuditEvent({ ...context, actor: { type: "user", id: user.id } }, now, "session.signed_in", {
      type: "user",
      id: user.id,
    });
    await this.store.insertSession(session, audit);
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
      asked: askedOf(sandboxKey),
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
