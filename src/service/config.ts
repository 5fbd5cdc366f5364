import { readFileSync } from "node:fs";
import { KeywardError } from "../core/errors.js";
import { type HashSecret, parseHashSecrets } from "../core/hashing.js";
import { DEFAULT_KEY_PREFIX, isValidKeyPrefix } from "../core/key-format.js";
import { type LegacyFormat, parseLegacyFormats } from "../core/legacy-formats.js";
import { parseSecretsKeys, type SecretsKey } from "../core/secret-box.js";
import type { LimiterFailurePolicy } from "../limits/redis-rate-limiter.js";
import { loadSsoConfig, type SsoConfig } from "./oidc/config.js";
import { loadPortalOrigins } from "./portal-config.js";
import { parseTrustProxy } from "./trust-proxy.js";

/** Every setting of `keyward serve` and the CLI; docs/configuration.md lists them with defaults. */
export interface ServiceConfig {
  databaseUrl: string;
  port: number;
  host: string;
  prefix: string;
  hashSecrets: HashSecret[];
  /** `KEYWARD_SECRETS_KEY`: AES-256-GCM keys sealing webhook secrets at rest, current first; empty: stored in plaintext. */
  secretsKeys: SecretsKey[];
  realm: string;
  allowQueryKeys: boolean;
  /** Addresses/CIDRs of proxies whose `X-Forwarded-For` is believed. Empty: believe none. */
  trustProxy: string[];
  /** `KEYWARD_CACHE_MAX_AGE_MS`; null: the engine's default (300,000 ms with a change feed, 5,000 without). */
  cacheMaxAgeMs: number | null;
  /** `KEYWARD_CHANGE_POLL_MS`: how often the store's change feed is polled while traffic flows. */
  changePollMs: number;
  staleWindowMs: number;
  /** How long a request for a cached key past its maximum age waits for the store before it is answered from cache. */
  refreshWaitMs: number;
  /** How long one store query may take (PostgreSQL). */
  storeTimeoutMs: number;
  bodyLimitBytes: number;
  /** `POST /v1/keys/import`: the most a request body may hold (the CLI has no limit). */
  importBodyLimitBytes: number;
  /** Key formats of the system before Keyward (KEYWARD_LEGACY_FORMATS, docs/migrating.md). */
  legacyFormats: LegacyFormat[];
  logLevel: string;
  logRequests: boolean;
  redisUrl: string | null;
  /** Prefix of every Redis key and channel, so deployments (or tests) can share one Redis. */
  redisPrefix: string;
  /** PostgreSQL schema for Keyward's tables; default the connection's search_path. */
  databaseSchema: string | null;
  /** What rate and concurrency limits do when Redis cannot answer: degrade (default), open or closed. */
  limiterFailure: LimiterFailurePolicy;
  /** Per-call time limit of limiter calls to Redis. */
  redisTimeoutMs: number;
  /** How long a concurrency slot taken through /v1/authz or /v1/keys/verify is held unless released. */
  leaseTtlMs: number;
  /** `KEYWARD_QUOTA_BLOCK_MAX`: quota uses taken from the database in blocks of up to this many; 0 spends per request (docs/limits.md, "Quota blocks"). */
  quotaBlockMax: number;
  /** Usage buffer: flush interval (the most a kill -9 loses), and its bound in distinct rows. */
  usageFlushMs: number;
  usageMaxBuffer: number;
  /** Usage counts older than this many days are deleted; 0 keeps them. */
  usageRetentionDays: number;
  /** Recent requests kept per key (docs/usage.md); 0 turns the log off. */
  recentRequests: number;
  /** The most allowed, and the most denied, requests the log writes per flush interval. */
  recentRequestsPerFlush: number;
  /** Abusive and slow clients (docs/hardening.md). */
  hardening: {
    /** Failed attempts (MALFORMED, NOT_FOUND) per client address per window; 0 turns the throttle off. */
    failedAttemptsLimit: number;
    failedAttemptsWindowMs: number;
    /** Time to receive a request's headers (≤ 20 s, docs/security.md, check 20). */
    headersTimeoutMs: number;
    /** Time to receive a whole request. */
    requestTimeoutMs: number;
    /** Open connections per client address; past it new ones are closed at once. 0: no cap. */
    maxConnectionsPerIp: number;
  };
  /** Webhook delivery (docs/webhooks.md). */
  webhooks: {
    pollMs: number;
    retryBaseMs: number;
    maxAttempts: number;
    timeoutMs: number;
    expiringDays: number;
    expirySweepMs: number;
    /** Allow endpoints on loopback, private and link-local addresses (off: a key event must not reach internal services). */
    allowPrivate: boolean;
  };
  /** The dashboard and its session API (docs/dashboard.md). */
  dashboard: DashboardConfig;
  /** `KEYWARD_PORTAL_ORIGINS`: host pages that may call the portal routes cross-origin (docs/embedding.md). */
  portalOrigins: readonly string[];
  /** `KEYWARD_PUBLIC_URL`: the origin (and path) invite and reset links are built on; null: the request's own. */
  publicUrl: string | null;
  /** Emailing invite and reset links (docs/configuration.md, "Email"); null: not configured, links are only shown. */
  mail: MailConfig | null;
  /** Single sign-on and password sign-in (docs/sso.md): `KEYWARD_OIDC_*`, `KEYWARD_PASSWORD_SIGN_IN`. */
  sso: SsoConfig;
}

