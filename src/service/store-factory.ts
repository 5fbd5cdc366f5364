import { KeywardError } from "../core/errors.js";
import { SecretBox, type SecretsKey } from "../core/secret-box.js";
import type { KeyStore } from "../ports/key-store.js";
import type { QuotaCounter } from "../ports/limits.js";
import type { UsageStore } from "../ports/usage-recorder.js";
import type { WebhookStore } from "../ports/webhook-store.js";
import { PostgresKeyStore } from "../stores/postgres/postgres-key-store.js";
import { PostgresQuotaCounter } from "../stores/postgres/postgres-quota-counter.js";
import { PostgresUsageStore } from "../stores/postgres/postgres-usage-store.js";
import { PostgresWebhookStore } from "../stores/postgres/postgres-webhook-store.js";
import { SqliteKeyStore } from "../stores/sqlite/sqlite-key-store.js";
import { SqliteQuotaCounter } from "../stores/sqlite/sqlite-quota-counter.js";
import { SqliteUsageStore } from "../stores/sqlite/sqlite-usage-store.js";
import { SqliteWebhookStore } from "../stores/sqlite/sqlite-webhook-store.js";

/** Opens the store named by `KEYWARD_DATABASE_URL`: `sqlite:<path>` (default) or `postgres://…`. */
export interface StoreOptions {
  schema?: string | null;
  /** PostgreSQL: how long one query may take (KEYWARD_STORE_TIMEOUT_MS). */
  queryTimeoutMs?: number;
}

export async function openStore(databaseUrl: string, options: StoreOptions = {}): Promise<KeyStore> {
  if (databaseUrl.startsWith("sqlite:")) {
    const filename = databaseUrl.slice("sqlite:".length).replace(/^\/\//, "");
    if (!filename) throw new KeywardError("INVALID_CONFIGURATION", "KEYWARD_DATABASE_URL sqlite: needs a file path");
    return new SqliteKeyStore({ filename });
  }
  if (/^postgres(ql)?:\/\//.test(databaseUrl))
    return new PostgresKeyStore({
      connectionString: databaseUrl,
      ...(options.schema ? { schema: options.schema } : {}),
      ...(options.queryTimeoutMs !== undefined ? { queryTimeoutMs: options.queryTimeoutMs } : {}),
    });
  throw new KeywardError("INVALID_CONFIGURATION", "KEYWARD_DATABASE_URL must start with sqlite: or postgres://");
}

/** Everything that lives in the database: keys and audit, quota counters, usage counts. */
export interface Stores {
  keys: KeyStore;
  quotas: QuotaCounter;
  usage: UsageStore;
}

/** Opens the configured database and applies every module's migrations. */
export async function openStores(databaseUrl: string, options: StoreOptions = {}): Promise<Stores> {
  const keys = await openStore(databaseUrl, options);
  await keys.migrate();
  return storesBeside(keys);
}

/** The quota and usage stores that share a migrated key store's database. */
export async function storesBeside(keys: KeyStore): Promise<Stores> {
  if (keys instanceof SqliteKeyStore) return { keys, quotas: new SqliteQuotaCounter(keys.db), usage: new SqliteUsageStore(keys.db) };
  if (keys instanceof PostgresKeyStore) {
    const quotas = new PostgresQuotaCounter(keys.pool);
    const usage = new PostgresUsageStore(keys.pool);
    await quotas.migrate();
    await usage.migrate();
    return { keys, quotas, usage };
  }
  throw new KeywardError("INVALID_CONFIGURATION", "no quota and usage stores for this key store");
}

/**
 * The webhook store beside a key store, in the same database; null for stores without one
 * (memory). With `secretsKeys` (`KEYWARD_SECRETS_KEY`) it seals endpoint secrets at rest.
 */
export function openWebhookStore(store: KeyStore, secretsKeys: readonly SecretsKey[] = []): WebhookStore | null {
  const secrets = secretsKeys.length > 0 ? new SecretBox(secretsKeys) : null;
  if (store instanceof SqliteKeyStore) return new SqliteWebhookStore(store, { secrets });
  if (store instanceof PostgresKeyStore) return new PostgresWebhookStore(store, { secrets });
  return null;
}

/**
 * What the service warns about at start for the opened store: a data folder or file open to other
 * users (docs/hardening.md); on PostgreSQL, name search without its trigram index (docs/api.md).
 */
export function storeStartWarnings(store: KeyStore): readonly string[] {
  if (store instanceof PostgresKeyStore && store.nameSearchIndexed === false)
    return [
      "pg_trgm is not available: GET /v1/keys?q= scans the keys table for names; run CREATE EXTENSION pg_trgm and restart to index them",
    ];
  return store instanceof SqliteKeyStore ? store.fileModeWarnings : [];
}
