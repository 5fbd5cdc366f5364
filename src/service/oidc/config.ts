import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { KeywardError } from "../../core/errors.js";

/** OpenID Connect sign-in for dashboard users (docs/sso.md, docs/configuration.md "Single sign-on"). */
export interface OidcConfig {
  /** `KEYWARD_OIDC_ISSUER`: the provider's issuer identifier, exactly as its discovery document states it. */
  issuer: string;
  clientId: string;
  /** `KEYWARD_OIDC_CLIENT_SECRET` or the file `KEYWARD_OIDC_CLIENT_SECRET_FILE` names. Never logged. */
  clientSecret: string;
  /** `KEYWARD_OIDC_REDIRECT_URL`; null: `KEYWARD_PUBLIC_URL` (else the request's origin) + `/v1/session/oidc/callback`. */
  redirectUrl: string | null;
  scopes: string[];
  /** A user whose groups claim holds one of these is an admin, else a member; empty: the provider does not manage roles. */
  adminGroups: string[];
  groupsClaim: string;
  /** Lower-cased email domains allowed to sign in; empty: any. */
  allowedDomains: string[];
  /** `KEYWARD_OIDC_STARTS_PER_MINUTE`: sign-ins one client address may start a minute, per instance. */
  startsPerMinute: number;
}

export interface SsoConfig {
  /** `KEYWARD_PASSWORD_SIGN_IN` (default on): off refuses every password route with `PASSWORD_SIGN_IN_DISABLED`. */
  passwordSignIn: boolean;
  oidc: OidcConfig | null;
}

export const OIDC_CALLBACK_PATH = "/v1/session/oidc/callback";

type Env = Record<string, string | undefined>;

const invalid = (message: string) => new KeywardError("INVALID_CONFIGURATION", message);

const LOOPBACK_NAMES = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** Plain HTTP is for loopback only (tests, local development): anything else must be TLS. */
function isLoopbackHost(hostname: string): boolean {
  if (LOOPBACK_NAMES.has(hostname) || hostname.endsWith(".localhost")) return true;
  return isIP(hostname) === 4 && hostname.startsWith("127.");
}

function parseUrl(name: string, raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalid(`${name} must be an https:// URL (http:// only for a loopback host)`);
  }
  const tls = url.protocol === "https:" || (url.protocol === "http:" && isLoopbackHost(url.hostname));
  if (!tls || url.username || url.password || url.search || url.hash || raw.includes("#"))
    throw invalid(`${name} must be an https:// URL (http:// only for a loopback host), with no credentials, query or fragment`);
  return url;
}

const list = (raw: string | undefined): string[] =>
  (raw ?? "")
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);

const DOMAIN = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/;
/** A claim name: printable, no spaces (URL-shaped names such as `https://example.com/groups` are common). */
const CLAIM_NAME = /^[\x21-\x7e]{1,200}$/;

function onOff(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === "") return fallback;
  if (raw === "on") return true;
  if (raw === "off") return false;
  throw invalid(`${name} must be on or off`);
}

function clientSecret(env: Env): string | null {
  const inline = env.KEYWARD_OIDC_CLIENT_SECRET || undefined;
  const file = env.KEYWARD_OIDC_CLIENT_SECRET_FILE || undefined;
  if (inline && file) throw invalid("set KEYWARD_OIDC_CLIENT_SECRET or KEYWARD_OIDC_CLIENT_SECRET_FILE, not both");
  if (!file) return inline ?? null;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw invalid(`KEYWARD_OIDC_CLIENT_SECRET_FILE cannot be read: ${(error as NodeJS.ErrnoException).code ?? "error"}`);
  }
  // One trailing newline (as `echo` and most secret stores write it) is not part of the secret.
  const secret = text.replace(/\r?\n$/, "");
  if (!secret) throw invalid("KEYWARD_OIDC_CLIENT_SECRET_FILE is empty");
  return secret;
}

const OIDC_SETTINGS = [
  "KEYWARD_OIDC_CLIENT_ID",
  "KEYWARD_OIDC_CLIENT_SECRET",
  "KEYWARD_OIDC_CLIENT_SECRET_FILE",
  "KEYWARD_OIDC_REDIRECT_URL",
  "KEYWARD_OIDC_SCOPES",
  "KEYWARD_OIDC_ADMIN_GROUPS",
  "KEYWARD_OIDC_GROUPS_CLAIM",
  "KEYWARD_OIDC_ALLOWED_DOMAINS",
  "KEYWARD_OIDC_STARTS_PER_MINUTE",
] as const;

