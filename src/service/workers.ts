import cluster from "node:cluster";
import { createServer } from "node:net";
import { relayWorkerInvalidations } from "../cluster/ipc-invalidation.js";
import { serveWorkerLimits } from "../cluster/ipc-rate-limiter.js";
import type { ServiceConfig } from "./config.js";
import { bootstrapAdminKey, openKeyward, printBootstrapKey } from "./open-keyward.js";
import { printSetupLink } from "./setup-link.js";

/**
 * `keyward serve --workers N`: the primary migrates the store and mints the first-start admin
 * key once, then forks N workers that share the port (node:cluster) and relays cache
 * invalidations between them. A worker that dies is replaced; SIGTERM stops them all gracefully.
 * With SQLite, the workers share one WAL database file: one writer at a time, readers never block.
 */
export async function runPrimary(config: ServiceConfig, workers: number, print: (line: string) => void): Promise<void> {
  const keyward = await openKeyward(config);
  const bootstrapKey = await bootstrapAdminKey(keyward);
  // Port 0 is resolved once, here: workers listening on 0 share whatever port the primary's
  // handle has, and one started after every worker died would get a new one.
  const port = config.port === 0 ? await freePort(config.host) : config.port;
  const url = `http://${config.host}:${port}`;
  if (bootstrapKey) printBootstrapKey(print, bootstrapKey, url);
  await printSetupLink(keyward, config, url, print);
  await keyward.close();
  relayWorkerInvalidations();
  if (!config.redisUrl) serveWorkerLimits();
  let stopping = false;
  const env = { KEYWARD_PORT: String(port), KEYWARD_HOST: config.host };
  // A dying worker's IPC pipe may fail a write after the primary checked it: such errors are
  // the worker's end, never the primary's (the primary must outlive every worker).
  cluster.on("fork", (worker) => {
    worker.on("error", () => {});
    worker.process.on("error", () => {});
  });
  for (let i = 0; i < workers; i++) cluster.fork(env);
  // A worker that asks to be replaced (its store connection is read-only: store-health.ts) is
  // stopped only once its successor listens, so the port never goes unserved.
  const retiring = new Set<number>();
  cluster.on("message", (worker, message: unknown) => {
    if ((message as { type?: unknown } | null)?.type !== REPLACE_ME || retiring.has(worker.id) || stopping) return;
    retiring.add(worker.id);
    print(`worker ${worker.id} asked to be replaced; starting its successor`);
    cluster.fork(env).once("listening", () => worker.process.kill("SIGTERM"));
  });
  cluster.on("exit", (worker, code, signal) => {
    if (stopping || retiring.delete(worker.id)) return;
    print(`worker ${worker.id} exited (${signal ?? code}); starting another`);
    cluster.fork(env);
  });
  const stop = () => {
    stopping = true;
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill("SIGTERM");
    cluster.on("exit", () => {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
    });
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

/** What a worker sends the primary to be replaced by a fresh one. */
export const REPLACE_ME = "keyward:replace-me";

/** A port free on `host` now: the kernel's pick for port 0, released at once. */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}
