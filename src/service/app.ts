import { randomUUID } from "node:crypto";
import fastifySwagger from "@fastify/swagger";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, LogController } from "fastify";
import type { Logger } from "pino";
import { Accounts } from "../engine/accounts.js";
import type { Keyward } from "../engine/keyward.js";
import type { AccountStore } from "../ports/account-store.js";
import type { WebhookStore } from "../ports/webhook-store.js";
import { accountStoreFor } from "./account-store-factory.js";
import { connectionsCheckingInterval, installClientGuards } from "./client-guards.js";
import type { ServiceConfig } from "./config.js";
import { createServiceContext, type ServiceContext } from "./context.js";
import { installErrorHandling } from "./errors.js";
import { lazyChildLoggerFactory } from "./logger.js";
import type { ServiceMetrics } from "./metrics.js";
import { collectRoutes } from "./route-list.js";
import { registerAccountRoutes } from "./routes/accounts.js";
import { registerAuditRoutes } from "./routes/audit.js";
import { registerDashboardRoutes } from "./routes/dashboard.js";
import { registerKeyRequestRoutes } from "./routes/key-requests.js";
import { registerKeyRoutes } from "./routes/keys.js";
import { registerLeakRoutes } from "./routes/leaks.js";
import { registerOperationRoutes } from "./routes/operations.js";
import { registerOwnerRoutes } from "./routes/owners.js";
import { registerUsageRoutes } from "./routes/usage.js";
import { registerVerificationRoutes } from "./routes/verification.js";
import { registerWebhookRoutes } from "./routes/webhooks.js";
import { installCsrfGuard } from "./sessions.js";
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
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

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
  reply.header("x-content-type-options", "nosniff");
  reply.header("referrer-policy", "no-referrer");
  const url = request.url;
  if (url.startsWith("/v1/") || url.startsWith("/dashboard")) {
    reply.header("x-frame-options", "DENY");
    if (!reply.hasHeader("content-security-policy")) reply.header("content-security-policy", "default-src 'none'; frame-ancestors 'none'");
  }
  done(null, payload);
}

/**
 * The Keyward HTTP service as a Fastify instance, with no I/O of its own: `server.ts` listens,
 * tests call `inject()` or listen on loopback.
 */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { config } = options;
  const app = Fastify({
    loggerInstance: options.logger,
    // Per-request access lines are off by default: they cost throughput on the verify path.
    logController: new LogController({ disableRequestLogging: !config.logRequests }),
    childLoggerFactory: (logger, bindings, childOptions) => lazyChildLoggerFactory(logger as Logger, bindings, childOptions),
    bodyLimit: config.bodyLimitBytes,
    trustProxy: fastifyTrustProxy(config.trustProxy),
    onProtoPoisoning: "error",
    onConstructorPoisoning: "error",
    // Slow clients: a request must arrive whole within these bounds (SECURITY.md 20).
    connectionTimeout: config.hardening.requestTimeoutMs,
    requestTimeout: config.hardening.requestTimeoutMs,
    http: { connectionsCheckingInterval: connectionsCheckingInterval(config) },
    keepAliveTimeout: 5_000,
    // A client-sent id is kept only when it is plainly an id; otherwise a fresh one.
    genReqId: (req) => {
      const sent = req.headers["x-request-id"];
      return typeof sent === "string" && REQUEST_ID.test(sent) ? sent : randomUUID();
    },
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 200 },
  }) as unknown as FastifyInstance;
  app.server.headersTimeout = Math.min(config.hardening.headersTimeoutMs, config.hardening.requestTimeoutMs);
  installClientGuards(app, config, options.logger);

  collectRoutes(app);
  // JSON only: anything else is 415, not a guess.
  app.removeContentTypeParser("text/plain");
  installValidators(app);
  // An unexpected error in a request is, in practice, a failed store call (the rest is validated).
  installErrorHandling(app, { onUnexpectedError: () => options.metrics.recordStoreError("management") });
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
      })
    : null;
  if (accounts) installCsrfGuard(app, config.dashboard);
  const ctx: ServiceContext = createServiceContext(options.keyward, config, options.metrics, accounts);
  registerOperationRoutes(app, ctx);
  registerKeyRoutes(app, ctx);
  registerVerificationRoutes(app, ctx);
  registerOwnerRoutes(app, ctx);
  registerAuditRoutes(app, ctx);
  registerLeakRoutes(app, ctx);
  registerUsageRoutes(app, ctx);
  if (options.webhooks) registerWebhookRoutes(app, ctx, options.webhooks);
  if (accounts) {
    registerAccountRoutes(app, ctx, accounts);
    registerKeyRequestRoutes(app, ctx, accounts);
    if (config.dashboard.enabled) registerDashboardRoutes(app);
  }
  await app.ready();
  return app;
}
