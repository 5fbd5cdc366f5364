import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { expect, it } from "vitest";
import { applySqliteMigrations, CORE_SQLITE_MIGRATIONS } from "../../src/stores/sqlite/migrations.js";
import { prepareKeyWrites } from "../../src/stores/sqlite/sqlite-key-rows.js";
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

it("sqlite: the move of last uses to key_last_use keeps every key and its last use", async () => {
  const { dir } = openTemp();
  const file = join(dir, "old.db");
  try {
    // A file as the release before core/0003 left it: last uses on the keys row.
    const old = new Database(file);
    applySqliteMigrations(
      old,
      CORE_SQLITE_MIGRATIONS.filter((m) => m.name !== "core/0003_key_last_use"),
    );
    const used = makeKey({ lastUsedAt: Date.UTC(2026, 0, 2), lastUsedIp: "203.0.113.5" });
    const never = makeKey();
    old.prepare("INSERT INTO owners (type, id, disabled, created_at) VALUES ('user', 'alice', 0, 0)").run();
    const insert = old.prepare(
      `INSERT INTO keys (id, digest, hash_version, ref, name, owner_type, owner_id, environment, scopes, enabled, created_at,
         updated_at, allowed_cidrs, metadata, lineage_id, last_used_at, last_used_ip)
       VALUES (?, ?, 0, ?, 'k', 'user', 'alice', 'sandbox', '["read"]', 1, ?, ?, '[]', '{}', ?, ?, ?)`,
    );
    for (const k of [used, never]) insert.run(k.id, k.digest, k.ref, k.createdAt, k.updatedAt, k.lineageId, k.lastUsedAt, k.lastUsedIp);
    old.close();

    const store = new SqliteKeyStore({ filename: file });
    await store.migrate();
    expect(await store.getKey(used.id)).toEqual(used);
    expect(await store.getKey(never.id)).toEqual(never);
    const columns = (store.db.prepare("PRAGMA table_info(keys)").all() as { name: string }[]).map((c) => c.name);
    expect(columns).not.toContain("last_used_at");
    expect(store.db.prepare("SELECT COUNT(*) AS n FROM key_last_use").get()).toEqual({ n: 1 });
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it("sqlite: the organizations migration rebuilds owners in a store with keys, keeping every owner, key and trigger", async () => {
  const dir = mkdtempSync(join(tmpdir(), "keyward-sqlite-"));
  const filename = join(dir, "k.db");
  // The store as the release before organizations left it: every core migration but the rebuild.
  const raw = new Database(filename);
  raw.pragma("foreign_keys = ON");
  applySqliteMigrations(
    raw,
    CORE_SQLITE_MIGRATIONS.filter((migration) => migration.name !== "core/organizations"),
  );
  const key = makeKey({ owner: { type: "user", id: "alice" } });
  raw.prepare("INSERT INTO owners (type, id, disabled, created_at) VALUES ('user', 'alice', 1, 5)").run();
  prepareKeyWrites(raw).insert(key);
  raw.close();
  const store = new SqliteKeyStore({ filename });
  try {
    await store.migrate();
    expect(await store.getOwner({ type: "user", id: "alice" })).toEqual({
      type: "user",
      id: "alice",
      disabled: true,
      createdAt: 5,
      name: null,
      limits: null,
    });
    expect((await store.findKeyByDigest(key.digest))?.ownerDisabled).toBe(true);
    expect(store.db.pragma("foreign_keys", { simple: true })).toBe(1);
    expect(store.db.pragma("foreign_key_check")).toEqual([]);
    // The change feed's owner trigger stands on the new table.
    const last = () => (store.db.prepare("SELECT MAX(seq) AS seq FROM key_changes").get() as { seq: number | null }).seq ?? 0;
    const seq = last();
    await store.setOwnerDisabled({ type: "user", id: "alice" }, false, makeAudit("owner.enabled", "user:alice"), 6);
    expect(last()).toBeGreaterThan(seq);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
