import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance } from "fastify";

/**
 * The dashboard's static files: plain HTML, CSS and one ES module, read once at start and
 * served from memory (no build step, no external request). Hash routing means the server
 * has only these files to know about.
 */
const ASSETS: Record<string, { file: string; type: string }> = {
  "/dashboard/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/dashboard/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/dashboard/style.css": { file: "style.css", type: "text/css; charset=utf-8" },
  "/dashboard/icon.svg": { file: "icon.svg", type: "image/svg+xml" },
};

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

export function registerDashboardRoutes(app: FastifyInstance): void {
  const files = new Map(Object.entries(ASSETS).map(([path, asset]) => [path, { ...asset, body: readFileSync(join(ROOT, asset.file)) }]));

  // The security headers of every answer (app.ts) apply here too; the pages add their own CSP.
  app.get("/dashboard", { schema: { hide: true } }, async (_request, reply) => reply.redirect("/dashboard/", 302));
  for (const [path, file] of files) {
    app.get(path, { schema: { hide: true } }, async (_request, reply) =>
      reply
        .header("content-type", file.type)
        .header("content-security-policy", DASHBOARD_CSP)
        .header("cache-control", file.type.startsWith("text/html") ? "no-store" : "no-cache")
        .send(file.body),
    );
  }
}
