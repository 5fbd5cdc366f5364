import { describe, expect, it } from "vitest";
import { applyPostgresMigrations } from "../../src/stores/postgres/migrations.js";
import { ACCOUNTS_POSTGRES_MIGRATIONS, PostgresAccountStore } from "../../src/stores/postgres/postgres-account-store.js";
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

describe.skipIf(!available)("PostgreSQL session ids migration", () => {
  it("gives every session that predates public ids a random one, so nobody is signed out by the upgrade", async () => {
    const { schema, drop } = await createTestSchema();
    const keys = new PostgresKeyStore({ connectionString: DATABASE_URL, schema, maxConnections: 2 });
    try {
      await keys.migrate();
      const client = await keys.pool.connect();
      try {
        await applyPostgresMigrations(client, ACCOUNTS_POSTGRES_MIGRATIONS.slice(0, 3));
      } finally {
        client.release();
      }
      await keys.pool.query(
        "INSERT INTO users (id, email, role, password_hash, created_at, updated_at) VALUES ('usr_a', 'a@example.com', 'member', '', 1, 1)",
      );
      for (const digest of ["d1", "d2"])
        await keys.pool.query(
          "INSERT INTO sessions (digest, user_id, csrf_token, created_at, last_seen_at) VALUES ($1, 'usr_a', 'c', 1, 1)",
          [digest],
        );
      const accounts = new PostgresAccountStore(keys.pool);
      await accounts.migrate();
      const [one, two] = [await accounts.getSession("d1"), await accounts.getSession("d2")];
      expect(one?.id).toMatch(/^ses_[0-9a-f]{32}$/);
      expect(two?.id).toMatch(/^ses_[0-9a-f]{32}$/);
      expect(one?.id).not.toBe(two?.id);
    } finally {
      await keys.close();
      await drop();
    }
  });
});
