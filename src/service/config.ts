import { KeywardError } from "../core/errors.js";
import { type HashSecret, parseHashSecrets } from "../core/hashing.js";
import { DEFAULT_KEY_PREFIX, isValidKeyPrefix } from "../core/key-format.js";

/** Every setting of `keyward serve` and the CLI; docs/configuration.md lists them with defaults. */
export interface ServiceConfig {
  databaseUrl: string;
  port: number;
  host: string;
  prefix: string;
  hashSecrets: HashSecret[];
  realm: string;
  allowQueryKeys: boolean;
  /** Addresses/CIDRs of proxies whose `X-Forwarded-For` is believed. Empty: believe none. */
  trustProxy: string[];
  cacheMaxAgeMs: number;
  staleWindowMs: number;
  bodyLimitBytes: number;
  logLevel: string;
  logRequests: boolean;
  redisUrl: string | null;
  /** Prefix of every Redis key and channel, so deployments (or tests) can share one Redis. */
  redisPrefix: string;
  /** PostgreSQL schema for Keyward's tables; default the connection's search_path. */
  databaseSchema: string | null;
  /** The dashboard and its session API (docs/dashboard.md). */
  dashboard: DashboardConfig;
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
  /** Origins allowed to call with a session besides the service's own (e.g. a proxy's public URL). */
  allowedOrigins: string[];
}

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
  return {
    databaseUrl: env.KEYWARD_DATABASE_URL || "sqlite:./data/keyward.db",
    port: integer(env, env.KEYWARD_PORT ? "KEYWARD_PORT" : "PORT", 8080, 0, 65535),
    host: env.KEYWARD_HOST || "127.0.0.1",
    prefix,
    hashSecrets,
    realm: env.KEYWARD_REALM || "keyward",
    allowQueryKeys: flag(env, "KEYWARD_ALLOW_QUERY_KEYS", false),
    trustProxy: (env.KEYWARD_TRUST_PROXY ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
    cacheMaxAgeMs: integer(env, "KEYWARD_CACHE_MAX_AGE_MS", 5_000, 0, 60_000),
    staleWindowMs: integer(env, "KEYWARD_STALE_WINDOW_MS", 300_000, 0, 3_600_000),
    bodyLimitBytes: integer(env, "KEYWARD_BODY_LIMIT", 65_536, 1_024, 10_485_760),
    logLevel: env.KEYWARD_LOG_LEVEL || "info",
    logRequests: flag(env, "KEYWARD_LOG_REQUESTS", false),
    redisUrl: env.KEYWARD_REDIS_URL || null,
    redisPrefix: env.KEYWARD_REDIS_PREFIX || "keyward:",
    databaseSchema: env.KEYWARD_DATABASE_SCHEMA || null,
    dashboard: loadDashboardConfig(env),
  };
}

const list = (raw: string | undefined, fallback: string): string[] =>
  (raw ?? fallback)
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

function loadDashboardConfig(env: Env): DashboardConfig {
  const secure = env.KEYWARD_COOKIE_SECURE?.toLowerCase() || "auto";
  return {
    enabled: flag(env, "KEYWARD_DASHBOARD", true),
    sessionIdleMs: integer(env, "KEYWARD_SESSION_IDLE_MINUTES", 30, 1, 1_440) * 60_000,
    sessionMaxMs: integer(env, "KEYWARD_SESSION_MAX_HOURS", 12, 1, 720) * 3_600_000,
    cookieSecure: secure === "auto" ? "auto" : flag(env, "KEYWARD_COOKIE_SECURE", true),
    memberKeyScopes: list(env.KEYWARD_MEMBER_KEY_SCOPES, "read,write"),
    adminKeyScopes: list(env.KEYWARD_ADMIN_KEY_SCOPES, "*"),
    memberKeyCreatesPerHour: integer(env, "KEYWARD_MEMBER_KEY_CREATES_PER_HOUR", 20, 0, 10_000),
    allowedOrigins: list(env.KEYWARD_DASHBOARD_ORIGINS, ""),
  };
}
