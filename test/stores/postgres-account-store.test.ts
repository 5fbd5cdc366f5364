import { describe } from "vitest";
import { PostgresAccountStore } from "../../src/stores/postgres/postgres-account-store.js";
import { PostgresKeyStore } from "../../src/stores/postgres/postgres-key-store.js";
import { backendsAvailable, createTestSchema, DATABASE_URL } from "../helpers/backends.js";
import { describeAccountStoreContract } from "./account-store.contract.js";

const available = await backendsAvailable();

describe.skipIf(!available)("postgres", () => {
  describeAccountStoreContract("PostgreSQL", async () => {
    const { schema, drop } = await createTestSchema();
    const keys = new PostgresKeyStore({ connectionString: DATABASE_URL, schema, maxConnections: 3 });
    await keys.migrate();
    const accounts = new PostgresAccountStore(keys.pool);
    await accounts.migrate();
    return {
      keys,
      accounts,
      close: async () => {
        await keys.close();
        await drop();
      },
    };
  });
});
