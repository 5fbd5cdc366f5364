export { SqliteKeyStore, type SqliteKeyStoreOptions } from "./sqlite-key-store.js";
