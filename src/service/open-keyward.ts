import type { Logger } from "pino";
import { IpcRateLimiter, isClusterWorker } from "../cluster/ipc-rate-limiter.js";
import { Keyward } from "../engine/keyward.js";
import { FailedAttemptLimiter } from "../limits/failed-attempt-limiter.js";
import { KeyLimitEnforcer } from "../limits/key-limit-enforcer.js";
import { MemoryRateLimiter } from "../limits/memory-rate-limiter.js";
import { BlockQuotaCounter } from "../limits/quota-blocks.js";
import { RedisAttemptCounter } from "../limits/redis-attempt-counter.js";
import { RedisRateLimiter } from "../limits/redis-rate-limiter.js";
import type { Clock } from "../ports/clock.js";
import type { RateLimiter } from "../ports/limits.js";
import type { UsageRecorder } from "../ports/usage-recorder.js";
import { BufferedUsageRecorder } from "../usage/buffered-usage-recorder.js";
import type { ServiceConfig } from "./config.js";
import { errorText } from "./error-text.js";
import { checkHashSecrets } from "./hash-secret-guard.js";
import type { ServiceMetrics, StoreStatementCounts } from "./metrics.js";
import { openStores, openWebhookStore, type Stores } from "./store-factory.js";

/**
 * Opening the engine on the configured store, without the HTTP server: the CLI uses this so a
 * `keyward keys …` command never loads Fastify.
 */
export const BUILTIN_APPLICATION = { type: "application", id: "keyward" } as const;

export interface ServingParts {
  metrics?: ServiceMetrics;
  logger?: Logger;
  /** Tests pin time with a ManualClock. */
  clock?: Clock;
}

/**
 * Opens and migrates the configured store and builds the engine on it. Without `serving`
 * (the CLI) the engine only manages keys: no limiter, no usage buffer, no Redis connection.
 */
export async function openKeyward(config: ServiceConfig, serving?: ServingParts): Promise<Keyward> {
  const stores = await openStores(config.databaseUrl, { schema: config.databaseSchema, queryTimeoutMs: config.storeTimeoutMs });
  try {
    // Server, workers and CLI alike refuse a store hashed under another KEYWARD_HASH_SECRET.
    await checkHashSecrets(stores.keys, config.hashSecrets, serving?.clock?.now() ?? Date.now());
  } catch (error) {
    await stores.keys.close();
    throw error;
  }
  await openWebhookStore(stores.keys)?.migrate();
  if (!serving) {
    // Managing keys needs neither: close their connections (and the usage store's checkpointer
    // thread), so the CLI and the --workers primary hold only the key store's own connection,
    // which they close with the engine (docs/deploy.md, faults).
    await stores.usage.close?.();
    await stores.quotas.close?.();
    return new Keyward({ store: stores.keys, ...engineSettings(config) });
  }
  return assembleKeyward(config, stores, serving);
}

const engineSettings = (config: ServiceConfig) => ({
  prefix: config.prefix,
  hashSecrets: config.hashSecrets,
  legacyFormats: config.legacyFormats,
  cache: {
    ...(config.cacheMaxAgeMs !== null ? { maxAgeMs: config.cacheMaxAgeMs } : {}),
    changePollMs: config.changePollMs,
    staleWindowMs: config.staleWindowMs,
    refreshWaitMs: config.refreshWaitMs,
  },
});

/**
 * The serving engine over opened stores: limits (in this process, or shared through Redis
 * when `KEYWARD_REDIS_URL` is set; quotas always in the database) and buffered usage tracking.
 */
export function assembleKeyward(config: ServiceConfig, stores: Stores, parts: ServingParts = {}): Keyward {
  const { metrics, logger, clock } = parts;
  const rates: RateLimiter = config.redisUrl
    ? new RedisRateLimiter({
        redis: config.redisUrl,
        prefix: config.redisPrefix,
        timeoutMs: config.redisTimeoutMs,
        failurePolicy: config.limiterFailure,
        onModeChange: (mode, error) => {
          metrics?.setLimiterDegraded(mode !== "shared");
          if (mode === "shared") logger?.info({ mode }, "limiter: shared through Redis again");
          else logger?.warn({ mode, err: errorText(error) }, "limiter: Redis unreachable, limits are per instance");
        },
      })
    : // The workers of one machine share one limiter, held by the primary.
      isClusterWorker()
      ? new IpcRateLimiter()
      : new MemoryRateLimiter();
  const recorder = new BufferedUsageRecorder({
    store: stores.usage,
    flushIntervalMs: config.usageFlushMs,
    maxEntries: config.usageMaxBuffer,
    retentionMs: config.usageRetentionDays * 86_400_000,
    recentRequests: config.recentRequests,
    recentRequestsPerFlush: config.recentRequestsPerFlush,
    onFlushError: (error) => logger?.warn({ err: errorText(error) }, "usage flush failed; kept in the buffer"),
  });
  metrics?.watchUsageBuffer(recorder.stats);
  const counted = stores.keys as { statementCounts?: StoreStatementCounts };
  if (counted.statementCounts) metrics?.watchStoreStatements(counted.statementCounts);
  const usage: UsageRecorder = metrics ? metrics.usageRecorder(recorder) : recorder;
  return new Keyward({
    store: stores.keys,
    ...engineSettings(config),
    limits: new KeyLimitEnforcer({
      rates,
      // Quota uses taken from the database in blocks (docs/limits.md, "Quota blocks").
      quotas:
        config.quotaBlockMax > 1
          ? new BlockQuotaCounter({ store: stores.quotas, maxBlock: config.quotaBlockMax, ...(clock ? { now: () => clock.now() } : {}) })
          : stores.quotas,
      ...(metrics ? { onDecision: (d) => metrics.recordLimiterDecision(d) } : {}),
    }),
    usage,
    usageStore: stores.usage,
    failedAttempts: failedAttemptLimiter(config, logger),
    ...(metrics ? { observer: metrics.engineObserver() } : {}),
    ...(clock ? { clock } : {}),
  });
}

/**
 * The failed-attempt throttle of `KEYWARD_FAILED_ATTEMPTS_*`, counted across instances through
 * Redis in cluster mode (each instance counts alone while Redis cannot answer).
 */
function failedAttemptLimiter(config: ServiceConfig, logger: Logger | undefined): FailedAttemptLimiter | false {
  const { failedAttemptsLimit: limit, failedAttemptsWindowMs: windowMs } = config.hardening;
  if (limit === 0) return false;
  const shared = config.redisUrl
    ? new RedisAttemptCounter({
        redis: config.redisUrl,
        prefix: config.redisPrefix,
        timeoutMs: config.redisTimeoutMs,
        onModeChange: (mode, error) => {
          if (mode === "shared") logger?.info({ mode }, "failed-attempt throttle: shared through Redis again");
          else logger?.warn({ mode, err: errorText(error) }, "failed-attempt throttle: Redis unreachable, counting per instance");
        },
      })
    : undefined;
  return new FailedAttemptLimiter({ limit, windowMs, ...(shared ? { shared } : {}) });
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

/** The first-start banner: the only place the bootstrap key is ever shown. */
export function printBootstrapKey(print: (line: string) => void, key: string, url: string): void {
  print("");
  print("  Keyward is ready. This admin key is shown once; store it now:");
  print("");
  print(`    ${key}`);
  print("");
  print(`  API: ${url}   Docs: ${url}/docs`);
  print("");
}
