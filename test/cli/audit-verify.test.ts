import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, expect, it } from "vitest";
import { runCliProcess } from "../helpers/process.js";

let dir: string;
let env: Record<string, string>;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "keyward-audit-"));
  env = { KEYWARD_DATABASE_URL: `sqlite:${join(dir, "k.db")}` };
  for (const name of ["a", "b", "c"]) {
    const created = await runCliProcess(["keys", "create", "--owner", "user:alice", "--name", name, "--scopes", "read", "--json"], env);
    expect(created.code).toBe(0);
  }
  const first = JSON.parse((await runCliProcess(["keys", "list", "--json"], env)).stdout).data[0].id as string;
  expect((await runCliProcess(["keys", "revoke", first, "--reason", "test"], env)).code).toBe(0);
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

// Someone with the database file can drop the append-only triggers; the chain still catches them.
const tamper = (sql: string) => {
  const db = new Database(join(dir, "k.db"));
  db.exec("DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete;");
  db.exec(sql);
  db.close();
};

it("an untouched chain verifies", async () => {
  const result = await runCliProcess(["audit", "verify", "--json"], env);
  expect(result.code).toBe(0);
  expect(JSON.parse(result.stdout)).toEqual({ ok: true, events: 4 });
});

it("a changed event is caught, and named", async () => {
  tamper("UPDATE audit_events SET actor_id = 'someone-else' WHERE seq = 2");
  const result = await runCliProcess(["audit", "verify", "--json"], env);
  expect(result.code).toBe(1);
  expect(JSON.parse(result.stdout)).toMatchObject({ ok: false, events: 1, brokenAt: { seq: 2 } });
});

it("a removed event is caught", async () => {
  tamper("DELETE FROM audit_events WHERE seq = 3");
  const result = await runCliProcess(["audit", "verify", "--json"], env);
  expect(result.code).toBe(1);
  expect(JSON.parse(result.stdout)).toMatchObject({ ok: false, brokenAt: { seq: 4 } });
});

it("a forged event with a recomputed own hash still breaks the link after it", async () => {
  tamper("UPDATE audit_events SET hash = 'f00d' WHERE seq = 3");
  const result = await runCliProcess(["audit", "verify", "--json"], env);
  expect(result.code).toBe(1);
  expect(JSON.parse(result.stdout).brokenAt.seq).toBe(3);
});

it("the database refuses changes to audit events while its triggers stand", () => {
  const db = new Database(join(dir, "k.db"));
  try {
    expect(() => db.exec("UPDATE audit_events SET actor_id = 'x' WHERE seq = 1")).toThrow(/append-only/);
    expect(() => db.exec("DELETE FROM audit_events WHERE seq = 1")).toThrow(/append-only/);
  } finally {
    db.close();
  }
});
