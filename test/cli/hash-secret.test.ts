import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/service/config.js";
import { openKeyward } from "../../src/service/open-keyward.js";
import { backendsAvailable, createTestSchema, DATABASE_URL } from "../helpers/backends.js";
import { runCliProcess, type ServeProcess, startServeProcess, waitForExit } from "../helpers/process.js";

// docs/security.md, "Hash secret fingerprint": every process (server, CLI)
// refuses a store whose keys are hashed under another KEYWARD_HASH_SECRET, saying which
// variable is missing or differs; rotation (`v2:new,v1:old`) keeps working.

const SECRET = "6f0c1f6b3b2a4c1e9d8e7f60a1b2c3d4e5f60718293a4b5c";
const OTHER = "0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c";

let dir: string;
let database: string;
let serve: ServeProcess | undefined;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "keyward-hash-secret-"));
  database = join(dir, "keyward.db");
});
afterEach(async () => {
  if (serve) {
    serve.child.kill("SIGTERM");
    await waitForExit(serve.child);
    serve = undefined;
  }
  rmSync(dir, { recursive: true, force: true });
});

/** The process environment with exactly this hash secret ("" = not set). */
const env = (hashSecret: string) => ({ KEYWARD_DATABASE_URL: `sqlite:${database}`, KEYWARD_HASH_SECRET: hashSecret });

const createKey = (hashSecret: string) =>
  runCliProcess(["keys", "create", "--owner", "application:billing", "--name", "b", "--scopes", "read", "--json"], env(hashSecret));

function expectRefused(result: { code: number; stdout: string; stderr: string }, message: RegExp): void {
  expect(result.code).toBe(2);
  expect(result.stdout).toBe("");
  expect(result.stderr).toMatch(/^error: HASH_SECRET_MISMATCH: /);
  expect(result.stderr).toMatch(message);
  expect(result.stderr).toContain("Every process on this store (server, workers, CLI) needs the same KEYWARD_HASH_SECRET");
}

async function introspect(url: string, key: string): Promise<number> {
  return (await fetch(`${url}/v1/introspect`, { headers: { authorization: `Bearer ${key}` } })).status;
}

