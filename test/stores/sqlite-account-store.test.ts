import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { applySqliteMigrations } from "../../src/stores/sqlite/migrations.js";
import { ACCOUNTS_SQLITE_MIGRATIONS, SqliteAccountStore } from "../../src/stores/sqlite/sqlite-account-store.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";
import { describeAccountStoreContract } from "./account-store.contract.js";

describeAccountStoreContract("SQLite", async () => {
  const dir = mkdtempSync(join(tmpdir(), "keyward-accounts-"));
  const keys = new SqliteKeyStore({ filename: join(dir, "keyward.db") });
  await keys.migrate();
  const accounts = new SqliteAccountStore(keys.db);
  await accounts.migrate();
  return {
    keys,
    accounts,
    close: async () => {
      await keys.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe("SQLite session ids migration", () => {
  it("gives every session that predates public ids a random one, so nobody is signed out by the upgrade", async () => {
    const dir = mkdtempSync(join(tmpdir(), "keyward-accounts-"));
    const keys = new SqliteKeyStore({ filename: join(dir, "keyward.db") });
    try {
      await keys.migrate();
      applySqliteMigrations(keys.db, ACCOUNTS_SQLITE_MIGRATIONS.slice(0, 3));
      keys.db
        .prepare(
          "INSERT INTO users (id, email, role, password_hash, created_at, updated_at) VALUES ('usr_a', 'a@example.com', 'member', '', 1, 1)",
        )
        .run();
      for (const digest of ["d1", "d2"])
        keys.db
          .prepare("INSERT INTO sessions (digest, user_id, csrf_token, created_at, last_seen_at) VALUES (?, 'usr_a', 'c', 1, 1)")
          .run(digest);
      const accounts = new SqliteAccountStore(keys.db);
      await accounts.migrate();
      const [one, two] = [await accounts.getSession("d1"), await accounts.getSession("d2")];
      expect(one?.id).toMatch(/^ses_[0-9a-f]{32}$/);
      expect(two?.id).toMatch(/^ses_[0-9a-f]{32}$/);
      expect(one?.id).not.toBe(two?.id);
    } finally {
      await keys.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
