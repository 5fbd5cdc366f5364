import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { backendsAvailable, createTestSchema, DATABASE_URL } from "../helpers/backends.js";
import { assertBuilt, CLI, runCliProcess, waitForExit } from "../helpers/process.js";
import { SECRET, seedStore, verifyAll } from "./helpers.js";

// docs/migrating.md, "Export and moving stores": copy-store killed mid-copy (SIGKILL, no
// chance to clean up) continues where it stopped when run again, and ends verified.

const available = await backendsAvailable();
const SYNTHETIC = 20_000;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "keyward-copy-resume-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Many more key rows, cloned from a real one with new ids and digests (never verified: only counted). */
function addSyntheticKeys(file: string, count: number): void {
  const db = new Database(file);
  try {
    const columns = db
      .prepare<[], { name: string }>("PRAGMA table_info(keys)")
      .all()
      .map((c) => c.name);
    const values = columns.map((c) =>
      c === "id"
        ? "'key_syn_' || printf('%06d', i)"
        : c === "digest"
          ? "'syn-digest-' || i"
          : c === "lineage_id"
            ? "'lin_syn_' || i"
            : `k.${c}`,
    );
    db.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${count})
      INSERT INTO keys (${columns.join(", ")}) SELECT ${values.join(", ")} FROM n, (SELECT * FROM keys LIMIT 1) k`);
  } finally {
    db.close();
  }
}

describe.skipIf(!available)("keyward copy-store interrupted", () => {
  it("resumes after a kill, refuses a second plain copy, and verifies", async () => {
    assertBuilt();
    const { schema, drop } = await createTestSchema();
    const file = join(dir, "source.db");
    const env = { KEYWARD_HASH_SECRET: SECRET, KEYWARD_DATABASE_SCHEMA: schema };
    const args = ["copy-store", "--from", `sqlite:${file}`, "--to", DATABASE_URL, "--batch-size", "100"];
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    try {
      const seeded = await seedStore(`sqlite:${file}`, null, 8, "a");
      addSyntheticKeys(file, SYNTHETIC);

      const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: "ignore" });
      const exited = waitForExit(child);
      let killedAt: string | null = null;
      for (let i = 0; i < 600 && child.exitCode === null; i++) {
        const row = await client
          .query<{ value: string }>(`SELECT value FROM ${schema}.meta WHERE name = 'copy_store.progress.keys'`)
          .catch(() => ({ rows: [] as { value: string }[] }));
        const value = row.rows[0]?.value;
        if (value && value !== "done") {
          child.kill("SIGKILL");
          killedAt = value;
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await exited;
      expect(killedAt).not.toBeNull();
      const partial = Number((await client.query(`SELECT COUNT(*) AS n FROM ${schema}.keys`)).rows[0].n);
      expect(partial).toBeGreaterThan(0);
      expect(partial).toBeLessThan(SYNTHETIC + 8);

      const resumed = await runCliProcess([...args, "--json"], env);
      expect(resumed.stderr).toBe("");
      expect(resumed.code).toBe(0);
      const report = JSON.parse(resumed.stdout);
      expect(report).toMatchObject({ ok: true, resumed: true, mode: "copy" });
      expect(report.tables.find((t: { table: string }) => t.table === "keys")).toMatchObject({
        source: SYNTHETIC + 8,
        target: SYNTHETIC + 8,
      });
      expect(report.auditChain.target.ok).toBe(true);
      expect(await verifyAll(DATABASE_URL, schema, seeded)).toEqual({ valid: 7, revoked: "REVOKED" });

      // Done: a second plain copy into it is refused (exit 2), a merge adds nothing.
      const again = await runCliProcess(args, env);
      expect(again.code).toBe(2);
      expect(again.stderr).toMatch(/CONFLICT: the target is not empty/);
      const merged = await runCliProcess([...args, "--merge"], env);
      expect(merged.code).toBe(0);
      expect(merged.stdout).toMatch(/copied and verified/);
    } finally {
      await client.end();
      await drop();
    }
  });
});
