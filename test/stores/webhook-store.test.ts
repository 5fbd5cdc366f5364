import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe } from "vitest";
import { PostgresKeyStore } from "../../src/stores/postgres/postgres-key-store.js";
import { PostgresWebhookStore } from "../../src/stores/postgres/postgres-webhook-store.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";
import { SqliteWebhookStore } from "../../src/stores/sqlite/sqlite-webhook-store.js";
import { backendsAvailable, createTestSchema, DATABASE_URL } from "../helpers/backends.js";
import { runWebhookStoreContract } from "./webhook-store.contract.js";

runWebhookStoreContract("sqlite", async () => {
  const dir = mkdtempSync(join(tmpdir(), "keyward-webhooks-"));
  const keys = new SqliteKeyStore({ filename: join(dir, "k.db") });
  return {
    keys,
    webhooks: new SqliteWebhookStore(keys),
    cleanup: async () => {
      await keys.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

const available = await backendsAvailable();

describe.skipIf(!available)("postgres", () => {
  runWebhookStoreContract("postgres", async () => {
    const { schema, drop } = await createTestSchema();
    const keys = new PostgresKeyStore({ connectionString: DATABASE_URL, schema });
    return {
      keys,
      webhooks: new PostgresWebhookStore(keys),
      cleanup: async () => {
        await keys.close();
        await drop();
      },
    };
  });
});
