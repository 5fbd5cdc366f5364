import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteAccountStore } from "../../src/stores/sqlite/sqlite-account-store.js";
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
