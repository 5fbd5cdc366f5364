import type { AccountStore } from "../ports/account-store.js";
import type { KeyStore } from "../ports/key-store.js";
import { PostgresAccountStore } from "../stores/postgres/postgres-account-store.js";
import { PostgresKeyStore } from "../stores/postgres/postgres-key-store.js";
import { SqliteAccountStore } from "../stores/sqlite/sqlite-account-store.js";
import { SqliteKeyStore } from "../stores/sqlite/sqlite-key-store.js";

/**
 * The account store that shares the key store's database (so approvals are one transaction
 * with the key they issue), or null for stores without one (memory, wrapped test stores).
 */
export function accountStoreFor(store: KeyStore): AccountStore | null {
  if (store instanceof SqliteKeyStore) return new SqliteAccountStore(store.db);
  if (store instanceof PostgresKeyStore) return new PostgresAccountStore(store.pool);
  return null;
}
