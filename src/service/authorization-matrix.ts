import type { ActionType } from "../authority/model.js";

/**
 * Who may call each route (docs/security.md, check 10). Checked in, and a test fails when a registered route
 * has no entry here, so every new route is a deliberate authorization decision.
 *
 * - `public`: no credentials.
 * - `key`: an API key holding `scopes` (management keys).
 * - `key-or-session`: that, or a dashboard session whose role holds `scopes`; `members` says
 *   what a member (role `member`) may reach: `own` = only their own keys/requests (others are 404),
 *   `none` = refused (403).
 * - `holder`: any valid key, acting on itself (introspection, forward auth, asking for a production key).
 * - `session`: a dashboard session only.
 * - `portal`: a portal session only (`Authorization: Portal <token>`, docs/embedding.md).
 *
 * A portal session is also taken by the routes `PORTAL_ROUTES` names (portal-cors.ts), bounded
 * to its owner's keys and its policy (docs/authority.md, "Portal sessions"); every other route
 * refuses a portal token with 403.
 */
export type Access = "public" | "key" | "key-or-session" | "holder" | "holder-or-session" | "session" | "portal";

export interface MatrixEntry {
  access: Access;
  scopes: readonly string[];
  /**
   * The authority decisions (src/authority, docs/authority.md) the route asks for. Every
   * management route names at least one, except read-only lookups that confer nothing; a test
   * fails when an action is named by no route, or a route's handler does not ask for it.
   */
  actions?: readonly ActionType[];
  members?: "own" | "none";
  note?: string;
}

