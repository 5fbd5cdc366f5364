import cluster from "node:cluster";
import type { InvalidationMessage, Keyward } from "../engine/keyward.js";

const TAG = "keyward:invalidate";

interface IpcEnvelope {
  type: typeof TAG;
  message: InvalidationMessage;
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
    process.send?.(envelope);
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
      if (worker && worker.id !== from.id && worker.isConnected()) worker.send(value);
    }
  });
}