export interface MailConfig {
  /** `KEYWARD_SMTP_URL`: `smtp://` (STARTTLS when offered) or `smtps://` (TLS from the start), with optional credentials. */
  smtpUrl: string;
  /** `KEYWARD_MAIL_FROM`: the sender, `keyward@example.com` or `Keyward <keyward@example.com>`. */
  from: string;
  /** `KEYWARD_SMTP_TIMEOUT_MS`: the most one email may take, connecting included. */
  timeoutMs: number;
}

export interface DashboardConfig {
  enabled: boolean;
  sessionIdleMs: number;
  sessionMaxMs: number;
  /** `auto`: Secure cookies when the request came over TLS (directly or through a trusted proxy). */
  cookieSecure: "auto" | boolean;
  /** Scopes each role may put on keys it mints from a session (`*` = any, management scopes included). */
  memberKeyScopes: string[];
  adminKeyScopes: string[];
  memberKeyCreatesPerHour: number;
  /**
   * `request` (default): members get production keys only through a key request and an admin's
   * approval; `direct`: members mint production keys themselves (docs/authority.md).
   */
  memberProductionKeys: "request" | "direct";
  /** Origins allowed to call with a session besides the service's own (e.g. a proxy's public URL). */
  allowedOrigins: string[];
  /** Sign-in throttle (docs/hardening.md): IPv6 clients are counted by this prefix length. */
  signInIpv6Prefix: number;
  /** Failed sign-ins per account, over every address, before each further attempt waits (a growing Retry-After). */
  signInAccountLimit: number;
  /** Live sessions one user may hold; a sign-in past it ends the oldest. */
  maxSessionsPerUser: number;
  /** How often expired sessions are deleted. */
  sessionPurgeMs: number;
}

const LIMITER_FAILURE_POLICIES: readonly LimiterFailurePolicy[] = ["degrade", "open", "closed"];

type Env = Record<string, string | undefined>;

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new KeywardError("INVALID_CONFIGURATION", `${name} must be an integer from ${min} to ${max}`);
  }
  return value;
}

function flag(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.toLowerCase();
  if (raw === undefined || raw === "") return fallback;
  if (["1", "true", "yes", "on"].includes(raw)) return true;
  if (["0", "false", "no", "off"].includes(raw)) return false;
  throw new KeywardError("INVALID_CONFIGURATION", `${name} must be true or false`);
}

