import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import fastifySwagger from "@fastify/swagger";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, LogController } from "fastify";
import type { Logger } from "pino";
import { Accounts } from "../engine/accounts.js";
import type { Keyward } from "../engine/keyward.js";
import { PortalSessions } from "../engine/portal-sessions.js";
import type { AccountStore } from "../ports/account-store.js";
import type { WebhookStore } from "../ports/webhook-store.js";
import { accountStoreFor } from "./account-store-factory.js";
import { connectionsCheckingInterval, installClientGuards } from "./client-guards.js";
import type { ServiceConfig } from "./config.js";
import { createServiceContext, type ServiceContext } from "./context.js";
import { installErrorHandling } from "./errors.js";
import { API_SECURITY_HEADERS, forwardAuthFastLane, requestIdOf } from "./forward-auth.js";
import { lazyChildLoggerFactory } from "./logger.js";
import type { ServiceMetrics } from "./metrics.js";
import { installPortalCors } from "./portal-cors.js";
import { portalStoreFor } from "./portal-store-factory.js";
import { collectRoutes } from "./route-list.js";
import { registerAccountRoutes } from "./routes/accounts.js";
import { registerAuditRoutes } from "./routes/audit.js";
import { registerDashboardRoutes } from "./routes/dashboard.js";
import { registerKeyImportRoutes } from "./routes/key-import.js";
import { registerKeyRequestRoutes } from "./routes/key-requests.js";
import { registerKeyRoutes } from "./routes/keys.js";
import { registerLeakRoutes } from "./routes/leaks.js";
import { installPasswordSignInGuard, registerOidcRoutes } from "./routes/oidc.js";
import { registerOperationRoutes } from "./routes/operations.js";
import { registerOrganizationRoutes } from "./routes/organizations.js";
import { registerOwnerRoutes } from "./routes/owners.js";
import { registerPortalSessionRoutes } from "./routes/portal-sessions.js";
import { registerUsageRoutes } from "./routes/usage.js";
import { registerVerificationRoutes } from "./routes/verification.js";
import { registerWebhookRoutes } from "./routes/webhooks.js";
import { installCsrfGuard, scheduleAccountSweeps } from "./sessions.js";
import { StoreHealth } from "./store-health.js";
import { fastifyTrustProxy } from "./trust-proxy.js";
import { installValidators } from "./validation.js";

export interface AppOptions {
  keyward: Keyward;
  config: ServiceConfig;
  logger: Logger;
  metrics: ServiceMetrics;
  /** Webhook endpoints and deliveries; without it the /v1/webhooks routes are not served (memory store). */
  webhooks?: WebhookStore | null;
  /** People and key requests; by default on the key store's own database (SQLite or PostgreSQL). */
  accounts?: AccountStore | null;
  /** The cross-instance invalidation channel, when Redis is configured: /readyz reports its subscription. */
  invalidation?: { readonly subscribed: boolean } | null;
  /**
   * The store's connection was opened read-only (its files refused writes then) and the files
   * accept writes again: only a new connection can write (store-health.ts).
   */
  onReadOnlyStore?: () => void;
}

/**
 * Headers on every answer: the request id, and no sniffing, framing or referrer for the API's
 * JSON (the dashboard's pages set their own CSP first). A callback hook, not an async one: it
 * runs on every request, and a promise per request is measurable on the verify path.
 */
function securityHeaders(
  request: FastifyRequest,
  reply: FastifyReply,
  payload: unknown,
  done: (error: null, payload: unknown) => void,
): void {
  reply.header("x-request-id", request.id);
  reply.header("x-content-type-options", API_SECURITY_HEADERS["x-content-type-options"]);
  reply.header("referrer-policy", API_SECURITY_HEADERS["referrer-policy"]);
  const url = request.url;
  if (url.startsWith("/v1/") || url.startsWith("/dashboard")) {
    reply.header("x-frame-options", API_SECURITY_HEADERS["x-frame-options"]);
    if (!reply.hasHeader("content-security-policy"))
      reply.header("content-security-policy", API_SECURITY_HEADERS["content-security-policy"]);
  }
  done(null, payload);
}

const KEEP_ALIVE_TIMEOUT_MS = 5_000;

type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * The HTTP server, made here rather than by Fastify so that plain `GET /v1/authz` can take the
 * forward-auth fast lane (forward-auth.ts) once the app is built; everything else goes to
 * Fastify. The server gets the settings Fastify gives a server of its own.
 */
function serverWithFastLane(config: ServiceConfig, fastLane: () => NodeHandler | null) {
  return (handler: NodeHandler): Server => {
    const server = createServer({ connectionsCheckingInterval: connectionsCheckingInterval(config) }, (req, res) => {
      const lane = fastLane();
      if (lane !== null && req.url === "/v1/authz" && req.method === "GET") lane(req, res);
      else handler(req, res);
    });
    server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
    server.requestTimeout = config.hardening.requestTimeoutMs;
    server.setTimeout(config.hardening.requestTimeoutMs);
    return server;
  };
}

