import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance, FastifyReply } from "fastify";

/**
 * The dashboard's static files: plain HTML, CSS and ES modules, read once at start and served
 * from memory (no build step, no external request). Hash routing means the server has only
 * these files to know about.
 *
 * The page itself is served at `/dashboard/` only. Everything else under `/dashboard/` comes
 * from an allow-list built at start from the folder: regular files with a lower-case name of
 * letters, digits and dashes, in lower-case subfolders, ending `.js`, `.css` or `.svg`. A request
 * is served only when its path is exactly one of those names (a map lookup: no path is ever
 * joined from the request, so `..`, `%2e%2e`, backslashes, dot files and any other type are
 * simply not there and answer 404).
 */
const TYPES: Record<string, string> = {
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
};

/** What a served name looks like: `app.js`, `pages/my-keys.js`, `style.css`. */
const SERVED_NAME = /^[a-z0-9][a-z0-9-]*(\/[a-z0-9][a-z0-9-]*)*\.(js|css|svg)$/;

/** No inline script or style, nothing from elsewhere, never framed (docs/security.md, check 24). */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join("; ");

// src/service/routes and dist/service/routes are both three levels below the package root.
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "dashboard");

interface Asset {
  type: string;
  body: Buffer;
  etag: string;
}

const asset = (type: string, body: Buffer): Asset => ({
  type,
  body,
  etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`,
});

/** Every servable file below the dashboard folder, by its path relative to it. */
export function dashboardAssets(root = ROOT): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  const walk = (dir: string, prefix: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const name = `${prefix}${entry.name}`;
      if (entry.isDirectory()) {
        if (/^[a-z0-9][a-z0-9-]*$/.test(entry.name)) walk(join(dir, entry.name), `${name}/`);
      } else if (entry.isFile() && SERVED_NAME.test(name)) {
        const extension = name.slice(name.lastIndexOf(".") + 1);
        assets.set(name, asset(TYPES[extension] as string, readFileSync(join(dir, entry.name))));
      }
    }
  };
  walk(root, "");
  return assets;
}

export function registerDashboardRoutes(app: FastifyInstance): void {
  const page = asset("text/html; charset=utf-8", readFileSync(join(ROOT, "index.html")));
  const files = dashboardAssets();

  const send = (ifNoneMatch: string | undefined, reply: FastifyReply, file: Asset) => {
    reply
      .header("content-type", file.type)
      .header("content-security-policy", DASHBOARD_CSP)
      .header("cache-control", file.type.startsWith("text/html") ? "no-store" : "no-cache")
      .header("etag", file.etag);
    // no-cache: the browser asks each time and gets a 304 while the file is unchanged.
    if (!file.type.startsWith("text/html") && ifNoneMatch === file.etag) return reply.code(304).send();
    return reply.send(file.body);
  };

  // The security headers of every answer (app.ts) apply here too; the pages add their own CSP.
  app.get("/dashboard", { schema: { hide: true } }, async (_request, reply) => reply.redirect("/dashboard/", 302));
  app.get("/dashboard/", { schema: { hide: true } }, async (request, reply) => send(request.headers["if-none-match"], reply, page));
  app.get<{ Params: { "*": string } }>("/dashboard/*", { schema: { hide: true } }, async (request, reply) => {
    const file = files.get(request.params["*"]);
    if (!file) return reply.callNotFound();
    return send(request.headers["if-none-match"], reply, file);
  });
}
