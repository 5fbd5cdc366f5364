// Acme: a small product that lets its customers manage their own API keys with Keyward.
//
// - Its own sign-in (users.js: scrypt-hashed demo passwords) and its own session cookie
//   (HttpOnly, SameSite=Lax). Keyward's accounts are not involved.
// - A settings page that opens Keyward portal sessions server-side (POST /v1/portal-sessions with
//   a `portal:create` key) and hands each token to a <keyward-keys> element.
// - An API, GET /api/orders, that takes either an Acme API key (verified by Keyward, through
//   keyward/client and keyward/fastify in `optional` mode) or the Acme session cookie.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import Fastify from "fastify";
import { KeywardClient } from "keyward/client";
import { keywardFastify } from "keyward/fastify";
import { checkPassword, companyById, ordersOf, userById } from "./users.js";

/** An order as the API shows it. @param {import("./users.js").Order} order */
const orderJson = ({ id, item, quantity, status }) => ({ id, item, quantity, status });

const SESSION_COOKIE = "acme_session";
const SESSION_MS = 8 * 60 * 60 * 1000;
const STATIC = {
  "/static/settings.js": { file: "settings.js", type: "text/javascript; charset=utf-8" },
  "/static/acme.css": { file: "acme.css", type: "text/css; charset=utf-8" },
};

/** What a person may do with their keys: the element builds its form from this. */
const POLICY = {
  scopes: ["orders:read", "orders:write"],
  environments: ["sandbox"],
  max_expires_in_days: 90,
  may_request_production: true,
  max_keys: 10,
};

/** @param {unknown} text */
const esc = (text) =>
  String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c);

/**
 * @typedef {object} AcmeOptions
 * @property {string} origin This app's origin as browsers see it, e.g. `http://127.0.0.1:3100`.
 * @property {string} keywardUrl Where this backend reaches Keyward, e.g. `http://127.0.0.1:8080`.
 * @property {string} [keywardPublicUrl] Where browsers reach Keyward (the element's script and calls); default `keywardUrl`.
 * @property {string} portalKey A Keyward key with `portal:create` (and a ceiling covering POLICY).
 * @property {string} verifyKey A Keyward key with `keys:verify`, for keyward/client.
 * @property {import("fastify").FastifyServerOptions["logger"]} [logger]
 */

