import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";

/** What the checkpointer has done so far, for tests and metrics. */
export interface WalCheckpointStats {
  /** Checkpoints run. */
  runs: number;
  /** WAL frames copied into the database file, over all runs. */
  checkpointedFrames: number;
  /** Runs that failed (the file busy, locked, or gone); the next run tries again. */
  failures: number;
}

export interface WalCheckpointerOptions {
  /** How often to checkpoint. Default 500 ms: the WAL then stays far below SQLite's own 1,000-page trigger. */
  intervalMs?: number;
}

// The worker is a script evaluated from this string rather than a file beside this module, so it
// runs the same from the compiled package and from the TypeScript sources under the test runner.
// It requires better-sqlite3 by the absolute path the main thread resolved.
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.filename);
db.pragma("synchronous = FULL");
const timer = setInterval(() => {
  try {
    const [result] = db.pragma("wal_checkpoint(PASSIVE)");
    parentPort.postMessage({ ok: true, checkpointed: result ? result.checkpointed : 0 });
  } catch (error) {
    parentPort.postMessage({ ok: false });
  }
}, workerData.intervalMs);
parentPort.on("message", (message) => {
  if (message !== "close") return;
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

/**
 * Checkpoints a SQLite file's WAL from a worker thread, on a timer. SQLite checkpoints on the
 * writer's own thread when the WAL passes 1,000 pages: with usage journaled several times a
 * second, that was a 20–25 ms pause of the event loop every few seconds, under every request in
 * flight (docs/benchmarks.md, Profiling 14). A PASSIVE checkpoint never waits for a lock and
 * never blocks readers or writers; copying frames from another thread, often, keeps the WAL
 * short, so the writers' own checkpoint rarely comes due. Durability does not change: a commit is
 * durable in the WAL before any checkpoint copies it.
 */
export class WalCheckpointer {
  readonly stats: WalCheckpointStats = { runs: 0, checkpointedFrames: 0, failures: 0 };
  private readonly worker: Worker;
  private closed: Promise<void> | null = null;
  private exited = false;

  constructor(filename: string, options: WalCheckpointerOptions = {}) {
    const driver = createRequire(import.meta.url).resolve("better-sqlite3");
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { filename, driver, intervalMs: options.intervalMs ?? 500 },
    });
    this.worker.on("message", (message: { ok: boolean; checkpointed?: number }) => {
      this.stats.runs++;
      if (message.ok) this.stats.checkpointedFrames += Math.max(0, message.checkpointed ?? 0);
      else this.stats.failures++;
    });
    // A checkpointer that cannot run (the thread failed to start) costs only the writers' own checkpoints.
    this.worker.on("error", () => {
      this.stats.failures++;
    });
    this.worker.once("exit", () => {
      this.exited = true;
    });
    // It must never keep a process alive on its own.
    this.worker.unref();
  }

  /** Stops the timer and closes the worker's connection; resolves when the thread has ended. */
  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      if (this.exited) {
        resolve();
        return;
      }
      this.worker.once("exit", () => resolve());
      // Referenced while it closes: unreferenced, a script whose last step is `await close()` had
      // nothing else keeping its event loop alive, and Node exited (code 13, an unsettled
      // top-level await) before the worker's exit could settle the promise.
      this.worker.ref();
      this.worker.postMessage("close");
      // A worker stuck in a checkpoint is ended after a while rather than waited for forever.
      setTimeout(() => void this.worker.terminate(), 2_000).unref();
    });
    return this.closed;
  }
}
