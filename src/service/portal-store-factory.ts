import type { KeyStore } from "../ports/key-store.js";
import type { PortalSessionStore } from "../ports/portal-session-store.js";
import { PostgresKeyStore } from "../stores/postgres/postgres-key-store.js";
import { PostgresPortalSessionStore } from "../stores/postgres/postgres-portal-session-store.js";
import { SqliteKeyStore } from "../stores/sqlite/sqlite-key-store.js";
import { SqlitePortalSessionStore } from "../stores/sqlite/sqlite-portal-session-store.js";

/** The portal session store on the key store's own database, or null for stores without one (memory). */
export function portalStoreFor(store: KeyStore): PortalSessionStore | null {
  if (store instanceof SqliteKeyStore) return new SqlitePortalSessionStore(store);
  if (store instanceof PostgresKeyStore) return new PostgresPortalSessionStore(store);
  return null;
}