export function loadConfig(env: Env = process.env): ServiceConfig {
  const prefix = env.KEYWARD_KEY_PREFIX || DEFAULT_KEY_PREFIX;
  if (!isValidKeyPrefix(prefix)) throw new KeywardError("INVALID_CONFIGURATION", "KEYWARD_KEY_PREFIX must match [a-z][a-z0-9]{1,15}");
  let hashSecrets: HashSecret[];
  try {
    hashSecrets = parseHashSecrets(env.KEYWARD_HASH_SECRET);
  } catch (error) {
    throw new KeywardError("INVALID_CONFIGURATION", (error as Error).message);
  }
  let secretsKeys: SecretsKey[];
  try {
    secretsKeys = parseSecretsKeys(env.KEYWARD_SECRETS_KEY);
  } catch (error) {
    throw new KeywardError("INVALID_CONFIGURATION", (error as Error).message);
  }
  const legacyFormats = loadLegacyFormats(env, prefix);
  const limiterFailure = (env.KEYWARD_LIMITER_FAILURE || "degrade") as LimiterFailurePolicy;
  if (!LIMITER_FAILURE_POLICIES.includes(limiterFailure))
    throw new KeywardError("INVALID_CONFIGURATION", "KEYWARD_LIMITER_FAILURE must be degrade, open or closed");
  return {
    databaseUrl: env.KEYWARD_DATABASE_URL || "sqlite:./data/keyward.db",
    port: integer(env, env.KEYWARD_PORT ? "KEYWARD_PORT" : "PORT", 8080, 0, 65535),
    host: env.KEYWARD_HOST || "127.0.0.1",
    prefix,
    hashSecrets,
    secretsKeys,
    realm: env.KEYWARD_REALM || "keyward",
    allowQueryKeys: flag(env, "KEYWARD_ALLOW_QUERY_KEYS", false),
    trustProxy: parseTrustProxy(env.KEYWARD_TRUST_PROXY),
    cacheMaxAgeMs: env.KEYWARD_CACHE_MAX_AGE_MS ? integer(env, "KEYWARD_CACHE_MAX_AGE_MS", 0, 0, 3_600_000) : null,
    changePollMs: integer(env, "KEYWARD_CHANGE_POLL_MS", 500, 50, 5_000),
    staleWindowMs: integer(env, "KEYWARD_STALE_WINDOW_MS", 300_000, 0, 3_600_000),
    refreshWaitMs: integer(env, "KEYWARD_REFRESH_WAIT_MS", 250, 0, 60_000),
    storeTimeoutMs: integer(env, "KEYWARD_STORE_TIMEOUT_MS", 5_000, 100, 600_000),
    bodyLimitBytes: integer(env, "KEYWARD_BODY_LIMIT", 65_536, 1_024, 10_485_760),
    importBodyLimitBytes: integer(env, "KEYWARD_IMPORT_BODY_LIMIT", 67_108_864, 1_024, 1_073_741_824),
    legacyFormats,
    logLevel: env.KEYWARD_LOG_LEVEL || "info",
    logRequests: flag(env, "KEYWARD_LOG_REQUESTS", false),
    redisUrl: env.KEYWARD_REDIS_URL || null,
    redisPrefix: env.KEYWARD_REDIS_PREFIX || "keyward:",
    databaseSchema: env.KEYWARD_DATABASE_SCHEMA || null,
    limiterFailure,
    redisTimeoutMs: integer(env, "KEYWARD_REDIS_TIMEOUT_MS", 100, 5, 5_000),
    leaseTtlMs: integer(env, "KEYWARD_LEASE_TTL_MS", 30_000, 100, 3_600_000),
    quotaBlockMax: integer(env, "KEYWARD_QUOTA_BLOCK_MAX", 64, 0, 1_000_000),
    usageFlushMs: integer(env, "KEYWARD_USAGE_FLUSH_MS", 1_000, 50, 60_000),
    usageMaxBuffer: integer(env, "KEYWARD_USAGE_MAX_BUFFER", 50_000, 100, 10_000_000),
    usageRetentionDays: integer(env, "KEYWARD_USAGE_RETENTION_DAYS", 90, 0, 36_500),
    recentRequests: integer(env, "KEYWARD_RECENT_REQUESTS", 100, 0, 1_000),
    recentRequestsPerFlush: integer(env, "KEYWARD_RECENT_REQUESTS_PER_FLUSH", 1_000, 1, 100_000),
    hardening: {
      failedAttemptsLimit: integer(env, "KEYWARD_FAILED_ATTEMPTS_LIMIT", 100, 0, 1_000_000),
      failedAttemptsWindowMs: integer(env, "KEYWARD_FAILED_ATTEMPTS_WINDOW_MS", 60_000, 1_000, 86_400_000),
      headersTimeoutMs: integer(env, "KEYWARD_HEADERS_TIMEOUT_MS", 20_000, 100, 20_000),
      requestTimeoutMs: integer(env, "KEYWARD_REQUEST_TIMEOUT_MS", 30_000, 100, 600_000),
      maxConnectionsPerIp: integer(env, "KEYWARD_MAX_CONNECTIONS_PER_IP", 256, 0, 1_000_000),
    },
    webhooks: {
      pollMs: integer(env, "KEYWARD_WEBHOOK_POLL_MS", 1_000, 20, 60_000),
      retryBaseMs: integer(env, "KEYWARD_WEBHOOK_RETRY_BASE_MS", 10_000, 10, 3_600_000),
      maxAttempts: integer(env, "KEYWARD_WEBHOOK_MAX_ATTEMPTS", 8, 1, 20),
      timeoutMs: integer(env, "KEYWARD_WEBHOOK_TIMEOUT_MS", 5_000, 100, 30_000),
      expiringDays: integer(env, "KEYWARD_WEBHOOK_EXPIRING_DAYS", 7, 1, 365),
      expirySweepMs: integer(env, "KEYWARD_WEBHOOK_EXPIRY_SWEEP_MS", 3_600_000, 50, 86_400_000),
      allowPrivate: flag(env, "KEYWARD_WEBHOOK_ALLOW_PRIVATE", false),
    },
    dashboard: loadDashboardConfig(env),
    portalOrigins: loadPortalOrigins(env),
    publicUrl: loadPublicUrl(env),
    mail: loadMailConfig(env),
    sso: loadSsoConfig(env),
  };
}

