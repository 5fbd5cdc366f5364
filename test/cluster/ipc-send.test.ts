import { fork } from "node:child_process";
import { once } from "node:events";
import { expect, it } from "vitest";
import { sendQuietly } from "../../src/cluster/ipc-invalidation.js";

/**
 * The primary of `serve --workers N` relays to workers that may die at any moment. A send on a
 * channel that just closed must neither throw nor emit an unhandled error (it crashed the
 * primary, and every worker with it).
 */
it("a send to a worker that just died neither throws nor emits an unhandled error", async () => {
  const child = fork("-e", ["process.on('message', () => {}); setInterval(() => {}, 1000);"], { stdio: "ignore", execArgv: [] });
  await once(child, "spawn");
  child.kill("SIGKILL");
  await once(child, "exit");
  const unhandled: unknown[] = [];
  const onError = (error: unknown) => unhandled.push(error);
  process.on("uncaughtException", onError);
  try {
    // The exit was seen, but a relay loop may still hold the worker: send as the primary would.
    expect(() => sendQuietly(child as never, { type: "keyward:invalidate", message: { kind: "all" } })).not.toThrow();
    expect(child.listenerCount("error")).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(unhandled).toEqual([]);
  } finally {
    process.off("uncaughtException", onError);
  }
});