describe("KEYWARD_HASH_SECRET set on the server but not in the shell", () => {
  it("the CLI refuses to create or verify keys, and says the variable is missing; with it, the server knows the CLI's key", async () => {
    serve = await startServeProcess(env(SECRET));
    const bootstrapKey = /(kw_live_\S+)/.exec(serve.stdout())?.[1] ?? "";
    expect(bootstrapKey).not.toBe("");

    expectRefused(await createKey(""), /KEYWARD_HASH_SECRET is not set in this process, but this store's keys are hashed with it \(v1\)/);
    const verified = await runCliProcess(["verify", bootstrapKey, "--json"], env(""));
    expectRefused(verified, /KEYWARD_HASH_SECRET is not set in this process/);

    const created = await createKey(SECRET);
    expect(created.code).toBe(0);
    const key = String((JSON.parse(created.stdout) as { key: string }).key);
    expect(await introspect(serve.url, key)).toBe(200);
    expect((await runCliProcess(["verify", bootstrapKey, "--json"], env(SECRET))).code).toBe(0);
  });

  it("a different secret is refused and named as differing", async () => {
    expect((await createKey(SECRET)).code).toBe(0);
    expectRefused(await createKey(OTHER), /KEYWARD_HASH_SECRET v1 in this process differs from the v1 this store's keys are hashed with/);
  });
});

describe("the server refuses to start", () => {
  it("on a store whose keys were made without a secret", async () => {
    expect((await createKey("")).code).toBe(0);
    const failed = await startServeProcess(env(SECRET)).catch((error: Error) => error);
    expect(failed).toBeInstanceOf(Error);
    expect((failed as Error).message).toMatch(/serve exited with 2/);
    expect((failed as Error).message).toMatch(
      /HASH_SECRET_MISMATCH: KEYWARD_HASH_SECRET is set in this process, but this store's keys are hashed without it/,
    );
  });

  it("on a store made under a secret, when its own is missing", async () => {
    expect((await createKey(SECRET)).code).toBe(0);
    const failed = await startServeProcess(env("")).catch((error: Error) => error);
    expect((failed as Error).message).toMatch(/HASH_SECRET_MISMATCH: KEYWARD_HASH_SECRET is not set in this process/);
  });

  it("a migrate run without the secret before the first start does not lock the store to no secret", async () => {
    expect((await runCliProcess(["migrate"], env(""))).code).toBe(0);
    serve = await startServeProcess(env(SECRET));
    expectRefused(await createKey(""), /KEYWARD_HASH_SECRET is not set in this process/);
  });
});

describe("rotation", () => {
  it("v1 → v2:new,v1:old → v2:new alone keeps working; a store's version missing or differing is refused", async () => {
    const v1 = await createKey(SECRET);
    expect(v1.code).toBe(0);
    const v1Key = String((JSON.parse(v1.stdout) as { key: string }).key);
    const rotating = `v2:${OTHER},v1:${SECRET}`;
    serve = await startServeProcess(env(rotating));
    expect(await introspect(serve.url, v1Key)).toBe(200);
    const v2 = await createKey(rotating);
    expect(v2.code).toBe(0);
    const v2Key = String((JSON.parse(v2.stdout) as { key: string }).key);
    expect(await introspect(serve.url, v2Key)).toBe(200);
    serve.child.kill("SIGTERM");
    await waitForExit(serve.child);
    serve = undefined;

    // v1 retired: v2 alone was recorded while both were listed.
    expect((await runCliProcess(["verify", v2Key, "--json"], env(`v2:${OTHER}`))).code).toBe(0);
    expectRefused(await createKey(`v3:${"a".repeat(48)}`), /this process has v3, but this store's keys are hashed with v1, v2/);
    expectRefused(await createKey(`v2:${OTHER},v1:${"b".repeat(48)}`), /KEYWARD_HASH_SECRET v1 in this process differs/);
    expectRefused(
      await createKey(""),
      /KEYWARD_HASH_SECRET is not set in this process, but this store's keys are hashed with it \(v1, v2\)/,
    );
  });
});

it("the store keeps a fingerprint per version that does not contain the secret", async () => {
  expect((await createKey(`v2:${OTHER},v1:${SECRET}`)).code).toBe(0);
  const db = new Database(database, { readonly: true });
  const rows = db.prepare("SELECT name, value FROM meta WHERE name LIKE 'hash_secret%' ORDER BY name").all() as {
    name: string;
    value: string;
  }[];
  db.close();
  expect(rows.map((r) => r.name)).toEqual(["hash_secret_v1", "hash_secret_v2", "hash_secrets"]);
  for (const row of rows.slice(0, 2)) expect(row.value).toMatch(/^hmac-sha256:[A-Za-z0-9_-]{22}$/);
  const all = JSON.stringify(rows);
  expect(all).not.toContain(SECRET);
  expect(all).not.toContain(OTHER);
});

const postgres = await backendsAvailable();

describe.skipIf(!postgres)("on PostgreSQL", () => {
  it("a process without the secret is refused on a store first used with it", async () => {
    const { schema, drop } = await createTestSchema();
    try {
      const base = { KEYWARD_DATABASE_URL: DATABASE_URL, KEYWARD_DATABASE_SCHEMA: schema };
      const first = await openKeyward(loadConfig({ ...base, KEYWARD_HASH_SECRET: SECRET }));
      await first.close();
      await expect(openKeyward(loadConfig({ ...base, KEYWARD_HASH_SECRET: "" }))).rejects.toMatchObject({
        code: "HASH_SECRET_MISMATCH",
        message: expect.stringMatching(/KEYWARD_HASH_SECRET is not set in this process/),
      });
      await expect(openKeyward(loadConfig({ ...base, KEYWARD_HASH_SECRET: OTHER }))).rejects.toMatchObject({
        code: "HASH_SECRET_MISMATCH",
        message: expect.stringMatching(/v1 in this process differs/),
      });
      const again = await openKeyward(loadConfig({ ...base, KEYWARD_HASH_SECRET: `v2:${OTHER},v1:${SECRET}` }));
      await again.close();
    } finally {
      await drop();
    }
  });
});
