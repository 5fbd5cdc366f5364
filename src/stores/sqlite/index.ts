export { SqliteKeyStore, type SqliteKeyStoreOptions } from "./sqlite-key-store.js";
export { SqliteQuotaCounter } from "./sqlite-quota-counter.js";
export { SqliteUsageStore } from "./sqlite-usage-store.js";
