import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { Keyward } from "../engine/keyward.js";
import type { KeyStore } from "../ports/key-store.js";
import { buildApp } from "./app.js";
import type { ServiceConfig } from "./config.js";
import { createLogger } from "./logger.js";
import { ServiceMetrics } from "./metrics.js";
import { openStore } from "./store-factory.js";

export const BUILTIN_APPLICATION = { type: "application", id: "keyward" } as const;

/** Opens and migrates the configured store and builds the engine on it. */
export async function openKeyward(config: ServiceConfig, metrics?: ServiceMetrics): Promise<Keyward> {
  const store: KeyStore = await openStore(config.databaseUrl);
  await store.migrate();
  return new Keyward({
    store,
    prefix: config.prefix,
    hashSecrets: config.hashSecrets,
    cache: { maxAgeMs: config.cacheMaxAgeMs, staleWindowMs: config.staleWindowMs },
    ...(metrics ? { usage: metrics.usageRecorder() } : {}),
  });
}

/** Mints a key with the `admin` scope for the built-in `keyward` application. */
export async function createAdminKey(keyward: Keyward, name: string, actor: { type: "cli" | "system"; id: string }) {
  return keyward.createKey({ owner: BUILTIN_APPLICATION, name, environment: "production", scopes: ["admin"] }, { actor });
}

/**
 * First start on an empty store: one admin key, printed once. A latch in the store makes sure
 * it never happens again, even if every key is later deleted.
 */
export async function bootstrapAdminKey(keyward: Keyward): Promise<string | null> {
  if ((await keyward.store.countKeys()) > 0) return null;
  if (!(await keyward.store.setMetaOnce("bootstrap_admin_key", new Date(keyward.clock.now()).toISOString()))) return null;
  const created = await createAdminKey(keyward, "bootstrap admin key", { type: "system", id: "bootstrap" });
  return created.key;
}

export interface RunningService {
  app: FastifyInstance;
  keyward: Keyward;
  url: string;
  close(): Promise<void>;
}

/** Starts `keyward serve`: store, engine, HTTP. Graceful on SIGTERM/SIGINT (in-flight requests finish). */
export async function startService(
  config: ServiceConfig,
  options: { logger?: Logger; print?: (line: string) => void } = {},
): Promise<RunningService> {
  const logger = options.logger ?? createLogger(config.logLevel);
  const metrics = new ServiceMetrics();
  const keyward = await openKeyward(config, metrics);
  const app = await buildApp({ keyward, config, logger, metrics });
  await app.listen({ port: config.port, host: config.host });
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  const host = config.host.includes(":") ? `[${config.host}]` : config.host;
  const url = `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${port}`;
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const bootstrapKey = await bootstrapAdminKey(keyward);
  if (bootstrapKey) {
    // Printed to the terminal once, never logged: this is the only copy.
    print("");
    print("  Keyward is ready. This admin key is shown once; store it now:");
    print("");
    print(`    ${bootstrapKey}`);
    print("");
    print(`  API: ${url}   Docs: ${url}/docs`);
    print("");
  }
  print(`Keyward listening on ${url}`);
  logger.info({ url, store: config.databaseUrl.split(":")[0] }, "keyward listening");
  let closing: Promise<void> | null = null;
  return {
    app,
    keyward,
    url,
    close: () => {
      closing ??= (async () => {
        await app.close();
        await keyward.close();
      })();
      return closing;
    },
  };
}