/**
 * The Keyward HTTP service as a Fastify instance, with no I/O of its own: `server.ts` listens,
 * tests call `inject()` or listen on loopback.
 */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { config } = options;
  let fastLane: NodeHandler | null = null;
  const app = Fastify({
    loggerInstance: options.logger,
    // Per-request access lines are off by default: they cost throughput on the verify path.
    logController: new LogController({ disableRequestLogging: !config.logRequests }),
    childLoggerFactory: (logger, bindings, childOptions) => lazyChildLoggerFactory(logger as Logger, bindings, childOptions),
    bodyLimit: config.bodyLimitBytes,
    trustProxy: fastifyTrustProxy(config.trustProxy),
    onProtoPoisoning: "error",
    onConstructorPoisoning: "error",
    // Slow clients: a request must arrive whole within these bounds (docs/security.md, check 20).
    connectionTimeout: config.hardening.requestTimeoutMs,
    requestTimeout: config.hardening.requestTimeoutMs,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    serverFactory: serverWithFastLane(config, () => fastLane),
    genReqId: requestIdOf,
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 200 },
  }) as unknown as FastifyInstance;
  app.server.headersTimeout = Math.min(config.hardening.headersTimeoutMs, config.hardening.requestTimeoutMs);
  installClientGuards(app, config, options.logger);

  collectRoutes(app);
  // JSON only: anything else is 415, not a guess.
  app.removeContentTypeParser("text/plain");
  installValidators(app);
  // An unexpected error in a request is, in practice, a failed store call (the rest is validated).
  const storeHealth = new StoreHealth(options.keyward.store, options.onReadOnlyStore);
  installErrorHandling(app, {
    onUnexpectedError: () => options.metrics.recordStoreError("management"),
    onStoreUnwritable: (error) => storeHealth.writeFailed(error),
  });
  app.addHook("onSend", securityHeaders);

  await app.register(fastifySwagger, {
    openapi: {
      openapi: "3.1.0",
      info: { title: "Keyward", version: "0.1.0", description: "API key issuance, verification and governance." },
      components: {
        securitySchemes: {
          ApiKey: { type: "apiKey", in: "header", name: "X-API-Key" },
          Bearer: { type: "http", scheme: "bearer" },
          // The dashboard's session (plus X-CSRF-Token on unsafe methods): docs/dashboard.md.
          Session: { type: "apiKey", in: "cookie", name: "kw_session" },
        },
      },
      security: [{ ApiKey: [] }, { Bearer: [] }, { Session: [] }],
    },
  });

  const accountStore = options.accounts === undefined ? accountStoreFor(options.keyward.store) : options.accounts;
  if (accountStore) await accountStore.migrate();
  const accounts = accountStore
    ? new Accounts(options.keyward, accountStore, {
        sessionIdleMs: config.dashboard.sessionIdleMs,
        sessionMaxMs: config.dashboard.sessionMaxMs,
        signInAccountLimit: config.dashboard.signInAccountLimit,
        signInIpv6Prefix: config.dashboard.signInIpv6Prefix,
        maxSessionsPerUser: config.dashboard.maxSessionsPerUser,
      })
    : null;
  if (accounts) {
    installCsrfGuard(app, config.dashboard);
    installPasswordSignInGuard(app, config.sso);
    scheduleAccountSweeps(app, accounts, config.dashboard.sessionPurgeMs, options.logger);
  }
  const ctx: ServiceContext = createServiceContext(options.keyward, config, options.metrics, accounts, options.invalidation ?? null);
  // Portal sessions (docs/embedding.md): beside the accounts, on the key store's database.
  const portalStore = accounts ? portalStoreFor(options.keyward.store) : null;
  if (portalStore) await portalStore.migrate();
  ctx.portals = portalStore ? new PortalSessions(options.keyward, portalStore) : null;
  installPortalCors(app, config.portalOrigins);
  ctx.storeHealth = storeHealth;
  registerOperationRoutes(app, ctx);
  registerKeyRoutes(app, ctx);
  registerVerificationRoutes(app, ctx);
  registerOwnerRoutes(app, ctx);
  registerAuditRoutes(app, ctx);
  registerLeakRoutes(app, ctx);
  registerKeyImportRoutes(app, ctx);
  registerUsageRoutes(app, ctx);
  if (options.webhooks) registerWebhookRoutes(app, ctx, options.webhooks);
  fastLane = forwardAuthFastLane({
    keyward: options.keyward,
    config,
    metrics: options.metrics,
    logger: options.logger,
    trustProxy: fastifyTrustProxy(config.trustProxy),
  });
  if (accounts) {
    registerAccountRoutes(app, ctx, accounts);
    registerOrganizationRoutes(app, ctx, accounts);
    registerOidcRoutes(app, ctx, accounts, config.sso.oidc);
    registerKeyRequestRoutes(app, ctx, accounts);
    if (ctx.portals) registerPortalSessionRoutes(app, ctx, ctx.portals);
    if (config.dashboard.enabled) registerDashboardRoutes(app);
  }
  await app.ready();
  return app;
}