export const AUTHORIZATION_MATRIX: Record<string, MatrixEntry> = {
  "GET /healthz": { access: "public", scopes: [] },
  "GET /readyz": { access: "public", scopes: [] },
  "GET /metrics": { access: "public", scopes: [], note: "bind to a private interface or protect at the proxy" },
  "GET /openapi.json": { access: "public", scopes: [] },
  "GET /docs": { access: "public", scopes: [] },
  "GET /docs/errors": { access: "public", scopes: [] },

  "POST /v1/keys": {
    access: "key-or-session",
    scopes: ["keys:write"],
    actions: ["key.create"],
    members: "own",
    note: "members: own keys, member scopes, sandbox only by default, capped rate (exact)",
  },
  "GET /v1/keys": { access: "key-or-session", scopes: ["keys:read"], actions: ["key.read"], members: "own" },
  "GET /v1/keys/:id": { access: "key-or-session", scopes: ["keys:read"], actions: ["key.read"], members: "own" },
  "PATCH /v1/keys/:id": {
    access: "key-or-session",
    scopes: ["keys:write"],
    actions: ["key.update"],
    members: "own",
    note: "members tighten controls, loosen only what they set",
  },
  "POST /v1/keys/:id/rotate": { access: "key-or-session", scopes: ["keys:write"], actions: ["key.rotate"], members: "own" },
  "POST /v1/keys/:id/revoke": { access: "key-or-session", scopes: ["keys:write"], actions: ["key.revoke"], members: "own" },
  "POST /v1/keys/:id/end-grace": {
    access: "key-or-session",
    scopes: ["keys:write"],
    actions: ["key.revoke"],
    members: "own",
    note: "the revoke decision, for every key whose grace ends: whoever may revoke it may end its grace",
  },
  "POST /v1/keys/import": {
    access: "key",
    scopes: ["keys:write"],
    actions: ["keys.import"],
    note: "admin keys only: the keys.import decision refuses every bounded caller (an import confers whatever its records name)",
  },
  "POST /v1/keys/verify": { access: "key", scopes: ["keys:verify"], actions: [] },
  "GET /v1/authz": { access: "holder", scopes: [], note: "required scopes come from the proxy's request" },
  "POST /v1/authz": { access: "holder", scopes: [] },
  "PUT /v1/authz": { access: "holder", scopes: [] },
  "PATCH /v1/authz": { access: "holder", scopes: [] },
  "DELETE /v1/authz": { access: "holder", scopes: [] },
  "OPTIONS /v1/authz": { access: "holder", scopes: [] },
  "GET /v1/introspect": { access: "holder", scopes: [] },
  "POST /v1/organizations": {
    access: "key-or-session",
    scopes: ["keys:write"],
    actions: ["organization.govern"],
    members: "none",
    note: "administrators (an admin key, the admin role)",
  },
  "GET /v1/organizations": {
    access: "key-or-session",
    scopes: ["keys:read"],
    actions: [],
    members: "own",
    note: "members: the organizations they belong to; a key bound to an organization: that one",
  },
  "GET /v1/organizations/:id": { access: "key-or-session", scopes: ["keys:read"], actions: [], members: "own" },
  "PATCH /v1/organizations/:id": {
    access: "key-or-session",
    scopes: ["keys:write"],
    actions: ["organization.update", "organization.govern", "owner.update"],
    members: "own",
    note: "name: its owners and admins; shared limits: administrators; disabled: its owners and admins, within reach of every key",
  },
  "GET /v1/organizations/:id/members": { access: "key-or-session", scopes: ["keys:read"], actions: [], members: "own" },
  "POST /v1/organizations/:id/members": {
    access: "key-or-session",
    scopes: ["keys:write"],
    actions: ["organization.members"],
    members: "own",
    note: "its owners (any role) and admins (developers, viewers)",
  },
  "PATCH /v1/organizations/:id/members/:user_id": {
    access: "key-or-session",
    scopes: ["keys:write"],
    actions: ["organization.members"],
    members: "own",
    note: "the role before and after both within the caller's",
  },
  "DELETE /v1/organizations/:id/members/:user_id": {
    access: "key-or-session",
    scopes: ["keys:read"],
    actions: ["organization.members"],
    members: "own",
    note: "as adding; any member may leave; the last owner stays",
  },
  "GET /v1/owners/:type/:id": { access: "key", scopes: ["keys:read"], actions: [] },
  "PATCH /v1/owners/:type/:id": { access: "key", scopes: ["users:write"], actions: ["owner.update"] },
  "GET /v1/audit-events": { access: "key-or-session", scopes: ["audit:read"], actions: ["audit.read"], members: "none" },
  "POST /v1/leaks": { access: "key", scopes: ["keys:write"], actions: ["leaks.report"] },
  "GET /v1/usage": {
    access: "key-or-session",
    scopes: ["keys:read"],
    actions: ["usage.read", "key.read"],
    members: "own",
    note: "members see their own keys' usage only",
  },
  "GET /v1/keys/:id/requests": {
    access: "key-or-session",
    scopes: ["keys:read"],
    actions: ["usage.read", "key.read"],
    members: "own",
    note: "read as the key's usage is: members see their own keys' logs only",
  },
  "POST /v1/leases/release": {
    access: "holder",
    scopes: [],
    note: "the key that holds the lease; naming another key's lease needs keys:verify",
  },
  "GET /v1/audit-events/export": { access: "key", scopes: ["audit:read"], actions: ["audit.read"] },
  "POST /v1/webhooks": { access: "key", scopes: ["admin"], actions: ["webhooks.manage"] },
  "GET /v1/webhooks": { access: "key", scopes: ["admin"], actions: ["webhooks.manage"] },
  "GET /v1/webhooks/:id": { access: "key", scopes: ["admin"], actions: ["webhooks.manage"] },
  "DELETE /v1/webhooks/:id": { access: "key", scopes: ["admin"], actions: ["webhooks.manage"] },
  "GET /v1/webhooks/:id/deliveries": { access: "key", scopes: ["admin"], actions: ["webhooks.manage"] },

  "GET /v1/setup": { access: "public", scopes: [], note: "tells only whether setup is pending" },
  "POST /v1/setup": { access: "public", scopes: [], note: "needs the one-time setup token" },
  "POST /v1/session": { access: "public", scopes: [], note: "email and password; throttled" },
  "GET /v1/session/oidc/start": { access: "public", scopes: [], note: "SSO: 302 to the provider; 404 unless configured" },
  "GET /v1/session/oidc/callback": { access: "public", scopes: [], note: "SSO: state, PKCE, ID token checked; opens a session" },
  "GET /v1/session": { access: "session", scopes: [] },
  "DELETE /v1/session": { access: "session", scopes: [] },
  "POST /v1/session/password": { access: "session", scopes: [], note: "needs the current password; ends every session of the user" },
  "GET /v1/session/all": { access: "session", scopes: [], note: "the caller's own sessions only" },
  "DELETE /v1/session/others": { access: "session", scopes: [], note: "the caller's own sessions only, this one kept" },
  "DELETE /v1/session/:session_id": { access: "session", scopes: [], note: "the caller's own sessions only (another's is 404)" },
  "GET /v1/users": { access: "key-or-session", scopes: ["users:write"], actions: ["users.read"], members: "none" },
  "POST /v1/users": { access: "key-or-session", scopes: ["users:write"], actions: ["user.create"], members: "none" },
  "GET /v1/users/:id": { access: "key-or-session", scopes: ["users:write"], actions: ["users.read"], members: "none" },
  "PATCH /v1/users/:id": {
    access: "key-or-session",
    scopes: ["users:write"],
    actions: ["user.update"],
    members: "none",
    note: "disable or enable; require a new password at next sign-in",
  },
  "GET /v1/users/:id/sessions": { access: "key-or-session", scopes: ["users:write"], actions: ["users.read"], members: "none" },
  "DELETE /v1/users/:id/sessions": {
    access: "key-or-session",
    scopes: ["users:write"],
    actions: ["user.sessions"],
    members: "none",
    note: "decided as managing the user is: nobody signs out someone with more rights",
  },
  "DELETE /v1/users/:id/sessions/:session_id": {
    access: "key-or-session",
    scopes: ["users:write"],
    actions: ["user.sessions"],
    members: "none",
    note: "decided as managing the user is: nobody signs out someone with more rights",
  },
  "POST /v1/users/:id/invite": {
    access: "key-or-session",
    scopes: ["users:write"],
    actions: ["user.credentials"],
    members: "none",
    note: "a one-time link to the account: decided as managing the user is",
  },
  "POST /v1/users/:id/password-reset": {
    access: "key-or-session",
    scopes: ["users:write"],
    actions: ["user.credentials"],
    members: "none",
    note: "a one-time link to the account: decided as managing the user is",
  },
  "POST /v1/invites/inspect": { access: "public", scopes: [], note: "needs the link's token; throttled per address" },
  "POST /v1/invites/accept": { access: "public", scopes: [], note: "needs the link's token, once; throttled per address" },
  "POST /v1/password-resets/inspect": { access: "public", scopes: [], note: "needs the link's token; throttled per address" },
  "POST /v1/password-resets/accept": { access: "public", scopes: [], note: "needs the link's token, once; throttled per address" },
  "POST /v1/key-requests": {
    access: "holder-or-session",
    scopes: [],
    actions: ["key_request.create"],
    members: "own",
    note: "a sandbox key for itself, or its owner",
  },
  "GET /v1/key-requests": { access: "key-or-session", scopes: ["keys:read"], actions: ["key_request.read"], members: "own" },
  "GET /v1/key-requests/:id": { access: "key-or-session", scopes: ["keys:read"], actions: ["key_request.read"], members: "own" },
  "POST /v1/key-requests/:id/approve": {
    access: "key-or-session",
    scopes: ["keys:write"],
    actions: ["key_request.approve"],
    members: "none",
  },
  "POST /v1/key-requests/:id/reject": {
    access: "key-or-session",
    scopes: ["keys:write"],
    actions: ["key_request.reject"],
    members: "none",
  },
  "POST /v1/key-requests/:id/claim": {
    access: "holder-or-session",
    scopes: [],
    actions: ["key_request.claim"],
    members: "own",
    note: "the sandbox key or the requester",
  },

  "POST /v1/portal-sessions": {
    access: "key",
    scopes: ["portal:create"],
    actions: ["portal_session.create"],
    note: "decided as delegating is: the policy lies within the opening key's ceiling",
  },
  "GET /v1/portal-sessions/:id": {
    access: "key",
    scopes: ["portal:create"],
    actions: ["portal_session.manage"],
    note: "an admin key, or a key of the owner of the key that opened it (others: 404)",
  },
  "DELETE /v1/portal-sessions/:id": {
    access: "key",
    scopes: ["portal:create"],
    actions: ["portal_session.manage"],
    note: "an admin key, or a key of the owner of the key that opened it (others: 404)",
  },
  "GET /v1/portal/session": { access: "portal", scopes: [], actions: [], note: "the calling portal session itself" },
  "GET /portal": { access: "public", scopes: [], note: "the hosted page; the token comes in the URL fragment" },
  "GET /embed/:file": { access: "public", scopes: [], note: "<keyward-keys> and the hosted page's files, from an allow-list" },

  "GET /dashboard": { access: "public", scopes: [], note: "redirect" },
  "GET /dashboard/": { access: "public", scopes: [], note: "static page; data needs a session" },
  "GET /dashboard/*": { access: "public", scopes: [], note: "the dashboard's .js, .css and .svg files, from an allow-list" },
};
