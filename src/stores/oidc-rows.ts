import type { OidcFlowRecord, OidcLinkRecord } from "../ports/account-store.js";

/**
 * Single sign-on (docs/sso.md): which identity-provider subject is which user, and the sign-ins
 * under way (state → nonce, PKCE verifier, browser binding; deleted when used or expired).
 * One migration for both tables, appended to the accounts module (`accounts/0005_oidc`).
 */
export function oidcSchema(bigint: "INTEGER" | "BIGINT", strict: string): string {
  return `
  CREATE TABLE oidc_links (
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    created_at ${bigint} NOT NULL,
    PRIMARY KEY (issuer, subject),
    UNIQUE (issuer, user_id)
  )${strict};
  CREATE TABLE oidc_flows (
    state_digest TEXT PRIMARY KEY,
    browser_digest TEXT NOT NULL,
    nonce TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    return_to TEXT NOT NULL,
    expires_at ${bigint} NOT NULL
  )${strict};
  CREATE INDEX oidc_flows_expiry ON oidc_flows (expires_at);
`;
}

export interface OidcLinkRow {
  issuer: string;
  subject: string;
  user_id: string;
  created_at: number | string;
}

export interface OidcFlowRow {
  state_digest: string;
  browser_digest: string;
  nonce: string;
  code_verifier: string;
  redirect_uri: string;
  return_to: string;
  expires_at: number | string;
}

/** `?` placeholders; the PostgreSQL store numbers them. */
export const OIDC_SQL = {
  getLink: "SELECT issuer, subject, user_id, created_at FROM oidc_links WHERE issuer = ? AND subject = ?",
  insertLink: "INSERT INTO oidc_links (issuer, subject, user_id, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
  insertFlow:
    "INSERT INTO oidc_flows (state_digest, browser_digest, nonce, code_verifier, redirect_uri, return_to, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
  takeFlow:
    "DELETE FROM oidc_flows WHERE state_digest = ? RETURNING state_digest, browser_digest, nonce, code_verifier, redirect_uri, return_to, expires_at",
  deleteExpiredFlows: "DELETE FROM oidc_flows WHERE expires_at <= ?",
} as const;

export const rowToOidcLink = (row: OidcLinkRow): OidcLinkRecord => ({
  issuer: row.issuer,
  subject: row.subject,
  userId: row.user_id,
  createdAt: Number(row.created_at),
});

export const rowToOidcFlow = (row: OidcFlowRow): OidcFlowRecord => ({
  stateDigest: row.state_digest,
  browserDigest: row.browser_digest,
  nonce: row.nonce,
  codeVerifier: row.code_verifier,
  redirectUri: row.redirect_uri,
  returnTo: row.return_to,
  expiresAt: Number(row.expires_at),
});

export const oidcLinkToValues = (link: OidcLinkRecord): unknown[] => [link.issuer, link.subject, link.userId, link.createdAt];

export const oidcFlowToValues = (flow: OidcFlowRecord): unknown[] => [
  flow.stateDigest,
  flow.browserDigest,
  flow.nonce,
  flow.codeVerifier,
  flow.redirectUri,
  flow.returnTo,
  flow.expiresAt,
];
