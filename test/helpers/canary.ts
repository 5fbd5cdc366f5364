import { appendFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** The forms in which a leaked key could appear: raw, base64 (as in Basic auth), URL-encoded. */
export function leakForms(key: string): string[] {
  return [
    key,
    Buffer.from(key).toString("base64"),
    Buffer.from(`${key}:`).toString("base64"),
    Buffer.from(`:${key}`).toString("base64"),
    encodeURIComponent(key),
  ];
}

/** Which of `keys` appear, in any leak form, in `text`. */
export function findLeaks(text: string, keys: readonly string[]): string[] {
  return keys.filter((key) => leakForms(key).some((form) => text.includes(form)));
}

/** Reads a SQLite database with its WAL and shared-memory files, as raw bytes in latin1. */
export function readDatabaseBytes(dbPath: string): string {
  return ["", "-wal", "-shm"]
    .map((suffix) => dbPath + suffix)
    .filter((path) => existsSync(path))
    .map((path) => readFileSync(path).toString("latin1"))
    .join("\n");
}

/**
 * When KEYWARD_CANARY_DIR is set (npm test sets it), every test service appends what it saw to
 * a file there; scripts/canary-sweep.mjs then searches the whole suite's output for the keys
 * it planted.
 */
export function recordForSweep(record: Record<string, unknown>): void {
  const dir = process.env.KEYWARD_CANARY_DIR;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  appendFileSync(join(dir, `sweep-${process.pid}.jsonl`), `${JSON.stringify(record)}\n`);
}
