import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

export const REPO_ROOT = join(import.meta.dirname, "..", "..");
export const CLI = join(REPO_ROOT, "bin", "keyward.js");

export function assertBuilt(): void {
  if (!existsSync(join(REPO_ROOT, "dist", "cli", "main.js")))
    throw new Error("dist/ is missing: run `npm run build` (npm test does) before the process tests");
}

export interface ServeProcess {
  child: ChildProcess;
  url: string;
  /** Everything the process printed to stdout. */
  stdout: () => string;
}

/** Starts `keyward serve` on a free loopback port and waits for its listening line. */
export async function startServeProcess(env: Record<string, string>, extraArgs: string[] = []): Promise<ServeProcess> {
  assertBuilt();
  const child = spawn(process.execPath, [CLI, "serve", "--port", "0", "--host", "127.0.0.1", ...extraArgs], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    err += chunk.toString();
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${err}`)), 15_000);
    const check = () => {
      const match = /Keyward listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        child.stdout?.off("data", check);
        resolve(match[1] as string);
      }
    };
    child.stdout?.on("data", check);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code}: ${err}`));
    });
  });
  return { child, url, stdout: () => out };
}

export function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** Runs the CLI to completion, with `input` on its standard input when given. */
export function runCliProcess(
  args: string[],
  env: Record<string, string>,
  input?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  assertBuilt();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    if (input !== undefined) child.stdin?.end(input);
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr?.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    child.once("error", reject);
    child.once("exit", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** The direct children of a process (`ps --ppid`): a `serve --workers` primary's workers, a postmaster's backends. */
export function childPids(parent: number): number[] {
  return execFileSync("ps", ["-o", "pid=", "--ppid", String(parent)], { encoding: "utf8" })
    .split("\n")
    .map((line) => Number(line.trim()))
    .filter((pid) => pid > 0);
}

/**
 * `serve --workers N` on `env`, once every worker listens; with the bootstrap admin key it printed.
 * Waits on the process's own output and exit rather than polling a clock, so a loaded machine
 * only makes it slower; `timeoutMs` is a backstop for a worker that never comes up.
 */
export async function startWorkers(
  env: Record<string, string>,
  workers: number,
  timeoutMs = 25_000,
): Promise<ServeProcess & { adminKey: string | undefined }> {
  const server = await startServeProcess(env, ["--workers", String(workers)]);
  const listening = () => (server.stdout().match(/Keyward listening on/g) ?? []).length;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`${listening()} of ${workers} workers listening after ${timeoutMs} ms`)), timeoutMs);
      const check = () => {
        if (listening() >= workers) done();
      };
      const exited = (code: number | null) => done(new Error(`serve --workers exited with ${code} before every worker listened`));
      const done = (error?: Error) => {
        clearTimeout(timer);
        server.child.stdout?.off("data", check);
        server.child.off("exit", exited);
        if (error) reject(error);
        else resolve();
      };
      server.child.stdout?.on("data", check);
      server.child.once("exit", exited);
      check();
    });
  } catch (error) {
    server.child.kill("SIGTERM");
    await waitForExit(server.child);
    throw error;
  }
  return { ...server, adminKey: (server.stdout().match(/kw_live_[0-9A-Za-z]{38}/g) ?? [])[0] };
}
