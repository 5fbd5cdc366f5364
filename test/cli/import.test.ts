import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runCliProcess } from "../helpers/process.js";

let dir: string;
let env: Record<string, string>;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "keyward-cli-import-"));
  env = {
    KEYWARD_DATABASE_URL: `sqlite:${join(dir, "keyward.db")}`,
    KEYWARD_LEGACY_FORMATS: JSON.stringify([{ name: "xapi", prefix: "xk_", digest: "sha256_hex" }]),
  };
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

let serial = 0;
const legacyKey = () => `xk_${createHash("sha256").update(`cli ${serial++} ${Math.random()}`).digest("hex").slice(0, 32)}`;
const hex = (key: string) => createHash("sha256").update(key).digest("hex");
const json = (stdout: string) => JSON.parse(stdout) as Record<string, unknown>;

/** `keyward import -` with `input` on standard input. */
const importFromStdin = (input: string, args: string[] = []) => runCliProcess(["import", "-", ...args], env, input);

describe("keyward import", () => {
  it("imports a CSV of SHA-256-hex digests, reports bad lines (exit 1), and a second run changes nothing (exit 0)", async () => {
    const keys = [legacyKey(), legacyKey(), legacyKey()];
    const file = join(dir, "keys.csv");
    writeFileSync(
      file,
      [
        "external_id,owner,name,scopes,digest,digest_variant",
        ...keys.map((key, i) => `${i + 1},application:acct-${i},key ${i},read,${hex(key)},sha256_hex`),
        "9,application:acct-9,bad,read,not-a-digest,sha256_hex",
      ].join("\n"),
    );
    const first = await runCliProcess(["import", file, "--format", "xapi", "--json"], env);
    expect(first.code).toBe(1);
    expect(json(first.stdout)).toMatchObject({
      records: 4,
      created: 3,
      failed: 1,
      errors: [{ line: 5, reason: "a sha256_hex digest is 64 hexadecimal characters" }],
    });
    const verified = await runCliProcess(["verify", keys[1] as string, "--scopes", "read", "--json"], env);
    expect(verified.code).toBe(0);
    expect(json(verified.stdout)).toMatchObject({ valid: true, key: { name: "key 1", owner: { type: "application", id: "acct-1" } } });
    // keys show names the legacy format and the old system's id.
    const shown = await runCliProcess(["keys", "show", (json(verified.stdout).key as { id: string }).id], env);
    expect(shown.stdout).toMatch(/^format +legacy:xapi$/m);
    expect(shown.stdout).toMatch(/^external id +2$/m);

    const good = join(dir, "good.csv");
    writeFileSync(
      good,
      ["external_id,owner,digest,digest_variant", ...keys.map((k, i) => `${i + 1},application:acct-${i},${hex(k)},sha256_hex`)].join("\n"),
    );
    const again = await runCliProcess(["import", good, "--format", "xapi"], env);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^3 records: 0 created, 3 unchanged \(already imported\), 0 failed\./);
    expect(again.stdout).toMatch(/Audit event evt_\w+ \(keys\.imported\)/);
  });

  it("reads JSON lines from standard input; --dry-run writes nothing; --strict stops at the first bad record", async () => {
    const key = legacyKey();
    const lines = [JSON.stringify({ owner: "user:ann", key }), JSON.stringify({ owner: "ann", key: legacyKey() })].join("\n");
    const dry = await importFromStdin(lines, ["--dry-run", "--json"]);
    expect(dry.code).toBe(1);
    expect(json(dry.stdout)).toMatchObject({ dry_run: true, created: 1, failed: 1, audit_event_id: null });
    expect((await runCliProcess(["verify", key], env)).code).toBe(1);

    const strict = await importFromStdin(lines, ["--strict"]);
    expect(strict.code).toBe(1);
    expect(strict.stdout).toMatch(/Stopped at line 2 \(--strict\)/);
    expect((await runCliProcess(["verify", key], env)).code).toBe(1);

    const real = await importFromStdin(lines, ["--json"]);
    expect(json(real.stdout)).toMatchObject({ created: 1, failed: 1 });
    expect((await runCliProcess(["verify", key], env)).code).toBe(0);
  });

  it("refuses a format that is not declared, and a file that cannot be read, with exit 2", async () => {
    const file = join(dir, "k.jsonl");
    writeFileSync(file, `${JSON.stringify({ owner: "user:a", key: legacyKey() })}\n`);
    const unknown = await runCliProcess(["import", file, "--format", "nope"], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/VALIDATION_FAILED/);
    expect((await runCliProcess(["import", join(dir, "missing.jsonl")], env)).code).toBe(2);
  });
});
