import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";

/**
 * The routes a portal token may call (docs/embedding.md), by method and route pattern: the only
 * ones that answer a configured host origin (`KEYWARD_PORTAL_ORIGINS`) with CORS headers.
 */
export const PORTAL_ROUTES: ReadonlyArray<readonly [method: string, url: string]> = [
  ["GET", "/v1/portal/session"],
  ["GET", "/v1/keys"],
  ["POST", "/v1/keys"],
  ["GET", "/v1/keys/:id"],
  ["POST", "/v1/keys/:id/rotate"],
  ["POST", "/v1/keys/:id/revoke"],
  ["GET", "/v1/usage"],
  ["GET", "/v1/key-requests"],
  ["POST", "/v1/key-requests"],
  ["GET", "/v1/key-requests/:id"],
  ["POST", "/v1/key-requests/:id/claim"],
];

const PATTERNS = PORTAL_ROUTES.map(([method, url]) => ({
  method,
  url,
  path: new RegExp(`^${url.replace(/:[a-z_]+/g, "[A-Za-z0-9_]+")}$`),
}));

const isPortalRoute = (method: string, url: string | undefined) =>
  url !== undefined && PATTERNS.some((route) => route.method === method && route.url === url);

const pathOf = (url: string) => {
  const question = url.indexOf("?");
  return question < 0 ? url : url.slice(0, question);
};

function allowOrigin(reply: FastifyReply, origin: string): void {
  reply.header("access-control-allow-origin", origin);
  reply.header("vary", "Origin");
}

/**
 * CORS for host pages (docs/security.md, docs/embedding.md): an allow-list of origins, the
 * portal routes only, the `Authorization` header allowed (the token travels there), and no
 * credentials mode: no cookie ever rides along. Preflights of other origins or routes get no CORS
 * headers, so the browser refuses the call.
 */
export function installPortalCors(app: FastifyInstance, origins: readonly string[]): void {
  if (origins.length === 0) return;
  const allowed = new Set(origins);
  app.addHook("onRequest", (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void) => {
    const origin = request.headers.origin;
    if (request.method !== "OPTIONS" || origin === undefined || !allowed.has(origin)) return done();
    const asked = request.headers["access-control-request-method"];
    const path = pathOf(request.url);
    const methods = PATTERNS.filter((route) => route.path.test(path)).map((route) => route.method);
    if (typeof asked !== "string" || !methods.includes(asked)) return done();
    allowOrigin(reply, origin);
    reply
      .header("access-control-allow-methods", methods.join(", "))
      .header("access-control-allow-headers", "authorization, content-type")
      .header("access-control-max-age", "600")
      .code(204)
      .send();
  });
  app.addHook("onSend", (request, reply, payload, done) => {
    const origin = request.headers.origin;
    if (origin !== undefined && allowed.has(origin) && isPortalRoute(request.method, request.routeOptions.url)) {
      allowOrigin(reply, origin);
      reply.header("access-control-expose-headers", "x-request-id, retry-after");
    }
    done(null, payload);
  });
}