/** `KEYWARD_PUBLIC_URL`: an http(s) origin with an optional path, kept without its trailing slash. */
function loadPublicUrl(env: Env): string | null {
  const raw = env.KEYWARD_PUBLIC_URL?.trim();
  if (!raw) return null;
  const refuse = () =>
    new KeywardError(
      "INVALID_CONFIGURATION",
      "KEYWARD_PUBLIC_URL must be an http:// or https:// URL with an optional path (no credentials, query or fragment)",
    );
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw refuse();
  }
  if (
    (url.protocol !== "http:" && url.protocol !== "https:") ||
    url.username ||
    url.password ||
    url.search ||
    url.hash ||
    raw.includes("#")
  )
    throw refuse();
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
}

/** A sender: an address, or a display name and an address in angle brackets; no control characters. */
const MAIL_FROM = /^(?:[^\u0000-\u001f\u007f<>@]*<[^\s<>@]+@[^\s<>@]+>|[^\s<>@]+@[^\s<>@]+)$/;

/**
 * `KEYWARD_SMTP_URL` and `KEYWARD_MAIL_FROM` (docs/configuration.md, "Email"): both or neither.
 * Messages never echo the URL: it may hold the mail server's password.
 */
function loadMailConfig(env: Env): MailConfig | null {
  const raw = env.KEYWARD_SMTP_URL?.trim();
  const from = env.KEYWARD_MAIL_FROM?.trim();
  const timeoutMs = integer(env, "KEYWARD_SMTP_TIMEOUT_MS", 10_000, 100, 60_000);
  if (!raw) {
    if (from)
      throw new KeywardError("INVALID_CONFIGURATION", "KEYWARD_MAIL_FROM is set but KEYWARD_SMTP_URL is not: set both to email links");
    return null;
  }
  let url: URL | null = null;
  try {
    url = new URL(raw);
  } catch {
    url = null;
  }
  if (!url || (url.protocol !== "smtp:" && url.protocol !== "smtps:") || !url.hostname)
    throw new KeywardError(
      "INVALID_CONFIGURATION",
      "KEYWARD_SMTP_URL must be an smtp:// or smtps:// URL: smtp://user:password@mail.example.com:587 (credentials percent-encoded)",
    );
  if (!from)
    throw new KeywardError(
      "INVALID_CONFIGURATION",
      "KEYWARD_MAIL_FROM is required when KEYWARD_SMTP_URL is set: the sender of link emails",
    );
  if (!MAIL_FROM.test(from))
    throw new KeywardError(
      "INVALID_CONFIGURATION",
      "KEYWARD_MAIL_FROM must be an email address, or a name and an address: Keyward <keyward@example.com>",
    );
  return { smtpUrl: raw, from, timeoutMs };
}

