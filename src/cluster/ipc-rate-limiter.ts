import cluster, { type Worker } from "node:cluster";
import type { GcraParams } from "../core/rate-limit.js";
import { MemoryRateLimiter } from "../limits/memory-rate-limiter.js";
import type { RateLimiter, RateOutcome } from "../ports/limits.js";
import { sendQuietly } from "./ipc-invalidation.js";

const CALL = "keyward:limit";
const REPLY = "keyward:limit-reply";

type Operation = "consumeRate" | "peekRate" | "acquireSlot" | "releaseSlot" | "countSlots";

interface CallEnvelope {
  type: typeof CALL;
  id: number;
  op: Operation;
  args: unknown[];
}

interface ReplyEnvelope {
  type: typeof REPLY;
  id: number;
  result: unknown;
}

const isCall = (value: unknown): value is CallEnvelope =>
  typeof value === "object" && value !== null && (value as { type?: unknown }).type === CALL;
const isReply = (value: unknown): value is ReplyEnvelope =>
  typeof value === "object" && value !== null && (value as { type?: unknown }).type === REPLY;

/**
 * Rate and concurrency counters for the workers of one `keyward serve --workers N` without
 * Redis: the primary holds the one MemoryRateLimiter and each worker asks it over IPC, so a
 * 5-per-second key gets 5 per second on the machine, not 5 per worker. Only keys with limits
 * pay the round trip. If the primary does not answer in time, the worker's own limiter decides
 * (never unlimited).
 */
export class IpcRateLimiter implements RateLimiter {
  private next = 1;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; timer: NodeJS.Timeout }>();
  private readonly local = new MemoryRateLimiter();
  private readonly listener = (value: unknown) => {
    if (!isReply(value)) return;
    const waiting = this.pending.get(value.id);
    if (!waiting) return;
    this.pending.delete(value.id);
    clearTimeout(waiting.timer);
    waiting.resolve(value.result);
  };

  constructor(private readonly timeoutMs = 1_000) {
    process.on("message", this.listener);
  }

  consumeRate(lineageId: string, params: GcraParams, cost: number, now: number): Promise<RateOutcome> {
    return this.call("consumeRate", [lineageId, params, cost, now], () => this.local.consumeRate(lineageId, params, cost, now));
  }

  peekRate(lineageId: string, now: number): Promise<number> {
    return this.call("peekRate", [lineageId, now], () => this.local.peekRate(lineageId, now));
  }

  acquireSlot(lineageId: string, max: number, leaseId: string, leaseMs: number, now: number): Promise<boolean> {
    return this.call("acquireSlot", [lineageId, max, leaseId, leaseMs, now], () =>
      this.local.acquireSlot(lineageId, max, leaseId, leaseMs, now),
    );
  }

  releaseSlot(lineageId: string, leaseId: string): Promise<boolean> {
    return this.call("releaseSlot", [lineageId, leaseId], () => this.local.releaseSlot(lineageId, leaseId));
  }

  countSlots(lineageId: string, now: number): Promise<number> {
    return this.call("countSlots", [lineageId, now], () => this.local.countSlots(lineageId, now));
  }

  async close(): Promise<void> {
    process.off("message", this.listener);
    await this.local.close();
  }

  private call<T>(op: Operation, args: unknown[], fallback: () => Promise<T>): Promise<T> {
    if (!process.send || !process.connected) return fallback();
    const id = this.next++;
    return new Promise<T>((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(fallback());
      }, this.timeoutMs);
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, timer });
      const envelope: CallEnvelope = { type: CALL, id, op, args };
      sendQuietly(process as never, envelope);
    });
  }
}

/** In the primary: answers the workers' limiter calls from one shared MemoryRateLimiter. */
export function serveWorkerLimits(): void {
  const limiter = new MemoryRateLimiter();
  const operations: Record<Operation, (...args: never[]) => Promise<unknown>> = {
    consumeRate: limiter.consumeRate.bind(limiter),
    peekRate: limiter.peekRate.bind(limiter),
    acquireSlot: limiter.acquireSlot.bind(limiter),
    releaseSlot: limiter.releaseSlot.bind(limiter),
    countSlots: limiter.countSlots.bind(limiter),
  };
  cluster.on("message", (worker: Worker, value: unknown) => {
    if (!isCall(value)) return;
    const operation = operations[value.op];
    if (!operation) return;
    void operation(...(value.args as never[])).then((result) => {
      const reply: ReplyEnvelope = { type: REPLY, id: value.id, result };
      if (worker.isConnected()) sendQuietly(worker as never, reply);
    });
  });
}

export const isClusterWorker = (): boolean => cluster.isWorker;
