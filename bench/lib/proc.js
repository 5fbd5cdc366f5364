import { spawn } from "node:child_process";
import { once } from "node:events";

/** Whether `taskset` can pin processes to cores here (Linux with util-linux). */
let tasksetChecked;
export async function hasTaskset() {
  if (tasksetChecked !== undefined) return tasksetChecked;
  try {
    const child = spawn("taskset", ["-c", "0", "true"], { stdio: "ignore" });
    const [code] = await once(child, "exit");
    tasksetChecked = code === 0;
  } catch {
    tasksetChecked = false;
  }
  return tasksetChecked;
}

/** The command line, pinned to `cores` (e.g. "0") with taskset when it is available. */
export async function pinned(cores, command, args) {
  if (cores && (await hasTaskset())) return ["taskset", ["-c", cores, command, ...args]];
  return [command, args];
}

/**
 * Starts a server process and waits for a line that names its port: `READY <port>` (bench
 * servers) or `listening on http://host:port` (keyward serve). Rejects if it exits or takes
 * longer than `timeoutMs`.
 */
export async function startServer({ command, args, env, cores, timeoutMs = 60_000, cwd }) {
  const [cmd, argv] = await pinned(cores, command, args);
  const child = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"], cwd });
  let output = "";
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in ${timeoutMs} ms: ${output.slice(-2000)}`)), timeoutMs);
    const onData = (chunk) => {
      output += chunk.toString();
      const match = /READY (\d+)/.exec(output) ?? /listening on http:\/\/[^:]+:(\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${signal ?? code}) before it was ready: ${output.slice(-2000)}`));
    });
  });
  // Keep draining so a chatty server never blocks on a full pipe.
  child.stdout.resume();
  child.stderr.resume();
  return {
    port,
    pid: child.pid,
    child,
    /** Freezes the process (SIGSTOP): a paused server's timers cannot take CPU from the one measured. */
    pause() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGSTOP");
    },
    resume() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGCONT");
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGCONT");
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Runs a process to completion and returns its stdout; rejects on a non-zero exit. */
export async function runProcess({ command, args, env, cores, timeoutMs = 600_000, cwd }) {
  const [cmd, argv] = await pinned(cores, command, args);
  const child = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"], cwd });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => {
    stdout += chunk.toString();
  });
  child.stderr.on("data", (chunk) => {
    stderr += chunk.toString();
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const [code, signal] = await once(child, "exit");
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${command} ${args.join(" ")} failed (${signal ?? code}): ${stderr.slice(-3000)}`);
  return stdout;
}

/** The RSS of a process in bytes, from /proc (Linux); NaN elsewhere. */
export async function processRss(pid) {
  try {
    const { readFile } = await import("node:fs/promises");
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const match = /VmRSS:\s+(\d+) kB/.exec(status);
    return match ? Number(match[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}
