// What the test run left out because something npm does not bring is missing (issue 20). The check
// that finds a prerequisite missing in a test file records it under .tmp/skips/reasons/
// (test/helpers/prerequisites.ts); the vitest reporter (test/helpers/skip-reporter.ts) joins that to
// the suites vitest skipped, and it and the benchmark smoke write one JSON line per skipped suite
// under .tmp/skips/ ({ suite, missing, obtain }); scripts/skip-summary.mjs prints them in one block
// at the end of `npm test`.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));
export const SKIPS_DIR = join(REPO_ROOT, ".tmp", "skips");

/** @typedef {{ suite: string, missing: string, obtain: string }} Skip */

/** Where the checks in a test file (its path from the repository root) record what it lacks. */
export const reasonsFile = (/** @type {string} */ testFile) => join(SKIPS_DIR, "reasons", `${testFile.replaceAll("/", "__")}.jsonl`);

/**
 * Replaces what `source` (a test file's path from the repository root, or `bench-smoke`) recorded
 * before with `skips`; nothing left when it skipped nothing.
 * @param {string} source
 * @param {Skip[]} skips
 */
export function writeSkips(source, skips) {
  const file = join(SKIPS_DIR, `${source.replaceAll("/", "__")}.jsonl`);
  if (skips.length === 0) {
    rmSync(file, { force: true });
    return;
  }
  mkdirSync(SKIPS_DIR, { recursive: true });
  writeFileSync(file, skips.map((skip) => `${JSON.stringify(skip)}\n`).join(""));
}

/** @returns {Skip[]} everything recorded under .tmp/skips/, by suite. */
export function readSkips() {
  if (!existsSync(SKIPS_DIR)) return [];
  return readdirSync(SKIPS_DIR)
    .filter((name) => name.endsWith(".jsonl"))
    .flatMap((name) => readFileSync(join(SKIPS_DIR, name), "utf8").split("\n").filter(Boolean))
    .map((line) => JSON.parse(line))
    .sort((a, b) => a.suite.localeCompare(b.suite));
}

/**
 * One block a person cannot miss: the skipped suites grouped by what they lack, with how to get it.
 * @param {Skip[]} skips
 * @param {string} [title]
 */
export function renderSkips(skips, title = "") {
  const rule = "!".repeat(100);
  const groups = new Map();
  for (const skip of skips) {
    const key = `${skip.missing}\n${skip.obtain}`;
    groups.set(key, [...(groups.get(key) ?? []), skip.suite]);
  }
  const lines = [
    "",
    rule,
    `!!  SKIPPED: ${skips.length} suite${skips.length === 1 ? "" : "s"} did not run${title ? ` ${title}` : ""},`,
    "!!  because something npm does not install is missing. A green run says nothing about them.",
    rule,
  ];
  for (const [key, suites] of groups) {
    const [missing, obtain] = key.split("\n");
    lines.push(`!!  missing: ${missing}`, `!!  get it:  ${obtain}`);
    for (const suite of suites) lines.push(`!!      - ${suite}`);
    lines.push("!!");
  }
  lines.push(
    process.env.CI ? "!!  CI=true: a skipped suite fails the run." : "!!  Under CI=true each of these fails the run instead of skipping.",
    rule,
    "",
  );
  return lines.join("\n");
}