/**
 * `KEYWARD_OIDC_*` and `KEYWARD_PASSWORD_SIGN_IN` (docs/configuration.md). Every combination
 * that could not work, or would lock every administrator out, stops the start with
 * `INVALID_CONFIGURATION` naming the setting. Messages never echo the client secret.
 */
export function loadSsoConfig(env: Env): SsoConfig {
  const passwordSignIn = onOff(env, "KEYWARD_PASSWORD_SIGN_IN", true);
  const issuerRaw = env.KEYWARD_OIDC_ISSUER?.trim();
  if (!issuerRaw) {
    const stray = OIDC_SETTINGS.find((name) => env[name]?.trim());
    if (stray) throw invalid(`${stray} is set but KEYWARD_OIDC_ISSUER is not: set the issuer to turn single sign-on on`);
    if (!passwordSignIn)
      throw invalid("KEYWARD_PASSWORD_SIGN_IN=off needs single sign-on: set KEYWARD_OIDC_ISSUER, or nobody could sign in");
    return { passwordSignIn, oidc: null };
  }
  const issuerUrl = parseUrl("KEYWARD_OIDC_ISSUER", issuerRaw);
  const clientId = env.KEYWARD_OIDC_CLIENT_ID?.trim();
  if (!clientId) throw invalid("KEYWARD_OIDC_CLIENT_ID is required with KEYWARD_OIDC_ISSUER");
  const secret = clientSecret(env);
  if (!secret) throw invalid("KEYWARD_OIDC_CLIENT_SECRET (or KEYWARD_OIDC_CLIENT_SECRET_FILE) is required with KEYWARD_OIDC_ISSUER");
  const redirectRaw = env.KEYWARD_OIDC_REDIRECT_URL?.trim();
  let redirectUrl: string | null = null;
  if (redirectRaw) {
    const url = parseUrl("KEYWARD_OIDC_REDIRECT_URL", redirectRaw);
    if (!url.pathname.endsWith(OIDC_CALLBACK_PATH))
      throw invalid(`KEYWARD_OIDC_REDIRECT_URL must end with ${OIDC_CALLBACK_PATH} (the service's callback, behind any path prefix)`);
    redirectUrl = url.href;
  }
  const scopes = (env.KEYWARD_OIDC_SCOPES?.trim() || "openid email profile").split(/\s+/);
  if (!scopes.includes("openid")) throw invalid("KEYWARD_OIDC_SCOPES must include openid");
  if (scopes.some((scope) => !/^[\x21\x23-\x5b\x5d-\x7e]{1,100}$/.test(scope)))
    throw invalid("KEYWARD_OIDC_SCOPES must be scope names separated by spaces");
  const adminGroups = list(env.KEYWARD_OIDC_ADMIN_GROUPS);
  if (!passwordSignIn && adminGroups.length === 0)
    throw invalid(
      "KEYWARD_PASSWORD_SIGN_IN=off needs KEYWARD_OIDC_ADMIN_GROUPS: administrators can then only come from the provider's groups",
    );
  const groupsClaim = env.KEYWARD_OIDC_GROUPS_CLAIM?.trim() || "groups";
  if (!CLAIM_NAME.test(groupsClaim)) throw invalid("KEYWARD_OIDC_GROUPS_CLAIM must be a claim name (printable, no spaces)");
  const allowedDomains = list(env.KEYWARD_OIDC_ALLOWED_DOMAINS).map((domain) => domain.toLowerCase());
  const badDomain = allowedDomains.find((domain) => !DOMAIN.test(domain));
  if (badDomain !== undefined)
    throw invalid("KEYWARD_OIDC_ALLOWED_DOMAINS must be email domains separated by commas: example.com,example.org");
  const startsRaw = env.KEYWARD_OIDC_STARTS_PER_MINUTE?.trim() || "30";
  const startsPerMinute = Number(startsRaw);
  if (!/^\d+$/.test(startsRaw) || startsPerMinute < 1 || startsPerMinute > 100_000)
    throw invalid("KEYWARD_OIDC_STARTS_PER_MINUTE must be a whole number from 1 to 100,000");
  // The discovery document's `issuer` must be this URL; ID tokens must carry that `issuer` exactly.
  return {
    passwordSignIn,
    oidc: {
      issuer: issuerUrl.href,
      clientId,
      clientSecret: secret,
      redirectUrl,
      scopes,
      adminGroups,
      groupsClaim,
      allowedDomains,
      startsPerMinute,
    },
  };
}
