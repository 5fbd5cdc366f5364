import cluster from "node:cluster";
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { connectWorkerInvalidation, sendQuietly } from "../cluster/ipc-invalidation.js";
import { RedisInvalidationChannel } from "../cluster/redis-invalidation.js";
import type { Keyward } from "../engine/keyward.js";
import { accountStoreFor } from "./account-store-factory.js";
import { buildApp } from "./app.js";
import type { ServiceConfig } from "./config.js";
import { errorText } from "./error-text.js";
import { createLogger } from "./logger.js";
import { ServiceMetrics } from "./metrics.js";
import { bootstrapAdminKey, openKeyward, printBootstrapKey } from "./open-keyward.js";
import { printSetupLink } from "./setup-link.js";
import { openWebhookStore, storeStartWarnings } from "./store-factory.js";
import { WebhookDispatcher } from "./webhook-dispatcher.js";
import { REPLACE_ME } from "./workers.js";

export { BUILTIN_APPLICATION, bootstrapAdminKey, createAdminKey, openKeyward } from "./open-keyward.js";

export interface RunningService {
  app: FastifyInstance;
  keyward: Keyward;
  url: string;
  close(): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  print?: (line: string) => void;
  /** Mint and print the first-start admin key on an empty store. Default true (the primary does it with --workers). */
  bootstrap?: boolean;
}

/** Starts `keyward serve`: store, engine, cross-instance invalidation, HTTP. */
export async function startService(config: ServiceConfig, options: StartOptions = {}): Promise<RunningService> {
  const logger = options.logger ?? createLogger(config.logLevel);
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const metrics = new ServiceMetrics();
  const keyward = await openKeyward(config, { metrics, logger });
  connectWorkerInvalidation(keyward);
  let channel: RedisInvalidationChannel | null = null;
  if (config.redisUrl) {
    channel = new RedisInvalidationChannel(keyward, config.redisUrl, {
      channel: `${config.redisPrefix}invalidate`,
      onStatus: (status) => {
        metrics.invalidationSubscribed.set(status === "connected" ? 1 : 0);
        if (status === "connected") logger.info({ status }, "invalidation channel subscribed");
        else logger.warn({ status }, "invalidation channel lost: revocations from other instances wait for the cache's maximum age");
      },
    });
    metrics.invalidationSubscribed.set(0);
    // Start without waiting for Redis: if it is down, the cache maximum age bounds staleness and the channel reconnects.
    channel
      .start()
      .catch((error: Error) =>
        logger.warn({ err: errorText(error) }, "invalidation channel not subscribed yet: Redis is unreachable; retrying"),
      );
  }
  for (const warning of storeStartWarnings(keyward.store)) logger.warn(warning);
  const webhooks = openWebhookStore(keyward.store, config.secretsKeys);
  if (webhooks) {
    // Plaintext secrets (and ones under an older key version) are sealed under the current key now.
    const resealed = await webhooks.resealSecrets();
    if (resealed > 0) logger.info({ count: resealed }, "webhook secrets sealed under the current KEYWARD_SECRETS_KEY");
    if (config.secretsKeys.length === 0)
      logger.warn({}, "webhook signing secrets are stored in plaintext: set KEYWARD_SECRETS_KEY to encrypt them (docs/configuration.md)");
  }
  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await app.close();
      await dispatcher?.close();
      await channel?.close();
      await keyward.close();
    })();
    return closing;
  };
  const dispatcher = webhooks ? new WebhookDispatcher(webhooks, config.webhooks, { metrics, logger }) : null;
  const accountStore = accountStoreFor(keyward.store);
  let readOnlyNoticed = false;
  const onReadOnlyStore = () => {
    if (readOnlyNoticed) return;
    readOnlyNoticed = true;
    if (cluster.isWorker) {
      // The primary starts a successor, which opens the store read-write, then stops this one.
      logger.error({}, "store opened read-only while its files refused writes; they accept writes again: replacing this worker");
      sendQuietly(process as Parameters<typeof sendQuietly>[0], { type: REPLACE_ME });
    } else logger.error({}, "store opened read-only while its files refused writes; they accept writes again: restart keyward to write");
  };
  const app = await buildApp({
    keyward,
    config,
    logger,
    metrics,
    webhooks,
    accounts: accountStore,
    invalidation: channel,
    onReadOnlyStore,
  });
  await app.listen({ port: config.port, host: config.host });
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  const host = config.host.includes(":") ? `[${config.host}]` : config.host;
  const url = `http://${host === "0.0.0.0" || host === "[::]" ? "127.0.0.1" : host}:${port}`;
  if (options.bootstrap ?? true) {
    const bootstrapKey = await bootstrapAdminKey(keyward);
    // Printed to the terminal once, never logged: this is the only copy.
    if (bootstrapKey) printBootstrapKey(print, bootstrapKey, url);
    await printSetupLink(keyward, config, url, print);
  }
  if (accountStore && config.dashboard.enabled) print(`Dashboard: ${url}/dashboard/`);
  print(`Keyward listening on ${url}${cluster.isWorker ? ` (worker ${cluster.worker?.id})` : ""}`);
  logger.info({ url, store: config.databaseUrl.split(":")[0] }, "keyward listening");
  dispatcher?.start(keyward);
  return { app, keyward, url, close };
}
