import { randomUUID } from "node:crypto";
import fastifySwagger from "@fastify/swagger";
import Fastify, { type FastifyInstance, LogController } from "fastify";
import type { Logger } from "pino";
import type { Keyward } from "../engine/keyward.js";
import type { ServiceConfig } from "./config.js";
import { createServiceContext, type ServiceContext } from "./context.js";
import { installErrorHandling } from "./errors.js";
import { lazyChildLoggerFactory } from "./logger.js";
import type { ServiceMetrics } from "./metrics.js";
import { registerAuditRoutes } from "./routes/audit.js";
import { registerKeyRoutes } from "./routes/keys.js";
import { registerLeakRoutes } from "./routes/leaks.js";
import { registerOperationRoutes } from "./routes/operations.js";
import { registerOwnerRoutes } from "./routes/owners.js";
import { registerVerificationRoutes } from "./routes/verification.js";
import { installValidators } from "./validation.js";

export interface AppOptions {
  keyward: Keyward;
  config: ServiceConfig;
  logger: Logger;
  metrics: ServiceMetrics;
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

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
    trustProxy: config.trustProxy.length > 0 ? config.trustProxy : false,
    onProtoPoisoning: "error",
    onConstructorPoisoning: "error",
    // Slow clients: a request must arrive whole within these bounds (SECURITY.md 20).
    connectionTimeout: 30_000,
    requestTimeout: 30_000,
    keepAliveTimeout: 5_000,
    // A client-sent id is kept only when it is plainly an id; otherwise a fresh one.
    genReqId: (req) => {
      const sent = req.headers["x-request-id"];
      return typeof sent === "string" && REQUEST_ID.test(sent) ? sent : randomUUID();
    },
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 200 },
  }) as unknown as FastifyInstance;
  app.server.headersTimeout = 20_000;

  // JSON only: anything else is 415, not a guess.
  app.removeContentTypeParser("text/plain");
  installValidators(app);
  installErrorHandling(app);
  app.addHook("onSend", async (request, reply) => {
    reply.header("x-request-id", request.id);
    reply.header("x-content-type-options", "nosniff");
  });

  await app.register(fastifySwagger, {
    openapi: {
      openapi: "3.1.0",
      info: { title: "Keyward", version: "0.1.0", description: "API key issuance, verification and governance." },
      components: {
        securitySchemes: {
          ApiKey: { type: "apiKey", in: "header", name: "X-API-Key" },
          Bearer: { type: "http", scheme: "bearer" },
        },
      },
      security: [{ ApiKey: [] }, { Bearer: [] }],
    },
  });

  const ctx: ServiceContext = createServiceContext(options.keyward, config, options.metrics);
  registerOperationRoutes(app, ctx);
  registerKeyRoutes(app, ctx);
  registerVerificationRoutes(app, ctx);
  registerOwnerRoutes(app, ctx);
  registerAuditRoutes(app, ctx);
  registerLeakRoutes(app, ctx);
  await app.ready();
  return app;
}
