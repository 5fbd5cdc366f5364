import { KeywardError } from "../core/errors.js";
import type { KeyStore } from "../ports/key-store.js";
import type { WebhookStore } from "../ports/webhook-store.js";
import { PostgresKeyStore } from "../stores/postgres/postgres-key-store.js";
import { PostgresWebhookStore } from "../stores/postgres/postgres-webhook-store.js";
import { SqliteKeyStore } from "../stores/sqlite/sqlite-key-store.js";
import { SqliteWebhookStore } from "../stores/sqlite/sqlite-webhook-store.js";

/** Opens the store named by `KEYWARD_DATABASE_URL`: `sqlite:<path>` (default) or `postgres://…`. */
export async function openStore(databaseUrl: string, options: { schema?: string | null } = {}): Promise<KeyStore> {
  if (databaseUrl.startsWith("sqlite:")) {
    const filename = databaseUrl.slice("sqlite:".length).replace(/^\/\//, "");
    if (!filename) throw new KeywardError("INVALID_CONFIGURATION", "KEYWARD_DATABASE_URL sqlite: needs a file path");
    return new SqliteKeyStore({ filename });
  }
  if (/^postgres(ql)?:\/\//.test(databaseUrl))
    return new PostgresKeyStore({ connectionString: databaseUrl, ...(options.schema ? { schema: options.schema } : {}) });
  throw new KeywardError("INVALID_CONFIGURATION", "KEYWARD_DATABASE_URL must start with sqlite: or postgres://");
}

/** The webhook store beside a key store, in the same database; null for stores without one (memory). */
export function openWebhookStore(store: KeyStore): WebhookStore | null {
  if (store instanceof SqliteKeyStore) return new SqliteWebhookStore(store);
  if (store instanceof PostgresKeyStore) return new PostgresWebhookStore(store);
  return null;
}
