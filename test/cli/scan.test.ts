import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { formatKeyRef, generateApiKey } from "../../src/core/key-format.js";
import { runCliProcess } from "../helpers/process.js";
import { createKeyOverHttp, startTestService } from "../helpers/service.js";

let repo: string;
const git = (...args: string[]) =>
  execFileSync("git", ["-C", repo, "-c", "user.email=t@example.test", "-c", "user.name=t", ...args], { encoding: "utf8" });

beforeEach(() => {
  repo = mkdtempSync(join(tmpdir(), "keyward-scan-"));
  git("init", "-q");
});
afterEach(() => {
  rmSync(repo, { recursive: true, force: true });
});

const scan = (...args: string[]) =>
  runCliProcess(["scan", repo, "--json", ...args], { KEYWARD_DATABASE_URL: `sqlite:${join(repo, ".tmp", "unused.db")}` });

it("finds a key committed once and deleted later, by file, line, commit and ref, never printing the key", async () => {
  const leaked = generateApiKey({ environment: "production" });
  mkdirSync(join(repo, "config"));
  writeFileSync(join(repo, "config", "app.env"), `# settings\nAPI_KEY=${leaked}\n`);
  git("add", ".");
  git("commit", "-q", "-m", "add config");
  const leakCommit = git("rev-parse", "HEAD").trim();
  writeFileSync(join(repo, "config", "app.env"), "# settings\nAPI_KEY=from-the-vault\n");
  git("commit", "-q", "-am", "remove key");

  const result = await scan();
  expect(result.code).toBe(1);
  const report = JSON.parse(result.stdout) as { findings: { file: string; line: number; commit?: string; ref: string }[] };
  expect(report.findings).toEqual([{ file: "config/app.env", line: 2, commit: leakCommit, ref: formatKeyRef(leaked) }]);
  expect(result.stdout).not.toContain(leaked);
});

it("finds keys in the working tree and ignores look-alikes with a bad checksum or another prefix", async () => {
  const real = generateApiKey({ environment: "sandbox" });
  const badChecksum = real.slice(0, -1) + (real.endsWith("0") ? "1" : "0");
  const otherPrefix = generateApiKey({ prefix: "zz", environment: "sandbox" });
  writeFileSync(join(repo, "notes.md"), `real ${real}\nfake ${badChecksum}\nforeign ${otherPrefix}\n`);
  const result = await scan("--no-history");
  expect(result.code).toBe(1);
  const report = JSON.parse(result.stdout) as { findings: { ref: string; line: number }[] };
  expect(report.findings).toEqual([{ file: "notes.md", line: 1, ref: formatKeyRef(real) }]);
});

it("exits 0 on a clean tree", async () => {
  writeFileSync(join(repo, "README.md"), "nothing secret here: kw_test_short\n");
  git("add", ".");
  git("commit", "-q", "-m", "clean");
  const result = await scan();
  expect(result.code).toBe(0);
  expect(JSON.parse(result.stdout)).toEqual({ findings: [] });
});

it("--staged scans only what is about to be committed, for a pre-commit hook", async () => {
  const staged = generateApiKey({ environment: "sandbox" });
  const unstaged = generateApiKey({ environment: "sandbox" });
  writeFileSync(join(repo, "staged.env"), `KEY=${staged}\n`);
  writeFileSync(join(repo, "scratch.env"), `KEY=${unstaged}\n`);
  git("add", "staged.env");
  const result = await runCliProcess(["scan", repo, "--staged", "--json"], {
    KEYWARD_DATABASE_URL: `sqlite:${join(repo, ".tmp", "unused.db")}`,
  });
  expect(result.code).toBe(1);
  expect(JSON.parse(result.stdout)).toEqual({ findings: [{ file: "staged.env", line: 1, ref: formatKeyRef(staged) }] });
  git("rm", "-q", "--cached", "staged.env");
  const clean = await runCliProcess(["scan", repo, "--staged", "--json"], {
    KEYWARD_DATABASE_URL: `sqlite:${join(repo, ".tmp", "unused.db")}`,
  });
  expect(clean.code).toBe(0);
});

it("--revoke reports what it found to a Keyward service, which revokes it", async () => {
  const service = await startTestService();
  try {
    const leaked = await createKeyOverHttp(service);
    writeFileSync(join(repo, "deploy.sh"), `curl -H "X-API-Key: ${leaked.key}" https://api.example.test\n`);
    git("add", ".");
    git("commit", "-q", "-m", "oops");
    const result = await runCliProcess(["scan", repo, "--json", "--revoke", service.url], {
      KEYWARD_DATABASE_URL: `sqlite:${join(repo, ".tmp", "unused.db")}`,
      KEYWARD_ADMIN_KEY: service.adminKey,
    });
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ revoked: 1 });
    expect(result.stdout).not.toContain(leaked.key);
    const after = await service.call("/v1/introspect", { headers: { "x-api-key": leaked.key } });
    expect((after.json() as { code: string }).code).toBe("REVOKED");
  } finally {
    await service.close();
  }
});
