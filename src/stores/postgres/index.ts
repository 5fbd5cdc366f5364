export { PostgresKeyStore, type PostgresKeyStoreOptions } from "./postgres-key-store.js";
export { PostgresQuotaCounter } from "./postgres-quota-counter.js";
export { PostgresUsageStore } from "./postgres-usage-store.js";
