import { describe } from "vitest";
import { PostgresKeyStore } from "../../src/stores/postgres/postgres-key-store.js";
import { backendsAvailable, createTestSchema, DATABASE_URL } from "../helpers/backends.js";
import { runKeyStoreContract } from "./key-store.contract.js";

const available = await backendsAvailable();

describe.skipIf(!available)("postgres", () => {
  runKeyStoreContract("postgres", async () => {
    const { schema, drop } = await createTestSchema();
    const store = new PostgresKeyStore({ connectionString: DATABASE_URL, schema });
    return {
      store,
      cleanup: async () => {
        await store.close();
        await drop();
      },
    };
  });
});