/**
 * `KEYWARD_LEGACY_FORMATS` (JSON), or the file `KEYWARD_LEGACY_FORMATS_FILE` names, with the HMAC
 * secrets of `KEYWARD_LEGACY_SECRETS` (docs/migrating.md).
 */
function loadLegacyFormats(env: Env, prefix: string): LegacyFormat[] {
  let json = env.KEYWARD_LEGACY_FORMATS || undefined;
  const file = env.KEYWARD_LEGACY_FORMATS_FILE || undefined;
  if (json && file) throw new KeywardError("INVALID_CONFIGURATION", "set KEYWARD_LEGACY_FORMATS or KEYWARD_LEGACY_FORMATS_FILE, not both");
  if (file) {
    try {
      json = readFileSync(file, "utf8");
    } catch (error) {
      throw new KeywardError(
        "INVALID_CONFIGURATION",
        `KEYWARD_LEGACY_FORMATS_FILE cannot be read: ${(error as NodeJS.ErrnoException).code ?? "error"}`,
      );
    }
  }
  try {
    return parseLegacyFormats(json, env.KEYWARD_LEGACY_SECRETS || undefined, prefix);
  } catch (error) {
    throw new KeywardError("INVALID_CONFIGURATION", (error as Error).message);
  }
}

const list = (raw: string | undefined, fallback: string): string[] =>
  (raw ?? fallback)
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

function loadDashboardConfig(env: Env): DashboardConfig {
  const secure = env.KEYWARD_COOKIE_SECURE?.toLowerCase() || "auto";
  const production = env.KEYWARD_MEMBER_PRODUCTION_KEYS?.toLowerCase() || "request";
  if (production !== "request" && production !== "direct")
    throw new KeywardError("INVALID_CONFIGURATION", "KEYWARD_MEMBER_PRODUCTION_KEYS must be request or direct");
  return {
    enabled: flag(env, "KEYWARD_DASHBOARD", true),
    sessionIdleMs: integer(env, "KEYWARD_SESSION_IDLE_MINUTES", 30, 1, 1_440) * 60_000,
    sessionMaxMs: integer(env, "KEYWARD_SESSION_MAX_HOURS", 12, 1, 720) * 3_600_000,
    cookieSecure: secure === "auto" ? "auto" : flag(env, "KEYWARD_COOKIE_SECURE", true),
    memberKeyScopes: list(env.KEYWARD_MEMBER_KEY_SCOPES, "read,write"),
    adminKeyScopes: list(env.KEYWARD_ADMIN_KEY_SCOPES, "*"),
    memberKeyCreatesPerHour: integer(env, "KEYWARD_MEMBER_KEY_CREATES_PER_HOUR", 20, 0, 10_000),
    memberProductionKeys: production,
    allowedOrigins: list(env.KEYWARD_DASHBOARD_ORIGINS, ""),
    signInIpv6Prefix: integer(env, "KEYWARD_SIGN_IN_IPV6_PREFIX", 64, 32, 128),
    signInAccountLimit: integer(env, "KEYWARD_SIGN_IN_ACCOUNT_LIMIT", 10, 1, 10_000),
    maxSessionsPerUser: integer(env, "KEYWARD_MAX_SESSIONS_PER_USER", 10, 1, 1_000),
    sessionPurgeMs: integer(env, "KEYWARD_SESSION_PURGE_MS", 600_000, 50, 86_400_000),
  };
}
