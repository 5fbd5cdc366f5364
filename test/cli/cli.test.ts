import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runCliProcess } from "../helpers/process.js";

let dir: string;
let env: Record<string, string>;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "keyward-cli-"));
  env = { KEYWARD_DATABASE_URL: `sqlite:${join(dir, "keyward.db")}` };
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const json = (stdout: string) => JSON.parse(stdout) as Record<string, unknown>;

describe("keyward CLI", () => {
  it("migrate, admin-key create and keys create work straight on the store, with --json", async () => {
    expect((await runCliProcess(["migrate", "--json"], env)).code).toBe(0);
    const admin = await runCliProcess(["admin-key", "create", "--name", "ops", "--json"], env);
    expect(admin.code).toBe(0);
    expect(json(admin.stdout)).toMatchObject({
      scopes: ["admin"],
      owner: { type: "application", id: "keyward" },
      environment: "production",
    });
    expect(String(json(admin.stdout).key)).toMatch(/^kw_live_/);

    const created = await runCliProcess(
      [
        "keys",
        "create",
        "--owner",
        "user:alice",
        "--name",
        "Alice CLI",
        "--environment",
        "sandbox",
        "--scopes",
        "read,write",
        "--expires-in",
        "30d",
        "--json",
      ],
      env,
    );
    expect(created.code).toBe(0);
    const key = json(created.stdout);
    expect(key).toMatchObject({ name: "Alice CLI", scopes: ["read", "write"], status: "active" });
    expect(Date.parse(String(key.expires_at)) - Date.now()).toBeGreaterThan(29 * 86_400_000);

    const verified = await runCliProcess(["verify", String(key.key), "--scopes", "read", "--json"], env);
    expect(verified.code).toBe(0);
    expect(json(verified.stdout)).toMatchObject({ valid: true, code: "VALID", key: { expires_at: key.expires_at } });
    expect(verified.stdout).not.toContain("expiresAt");
    expect(verified.stdout.endsWith("}\n")).toBe(true);
    const denied = await runCliProcess(["verify", String(key.key), "--scopes", "admin", "--json"], env);
    expect(denied.code).toBe(1);
    expect(json(denied.stdout)).toMatchObject({ valid: false, code: "INSUFFICIENT_SCOPE" });
  });

  it("lists, shows, rotates and revokes", async () => {
    const created = json(
      (await runCliProcess(["keys", "create", "--owner", "application:billing", "--name", "b", "--scopes", "read", "--json"], env)).stdout,
    );
    const listed = json((await runCliProcess(["keys", "list", "--owner", "application:billing", "--json"], env)).stdout) as {
      data: { id: string }[];
    };
    expect(listed.data.map((k) => k.id)).toEqual([created.id]);
    const shown = await runCliProcess(["keys", "show", String(created.id), "--json"], env);
    expect(json(shown.stdout)).not.toHaveProperty("key");
    const rotated = json((await runCliProcess(["keys", "rotate", String(created.id), "--grace", "60", "--json"], env)).stdout);
    expect(rotated.rotated_from).toBe(created.id);
    expect(rotated.key).not.toBe(created.key);
    const revoked = json((await runCliProcess(["keys", "revoke", String(rotated.id), "--reason", "test", "--json"], env)).stdout);
    expect(revoked.status).toBe("revoked");
    const verify = await runCliProcess(["verify", String(rotated.key), "--json"], env);
    expect(json(verify.stdout).code).toBe("REVOKED");
  });

  it("errors go to stderr with a non-zero exit", async () => {
    const bad = await runCliProcess(["keys", "create", "--owner", "user:alice", "--name", "x", "--scopes", "NOT VALID"], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("VALIDATION_FAILED");
    expect(bad.stdout).toBe("");
    const missing = await runCliProcess(["keys", "show", "key_0000000000000000000000"], env);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("RESOURCE_NOT_FOUND");
    const owner = await runCliProcess(["keys", "create", "--owner", "robot:x", "--name", "x"], env);
    expect(owner.code).not.toBe(0);
  });

  it("--version, one exit code for every error (2) and one for a negative answer (1), each error printed once", async () => {
    const version = await runCliProcess(["--version"], env);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    const unknown = await runCliProcess(["nosuch"], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.match(/unknown command/g)).toHaveLength(1);
    const missing = await runCliProcess(["keys", "create", "--environment", "prod"], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr.match(/error:/g)).toHaveLength(1);
    const help = await runCliProcess(["--help"], env);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("KEYWARD_DATABASE_URL");
  });

  it("keys list prints column headers, or says there are none", async () => {
    expect((await runCliProcess(["migrate"], env)).code).toBe(0);
    expect((await runCliProcess(["keys", "list"], env)).stdout).toContain("No keys.");
    await runCliProcess(["keys", "create", "--owner", "user:bob", "--name", "b", "--scopes", "read"], env);
    const listed = (await runCliProcess(["keys", "list"], env)).stdout.split("\n");
    expect(listed[0]).toMatch(/^ID\s+REF\s+STATUS\s+ENVIRONMENT\s+OWNER\s+NAME$/);
    expect(listed[1]).toContain("user:bob");
  });
});