/** @param {AcmeOptions} options @returns {import("fastify").FastifyInstance} */
export function buildAcmeApp(options) {
  const origin = new URL(options.origin).origin;
  const keywardUrl = options.keywardUrl.replace(/\/+$/, "");
  const keywardPublic = new URL(options.keywardPublicUrl ?? keywardUrl).origin;
  const secure = origin.startsWith("https://");
  const app = Fastify({ logger: options.logger ?? false });

  // Keyward verifies the API keys; `optional` lets a request without one reach our own session check.
  const client = new KeywardClient({ url: keywardUrl, serviceKey: options.verifyKey });
  const auth = keywardFastify(app, client, { realm: "acme" });

  /** @type {Map<string, {userId: string, expiresAt: number}>} */
  const sessions = new Map();
  const assets = Object.fromEntries(
    Object.entries(STATIC).map(([path, { file, type }]) => [
      path,
      { body: readFileSync(new URL(`./public/${file}`, import.meta.url)), type },
    ]),
  );

  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string", bodyLimit: 4096 }, (_request, body, done) =>
    done(null, Object.fromEntries(new URLSearchParams(String(body)))),
  );

  // Every answer: no sniffing, no referrer to other sites, no framing.
  app.addHook("onSend", async (_request, reply) => {
    reply.header("x-content-type-options", "nosniff");
    // same-origin, not no-referrer: under no-referrer a browser sends `Origin: null` on our own form posts.
    reply.header("referrer-policy", "same-origin");
    reply.header("x-frame-options", "DENY");
  });
  // A form post from another site is refused (SameSite=Lax already keeps our cookie off it).
  app.addHook("onRequest", async (request, reply) => {
    if (request.method === "POST" && request.headers.origin !== undefined && request.headers.origin !== origin)
      return reply.code(403).type("text/plain").send("cross-origin form posts are refused");
  });

  /** The Acme session cookie's value, if any. @param {import("fastify").FastifyRequest} request */
  const sessionToken = (request) =>
    (request.headers.cookie ?? "")
      .split(";")
      .map((part) => part.trim().split("="))
      .find(([name]) => name === SESSION_COOKIE)?.[1] ?? null;

  /** The signed-in person, or null. @param {import("fastify").FastifyRequest} request */
  function sessionUser(request) {
    const token = sessionToken(request);
    const session = token ? sessions.get(token) : undefined;
    if (!token || !session) return null;
    if (session.expiresAt < Date.now()) {
      sessions.delete(token);
      return null;
    }
    return userById(session.userId);
  }

  /** @param {string} value @param {number} maxAgeSeconds */
  const cookie = (value, maxAgeSeconds) =>
    `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${maxAgeSeconds}${secure ? "; Secure" : ""}`;

  /** @param {string} title @param {string} body */
  const page = (title, body) =>
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>${esc(title)} · Acme</title><link rel="stylesheet" href="/static/acme.css"></head>` +
    `<body><header class="bar"><span class="brand">Acme</span></header><main>${body}</main></body></html>`;

  /** @param {string} error */
  const signInPage = (error) =>
    page(
      "Sign in",
      `<h1>Sign in to Acme</h1>` +
        (error ? `<p class="error" role="alert">${esc(error)}</p>` : "") +
        `<form method="post" action="/signin" class="card">` +
        `<label for="email">Email</label><input id="email" name="email" type="email" autocomplete="username" required>` +
        `<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>` +
        `<button type="submit">Sign in</button></form>`,
    );

  app.get("/", async (request, reply) => reply.redirect(sessionUser(request) ? "/settings" : "/signin", 303));

  app.get("/signin", async (_request, reply) =>
    reply.type("text/html; charset=utf-8").header("content-security-policy", csp()).send(signInPage("")),
  );

  app.post("/signin", async (request, reply) => {
    const body = /** @type {Record<string, string>} */ (request.body ?? {});
    const user = await checkPassword(String(body.email ?? ""), String(body.password ?? ""));
    if (!user)
      return reply
        .code(401)
        .type("text/html; charset=utf-8")
        .header("content-security-policy", csp())
        .send(signInPage("That email and password do not match."));
    const token = randomBytes(32).toString("base64url");
    sessions.set(token, { userId: user.id, expiresAt: Date.now() + SESSION_MS });
    return reply.header("set-cookie", cookie(token, SESSION_MS / 1000)).redirect("/settings", 303);
  });

  app.post("/signout", async (request, reply) => {
    const token = sessionToken(request);
    if (token) sessions.delete(token);
    return reply.header("set-cookie", cookie("", 0)).redirect("/signin", 303);
  });

  /** Only our own scripts and Keyward's element; the element calls Keyward only. */
  function csp() {
    return [
      "default-src 'none'",
      `script-src 'self' ${keywardPublic}`,
      `connect-src ${keywardPublic}`,
      "style-src 'self'",
      "img-src 'self'",
      "form-action 'self'",
      "base-uri 'none'",
      "frame-ancestors 'none'",
    ].join("; ");
  }

  /**
   * Opens a Keyward portal session for one owner and returns its token (kwp_…). Server-side only:
   * the portal key never reaches a browser.
   * @param {{type: "user" | "organization", id: string}} owner
   * @param {{id: string, email: string}} actor
   * @returns {Promise<string>}
   */
  async function openPortalSession(owner, actor) {
    const answer = await fetch(`${keywardUrl}/v1/portal-sessions`, {
      method: "POST",
      headers: { authorization: `Bearer ${options.portalKey}`, "content-type": "application/json" },
      body: JSON.stringify({
        owner, // a person: created in Keyward on first use; a company: the organization an administrator created
        policy: POLICY,
        actor: { id: actor.id, email: actor.email }, // recorded in Keyward's audit trail
        allowed_origin: origin, // the token works from this app's pages only
        expires_in_seconds: 900,
      }),
      signal: AbortSignal.timeout(5000),
    });
    if (answer.status !== 201) throw new Error(`Keyward answered ${answer.status} to POST /v1/portal-sessions: ${await answer.text()}`);
    return /** @type {{token: string}} */ (await answer.json()).token;
  }

  /**
   * The element under the page's section heading (an h3 of its own), with a line settings.js
   * fills in when its session loads. @param {string} token @param {string} heading
   */
  const element = (token, heading) =>
    `<keyward-keys api="${esc(keywardPublic)}" token="${esc(token)}" heading="${esc(heading)}" heading-level="3"></keyward-keys>` +
    `<p class="muted" data-session-note></p>`;

  app.get("/settings", async (request, reply) => {
    const user = sessionUser(request);
    if (!user) return reply.redirect("/signin", 303);
    const company = companyById(user.companyId);
    let personal;
    let companyKeys = "";
    try {
      const token = await openPortalSession({ type: "user", id: `acme-${user.id}` }, user);
      personal = element(token, "Keys you hold");
      if (company && user.role === "admin") {
        // The company's keys belong to a Keyward organization named after it (created by a Keyward
        // administrator: README), so they draw from the limits it shares and show in its console page.
        const companyToken = await openPortalSession({ type: "organization", id: `company-${company.id}` }, user);
        companyKeys = element(companyToken, `Keys of ${company.name}`);
      } else companyKeys = `<p class="muted">Only your company's administrators manage its keys.</p>`;
    } catch (error) {
      request.log.error(error);
      personal = `<p class="error" role="alert">API keys are unavailable right now. Try again in a minute.</p>`;
    }
    return reply
      .type("text/html; charset=utf-8")
      .header("cache-control", "no-store") // the page carries portal tokens
      .header("content-security-policy", csp())
      .send(
        page(
          "Settings",
          `<div class="heading"><h1>Settings</h1>` +
            `<form method="post" action="/signout"><button type="submit" class="secondary">Sign out</button></form></div>` +
            `<p>Signed in as <strong>${esc(user.name)}</strong> (${esc(user.email)}), ${esc(company?.name ?? "")}.</p>` +
            `<p class="muted">Call <code>GET ${esc(origin)}/api/orders</code> with a key in <code>Authorization: Bearer …</code>; ` +
            `it needs the <code>orders:read</code> scope.</p>` +
            `<section aria-labelledby="personal"><h2 id="personal" class="section">Your keys</h2>${personal}</section>` +
            `<section aria-labelledby="company"><h2 id="company" class="section">${esc(company?.name ?? "Company")} keys</h2>${companyKeys}</section>` +
            `<script type="module" src="${esc(keywardPublic)}/embed/keys.js"></script>` +
            `<script type="module" src="/static/settings.js"></script>`,
        ),
      );
  });

  for (const [path, asset] of Object.entries(assets))
    app.get(path, async (_request, reply) => reply.type(asset.type).header("cache-control", "no-cache").send(asset.body));

  /**
   * Which company an Acme API key acts for: a person's keys for their company, a company's keys for itself.
   * @param {{type: string, id: string}} owner
   */
  function companyOfOwner(owner) {
    if (owner.type === "user" && owner.id.startsWith("acme-")) return userById(owner.id.slice("acme-".length))?.companyId ?? null;
    if (owner.type === "organization" && owner.id.startsWith("company-")) return companyById(owner.id.slice("company-".length))?.id ?? null;
    return null;
  }

  // An Acme API key (Keyward verifies it; orders:read needed) or the Acme session cookie.
  app.get("/api/orders", { preHandler: auth.require({ scopes: ["orders:read"], optional: true }) }, async (request, reply) => {
    const key = request.apiKey;
    if (key) {
      const companyId = companyOfOwner(key.owner);
      if (!companyId)
        return reply
          .code(403)
          .type("application/problem+json")
          .send({ title: "Forbidden", status: 403, code: "FORBIDDEN", detail: "This key is not an Acme key." });
      return { data: ordersOf(companyId).map(orderJson), via: "api_key", key: { ref: key.ref, environment: key.environment } };
    }
    const user = sessionUser(request);
    if (user) return { data: ordersOf(user.companyId).map(orderJson), via: "session" };
    return reply
      .code(401)
      .header("www-authenticate", 'ApiKey realm="acme"')
      .type("application/problem+json")
      .send({ title: "Unauthorized", status: 401, code: "MISSING", detail: "Send an Acme API key, or sign in." });
  });

  return app;
}
