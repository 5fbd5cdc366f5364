import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";
import { makeAudit, makeKey, runKeyStoreContract } from "./key-store.contract.js";

const openTemp = () => {
  const dir = mkdtempSync(join(tmpdir(), "keyward-sqlite-"));
  return { dir, store: new SqliteKeyStore({ filename: join(dir, "nested", "k.db") }) };
};

runKeyStoreContract("sqlite", async () => {
  const { dir, store } = openTemp();
  return {
    store,
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

it("sqlite: runs in WAL with full sync, and data survives close and reopen", async () => {
  const { dir, store } = openTemp();
  try {
    await store.migrate();
    expect(store.db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(store.db.pragma("synchronous", { simple: true })).toBe(2);
    const key = makeKey();
    await store.insertKey(key, makeAudit("key.created", key.id));
    await store.close();
    const reopened = new SqliteKeyStore({ filename: join(dir, "nested", "k.db") });
    await reopened.migrate();
    expect(await reopened.getKey(key.id)).toEqual(key);
    await reopened.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
