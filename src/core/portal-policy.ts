import { createHash, randomBytes } from "node:crypto";
import { KeywardError } from "./errors.js";
import type { Environment } from "./key-format.js";
import type { Actor, OwnerRef } from "./model.js";
import { MANAGEMENT_SCOPES, scopeCovers } from "./scopes.js";

/**
 * Portal sessions (docs/embedding.md): a short-lived token a host application's backend opens for
 * one owner, with which that owner's person manages their own keys within a policy. Pure: no I/O.
 */

/** What the person may do through the session. */
export interface PortalPolicy {
  /** The scopes they may put on a key (never a management scope). */
  scopes: string[];
  /** The environments they may create keys in. */
  environments: Environment[];
  /** Every key they create must expire, at most this many days after it is made. */
  maxExpiresInDays: number;
  /** Whether they may ask for a production key (an administrator approves) and pick it up. */
  mayRequestProduction: boolean;
  /** At most this many live (not revoked, not expired) keys of the owner when creating; null: no cap. */
  maxKeys: number | null;
}

export interface PortalSessionRecord {
  id: string;
  /** SHA-256 of the token: the token itself is shown once and never stored. */
  digest: string;
  owner: OwnerRef;
  policy: PortalPolicy;
  /** The host's person: recorded in the details of every audit event made through the session. */
  hostActor: { id: string; email: string | null };
  /** Who opened it (an admin key or a `portal:create` key), and that key's owner (null for the CLI). */
  createdBy: Actor;
  createdByOwner: OwnerRef | null;
  createdAt: number;
  expiresAt: number;
  revokedAt: number | null;
  /** When set, a browser call through the session must come from this origin. */
  allowedOrigin: string | null;
  /** The hosted page's "Back to …" link: https, or http on a loopback host. */
  returnUrl: string | null;
  /** The name of the host application, for that link. */
  appName: string | null;
}

export const PORTAL_SESSION_ID_KIND = "pts";
export const PORTAL_TOKEN_PREFIX = "kwp_";
/** `kwp_` and 43 base64url characters: 256 random bits. */
export const PORTAL_TOKEN = /^kwp_[A-Za-z0-9_-]{43}$/;
export const PORTAL_DEFAULT_TTL_SECONDS = 900;
export const PORTAL_MAX_TTL_SECONDS = 4 * 3600;
export const PORTAL_DEFAULT_MAX_EXPIRES_IN_DAYS = 90;
export const PORTAL_MAX_EXPIRES_IN_DAYS = 3650;

export function generatePortalToken(): string {
  return `${PORTAL_TOKEN_PREFIX}${randomBytes(32).toString("base64url")}`;
}

/** The stored form of a token, as for setup and invite tokens: SHA-256, base64url. */
export const digestPortalToken = (token: string): string => createHash("sha256").update(token).digest("base64url");

/** The scheme a portal token travels in: `Authorization: Portal <token>` (never a cookie, never a URL). */
export const PORTAL_SCHEME = /^Portal[ \t]+(\S+)[ \t]*$/i;

/** The token of an `Authorization` header in the Portal scheme, or null when it is another scheme. */
export function portalTokenOf(authorization: string | string[] | undefined): string | null | "malformed" {
  if (authorization === undefined) return null;
  const values = Array.isArray(authorization) ? authorization : [authorization];
  const portal = values.filter((value) => /^Portal(\s|$)/i.test(value));
  if (portal.length === 0) return null;
  if (values.length !== 1) return "malformed";
  const match = PORTAL_SCHEME.exec(portal[0] as string);
  return match ? (match[1] as string) : "malformed";
}

const invalid = (field: string, message: string) =>
  new KeywardError("VALIDATION_FAILED", `${field}: ${message}`, { errors: [{ field, message }] });

/** A policy scope may grant no management right: a portal session manages nothing but its own keys. */
export function checkPolicyScopes(scopes: readonly string[]): void {
  for (const scope of scopes)
    if (MANAGEMENT_SCOPES.some((management) => scopeCovers(scope, management)) || scope === "admin")
      throw invalid("body.policy.scopes", `${scope} grants a management scope: a portal session may confer none`);
}

function isLoopbackHost(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/** `return_url`: https, or http on a loopback host; no credentials. */
export function checkReturnUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid("body.return_url", "must be an absolute URL");
  }
  const tls = url.protocol === "https:" || (url.protocol === "http:" && isLoopbackHost(url.hostname));
  if (!tls || url.username || url.password)
    throw invalid("body.return_url", "must be https:// (http:// only for a loopback host), without credentials");
  return url.href;
}

/** An origin as browsers send it: `https://app.example.com` or `http://127.0.0.1:3000`, nothing more. */
export function normaliseOrigin(value: string): string | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  if ((url.protocol !== "https:" && url.protocol !== "http:") || url.username || url.password) return null;
  if (url.origin !== value.replace(/\/$/, "")) return null;
  return url.origin;
}
