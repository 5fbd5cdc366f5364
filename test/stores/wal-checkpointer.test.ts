import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";
import { SqliteUsageStore } from "../../src/stores/sqlite/sqlite-usage-store.js";
import { WalCheckpointer } from "../../src/stores/sqlite/wal-checkpointer.js";
import { assertBuilt, REPO_ROOT } from "../helpers/process.js";

describe("WalCheckpointer", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "keyward-wal-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("copies the WAL into the file from its own thread while the writer never checkpoints", async () => {
    const file = join(dir, "copy.db");
    const db = new Database(file);
    db.pragma("journal_mode = WAL");
    // The writer's own checkpoint off: every frame the file receives comes through the worker.
    db.pragma("wal_autocheckpoint = 0");
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT)");
    const insert = db.prepare("INSERT INTO t (payload) VALUES (?)");
    const checkpointer = new WalCheckpointer(file, { intervalMs: 10 });
    let frames = 0;
    for (let i = 0; i < 50; i++) {
      insert.run("x".repeat(20_000));
      frames += 5;
    }
    await expect.poll(() => checkpointer.stats.checkpointedFrames, { timeout: 5_000 }).toBeGreaterThanOrEqual(frames);
    expect(checkpointer.stats.failures).toBe(0);
    // What was copied is the data: a connection that reads the file alone sees every row.
    await checkpointer.close();
    db.close();
    const reader = new Database(file, { readonly: true });
    expect((reader.prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n).toBe(50);
    reader.close();
  });

  it("counts a checkpoint it cannot run instead of throwing, and closes all the same", async () => {
    const checkpointer = new WalCheckpointer(join(dir, "no-such-folder", "x.db"), { intervalMs: 10 });
    await expect.poll(() => checkpointer.stats.failures, { timeout: 5_000 }).toBeGreaterThan(0);
    await checkpointer.close();
    await checkpointer.close();
  });

  it("lets a script whose last step is closing the engine finish: close() settles, the process exits 0", () => {
    assertBuilt();
    // A script of an embedding app, run as it would be (the compiled package, nothing else alive).
    const script = join(dir, "close-last.mjs");
    const dist = (path: string) => JSON.stringify(join(REPO_ROOT, "dist", path));
    writeFileSync(
      script,
      `import { Keyward } from ${dist("engine/keyward.js")};
import { SqliteKeyStore } from ${dist("stores/sqlite/sqlite-key-store.js")};
import { SqliteUsageStore } from ${dist("stores/sqlite/sqlite-usage-store.js")};
import { BufferedUsageRecorder } from ${dist("usage/buffered-usage-recorder.js")};
const store = new SqliteKeyStore({ filename: ${JSON.stringify(join(dir, "close-last.db"))} });
await store.migrate();
const usageStore = new SqliteUsageStore(store.db);
const keyward = new Keyward({ store, usageStore, usage: new BufferedUsageRecorder({ store: usageStore }) });
await keyward.verify("kw_not_a_key");
await keyward.close();
console.log("closed");
`,
    );
    const run = spawnSync(process.execPath, [script], { encoding: "utf8", timeout: 30_000 });
    expect({ status: run.status, stdout: run.stdout.trim() }).toEqual({ status: 0, stdout: "closed" });
  });

  it("runs beside an open usage store and stops with it", async () => {
    const keys = new SqliteKeyStore({ filename: join(dir, "usage.db") });
    await keys.migrate();
    const usage = new SqliteUsageStore(keys.db);
    expect(usage.checkpointer).not.toBeNull();
    await expect.poll(() => usage.checkpointer?.stats.runs ?? 0, { timeout: 5_000 }).toBeGreaterThan(0);
    await usage.close();
    await keys.close();
    const memory = new SqliteKeyStore({ filename: ":memory:" });
    await memory.migrate();
    expect(new SqliteUsageStore(memory.db).checkpointer).toBeNull();
    await memory.close();
  });
});
