import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { storesBeside } from "../../src/service/store-factory.js";
import { SqliteAccountStore } from "../../src/stores/sqlite/sqlite-account-store.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";
import { SqliteWebhookStore } from "../../src/stores/sqlite/sqlite-webhook-store.js";

// Issue 19, item 3: the SQLite file holds webhook secrets, password hashes, session and key
// digests. Its folder is made 0700 and the file, -wal and -shm 0600 whatever the umask; existing
// ones that are wider are reported (the service warns at start), not silently changed.

const mode = (path: string) => statSync(path).mode & 0o777;
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "keyward-modes-"));
  dirs.push(dir);
  return dir;
}

/** Opens the store the way the service does, every connection included, and writes through each. */
async function openEverything(filename: string) {
  const keys = new SqliteKeyStore({ filename });
  await keys.migrate();
  const stores = await storesBeside(keys);
  const accounts = new SqliteAccountStore(keys.db);
  await accounts.migrate();
  await new SqliteWebhookStore(keys).migrate();
  await keys.setMetaOnce("file-modes-test", "1");
  await stores.usage.writeUsage([], [{ keyId: "key_none", at: 1, ip: null }]);
  return {
    keys,
    close: async () => {
      await stores.usage.close?.();
      await stores.quotas.close?.();
      await keys.close();
    },
  };
}

describe("SQLite file modes", () => {
  it("under a umask of 000, every folder level it creates is 0700 and the database, -wal and -shm are 0600", async () => {
    const root = tempDir();
    const filename = join(root, "a", "b", "keyward.db");
    const previous = process.umask(0);
    try {
      const opened = await openEverything(filename);
      try {
        expect(opened.keys.fileModeWarnings).toEqual([]);
        expect([mode(join(root, "a")), mode(join(root, "a", "b"))]).toEqual([0o700, 0o700]);
        expect([mode(filename), mode(`${filename}-wal`), mode(`${filename}-shm`)]).toEqual([0o600, 0o600, 0o600]);
      } finally {
        await opened.close();
      }
    } finally {
      process.umask(previous);
    }
  });

  it("a -wal or -shm left wider by an older version is narrowed when the database file is 0600", async () => {
    const root = tempDir();
    const filename = join(root, "keyward.db");
    const first = await openEverything(filename);
    // Leave the sidecars behind as an older version with a 022 umask would have (a second
    // connection keeps them from being deleted while the first one closes).
    const holder = new SqliteKeyStore({ filename });
    await first.close();
    chmodSync(`${filename}-wal`, 0o644);
    chmodSync(`${filename}-shm`, 0o644);
    const again = new SqliteKeyStore({ filename });
    try {
      expect([mode(`${filename}-wal`), mode(`${filename}-shm`)]).toEqual([0o600, 0o600]);
    } finally {
      await again.close();
      await holder.close();
    }
  });

  it("an existing folder or database file open to other users is reported with the fix, and left as it is", async () => {
    const root = tempDir();
    const folder = join(root, "data");
    mkdirSync(folder);
    chmodSync(folder, 0o755);
    const filename = join(folder, "keyward.db");
    writeFileSync(filename, "");
    chmodSync(filename, 0o644);
    const opened = await openEverything(filename);
    try {
      expect(opened.keys.fileModeWarnings).toEqual([
        `data folder ${folder} is open to other users (mode 0755): chmod 700 ${folder}`,
        `database file ${filename} is readable by other users (mode 0644): chmod 600 ${filename}*`,
      ]);
      expect([mode(folder), mode(filename)]).toEqual([0o755, 0o644]);
    } finally {
      await opened.close();
    }
  });

  it("an in-memory store touches no file", async () => {
    const store = new SqliteKeyStore({ filename: ":memory:" });
    expect(store.fileModeWarnings).toEqual([]);
    await store.close();
  });
});
