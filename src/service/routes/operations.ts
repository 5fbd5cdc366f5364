import type { FastifyInstance } from "fastify";
import { ERROR_REGISTRY } from "../../core/errors.js";
import type { ServiceContext } from "../context.js";

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string);

const PAGE_HEADERS = {
  "content-type": "text/html; charset=utf-8",
  "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

function htmlPage(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>${escapeHtml(title)}</title><style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.5}code{background:#f3f3f3;padding:0 .2rem}td,th{text-align:left;padding:.2rem .6rem;vertical-align:top}</style></head><body>${body}</body></html>`;
}

/** Health, readiness, metrics, the OpenAPI document and its human-readable page. */
export function registerOperationRoutes(app: FastifyInstance, ctx: ServiceContext): void {
  app.get("/healthz", { schema: { tags: ["operations"], summary: "Liveness: the process answers" } }, async () => ({ status: "ok" }));

  app.get("/readyz", { schema: { tags: ["operations"], summary: "Readiness: the store answers" } }, async (_request, reply) => {
    try {
      await ctx.keyward.store.getMeta("schema");
      // Files that refuse writes, or a write that failed for lack of space: ready again only once a write works.
      if (!(await ctx.storeHealth.writable()))
        return reply
          .code(503)
          .header("retry-after", "5")
          .send({ status: "unavailable", checks: { store: "unwritable" } });
      // Without the invalidation channel the instance still serves, so it stays ready (taking
      // every instance out during a Redis outage would be an outage); it says it is degraded.
      const checks: Record<string, string> = { store: "ok" };
      if (ctx.invalidation) checks.invalidation = ctx.invalidation.subscribed ? "subscribed" : "unsubscribed";
      // The shared limiter (docs/deploy.md, "Redis faults"): with `degrade` or `open` the instance
      // still serves, so it stays ready and says so; only `closed` refuses limited requests, so
      // only then does an unreachable Redis make it unready.
      const limiter = await ctx.keyward.limiterHealth();
      if (limiter !== null) checks.limiter = limiter === "shared" ? "ok" : ctx.config.limiterFailure === "closed" ? "unreachable" : limiter;
      if (checks.limiter === "unreachable") return reply.code(503).header("retry-after", "1").send({ status: "unavailable", checks });
      const degraded = checks.invalidation === "unsubscribed" || (checks.limiter !== undefined && checks.limiter !== "ok");
      return { status: degraded ? "degraded" : "ready", checks };
    } catch {
      return reply
        .code(503)
        .header("retry-after", "5")
        .send({ status: "unavailable", checks: { store: "unreachable" } });
    }
  });

  app.get("/metrics", { schema: { tags: ["operations"], summary: "Prometheus metrics" } }, async (_request, reply) => {
    const size = ctx.keyward.cache.size;
    ctx.metrics.cacheEntries.set({ kind: "positive" }, size.positive);
    ctx.metrics.cacheEntries.set({ kind: "negative" }, size.negative);
    return reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  });

  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());

  app.get("/docs", { schema: { hide: true } }, async (_request, reply) => {
    const spec = app.swagger() as { paths?: Record<string, Record<string, { summary?: string }>> };
    const rows = Object.entries(spec.paths ?? {})
      .flatMap(([path, methods]) =>
        Object.entries(methods).map(
          ([method, op]) =>
            `<tr><td><code>${escapeHtml(method.toUpperCase())}</code></td><td><code>${escapeHtml(path)}</code></td><td>${escapeHtml(op.summary ?? "")}</td></tr>`,
        ),
      )
      .join("");
    return reply
      .headers(PAGE_HEADERS)
      .send(
        htmlPage(
          "Keyward API",
          `<h1>Keyward API</h1><p>The machine-readable document is <a href="/openapi.json">/openapi.json</a>; error codes are listed at <a href="/docs/errors">/docs/errors</a>.</p><table><tr><th>Method</th><th>Path</th><th>What</th></tr>${rows}</table>`,
        ),
      );
  });

  app.get("/docs/errors", { schema: { hide: true } }, async (_request, reply) => {
    const rows = Object.entries(ERROR_REGISTRY)
      .map(
        ([code, d]) =>
          `<tr id="${code}"><td><code>${code}</code></td><td>${d.status}</td><td>${escapeHtml(d.title)}</td><td>${escapeHtml(d.solve)}</td></tr>`,
      )
      .join("");
    return reply
      .headers(PAGE_HEADERS)
      .send(
        htmlPage(
          "Keyward errors",
          `<h1>Error codes</h1><table><tr><th>Code</th><th>Status</th><th>Title</th><th>How to solve</th></tr>${rows}</table>`,
        ),
      );
  });
}
