import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { formatKeyRef, parseApiKey } from "../core/key-format.js";

export interface ScanFinding {
  file: string;
  line: number;
  /** The commit the key was found in, for history findings. */
  commit?: string;
  ref: string;
  /** Kept in memory only, to report to a Keyward service with --revoke; never printed. */
  key: string;
}

const SKIPPED_DIRECTORIES = new Set([".git", "node_modules", "dist", ".tmp"]);
const MAX_FILE_BYTES = 5 * 1024 * 1024;

/** Key-shaped strings of this deployment's prefix whose checksum verifies: look-alikes are dropped. */
function findKeys(text: string, prefix: string): { key: string; line: number }[] {
  const pattern = new RegExp(`(?<![0-9A-Za-z_])${prefix}_(?:live|test)_[0-9A-Za-z]{38}(?![0-9A-Za-z])`, "g");
  const found: { key: string; line: number }[] = [];
  for (const match of text.matchAll(pattern)) {
    if (!parseApiKey(match[0], prefix)) continue;
    found.push({ key: match[0], line: text.slice(0, match.index).split("\n").length });
  }
  return found;
}

function* walk(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) {
      if (!SKIPPED_DIRECTORIES.has(entry.name)) yield* walk(join(dir, entry.name));
    } else if (entry.isFile()) yield join(dir, entry.name);
  }
}

/** Scans the files under `root` as they are now. */
export function scanFiles(root: string, prefix: string): ScanFinding[] {
  const findings: ScanFinding[] = [];
  const files = statSync(root).isDirectory() ? [...walk(root)] : [root];
  for (const file of files) {
    if (statSync(file).size > MAX_FILE_BYTES) continue;
    const buffer = readFileSync(file);
    if (buffer.includes(0)) continue; // binary
    for (const hit of findKeys(buffer.toString("utf8"), prefix))
      findings.push({ file: relative(root, file) || file, line: hit.line, ref: formatKeyRef(hit.key), key: hit.key });
  }
  return findings;
}

const gitIn = (root: string) => (args: string[]) =>
  execFileSync("git", ["-C", root, ...args], { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });

/** `git grep` for key-shaped text; git exits 1 when nothing matches. */
function gitGrep(root: string, prefix: string, args: string[], options: string[] = []): string {
  try {
    return gitIn(root)(["grep", ...options, "-I", "-n", "-E", `${prefix}_(live|test)_[0-9A-Za-z]{38}`, ...args]);
  } catch (error) {
    if ((error as { status?: number }).status === 1) return "";
    throw error;
  }
}

/** Findings from `git grep` lines (`[<commit>:]<file>:<line>:<text>`), checksums verified, each key once per file. */
function parseGitGrep(output: string, prefix: string, withCommit: boolean, seen: Set<string>): ScanFinding[] {
  const findings: ScanFinding[] = [];
  const pattern = withCommit ? /^([0-9a-f]{40}):(.+?):(\d+):(.*)$/ : /^()(.+?):(\d+):(.*)$/;
  for (const line of output.split("\n")) {
    const match = pattern.exec(line);
    if (!match) continue;
    const [, commit, file, lineNumber, content] = match as unknown as [string, string, string, string, string];
    for (const hit of findKeys(content, prefix)) {
      const id = `${file}\0${hit.key}`;
      if (seen.has(id)) continue;
      seen.add(id);
      findings.push({ file, line: Number(lineNumber), ...(withCommit ? { commit } : {}), ref: formatKeyRef(hit.key), key: hit.key });
    }
  }
  return findings;
}

/**
 * Scans every commit of the git repository at `root` (all refs), so a key committed once and
 * deleted later is still found. `git grep` over batches of commits keeps it one process per batch.
 */
export function scanGitHistory(root: string, prefix: string): ScanFinding[] {
  if (!existsSync(join(root, ".git"))) return [];
  const commits = gitIn(root)(["rev-list", "--all"]).split("\n").filter(Boolean);
  const findings: ScanFinding[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < commits.length; i += 100)
    findings.push(...parseGitGrep(gitGrep(root, prefix, commits.slice(i, i + 100)), prefix, true, seen));
  return findings;
}

/** Scans what is staged for the next commit (the index), for a pre-commit hook. */
export function scanStaged(root: string, prefix: string): ScanFinding[] {
  return parseGitGrep(gitGrep(root, prefix, [], ["--cached"]), prefix, false, new Set());
}
