import cluster from "node:cluster";
import type { InvalidationMessage, Keyward } from "../engine/keyward.js";

const TAG = "keyward:invalidate";

interface IpcEnvelope {
  type: typeof TAG;
  message: InvalidationMessage;
}

/**
 * Sends to the other end of an IPC channel without ever throwing or emitting: a worker may die
 * between the connectivity check and the write (EPIPE), and an unhandled send error would crash
 * the primary and, with it, every worker (docs/deploy.md). A lost message is bounded by the
 * cache's maximum age, like any lost invalidation.
 */
export function sendQuietly(
  target: { send?: (message: unknown, callback?: (error: Error | null) => void) => boolean },
  message: unknown,
): void {
  try {
    target.send?.(message, () => {});
  } catch {
    // The channel closed under us: nothing to deliver to.
  }
}

const isEnvelope = (value: unknown): value is IpcEnvelope =>
  typeof value === "object" && value !== null && (value as { type?: unknown }).type === TAG;

/**
 * Between the workers of one `keyward serve --workers N`: each worker sends its changes to the
 * primary, which relays them to every other worker. Sub-millisecond on one machine, no Redis
 * needed; with Redis configured the pub/sub channel covers other machines as well.
 */
export function connectWorkerInvalidation(keyward: Keyward): void {
  if (!cluster.isWorker || !process.send) return;
  keyward.onInvalidate((message) => {
    const envelope: IpcEnvelope = { type: TAG, message: message.kind === "key" ? { kind: "key", keyId: message.keyId } : message };
    sendQuietly(process as never, envelope);
  });
  process.on("message", (value: unknown) => {
    if (isEnvelope(value)) keyward.applyInvalidation(value.message);
  });
}

/** In the primary: relay each worker's invalidations to all the others. */
export function relayWorkerInvalidations(): void {
  cluster.on("message", (from, value: unknown) => {
    if (!isEnvelope(value)) return;
    for (const worker of Object.values(cluster.workers ?? {})) {
      if (worker && worker.id !== from.id && worker.isConnected()) sendQuietly(worker as never, value);
    }
  });
}
