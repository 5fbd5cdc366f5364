import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createServer } from "node:net";
import { Redis } from "ioredis";
import { lacking, redisServerPrerequisite } from "./prerequisites.js";

/**
 * Whether redis-server is on PATH for a private server. Under CI it must be; elsewhere the suites
 * that skip say why at the end of the run.
 */
export function privateRedisAvailable(): boolean {
  if (spawnSync("redis-server", ["--version"], { stdio: "ignore" }).error === undefined) return true;
  if (process.env.CI) throw new Error("redis-server is required under CI (.ci/run's machine has it)");
  lacking(redisServerPrerequisite);
  return false;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/**
 * A Redis server of the test's own on a free loopback port, so outage tests can stop and start
 * it without touching the machine's shared Redis.
 */
export class PrivateRedis {
  private child: ChildProcess | null = null;
  private constructor(readonly port: number) {}

  /** A free port for a Redis that is not running yet (a service started before its Redis). */
  static async reserve(): Promise<PrivateRedis> {
    return new PrivateRedis(await freePort());
  }

  static async start(): Promise<PrivateRedis> {
    const redis = new PrivateRedis(await freePort());
    await redis.start();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts the server; a no-op while it runs. */
  async start(): Promise<void> {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) return;
    const child = spawn("redis-server", ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: "ignore",
    });
    this.child = child;
    const probe = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on("error", () => {});
    for (let i = 0; i < 100; i++) {
      try {
        await probe.connect();
        await probe.ping();
        probe.disconnect();
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    throw new Error("private redis-server did not start");
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.kill("SIGKILL");
    });
    this.child = null;
  }

  /**
   * Freezes the server process (SIGSTOP): connections stay open and commands are accepted by the
   * kernel but not answered until `resume()`, as a hung Redis (a long fork, a swapped-out host)
   * would behave. `stop()` still works while frozen.
   */
  suspend(): void {
    if (!this.child?.pid || this.child.exitCode !== null) throw new Error("private redis-server is not running");
    this.child.kill("SIGSTOP");
  }

  /** Lets a suspended server run again (SIGCONT): it then answers everything sent meanwhile, in order. */
  resume(): void {
    if (!this.child?.pid || this.child.exitCode !== null) return;
    this.child.kill("SIGCONT");
  }

  /** Zeroes the server's per-command counters (`CONFIG RESETSTAT`). */
  async resetCommandStats(): Promise<void> {
    const client = new Redis(this.url);
    try {
      await client.config("RESETSTAT");
    } finally {
      client.disconnect();
    }
  }

  /**
   * How many times each command ran since the last reset, by lower-case name (`INFO
   * commandstats`), this call's own INFO included: what the server really executed.
   */
  async commandCalls(): Promise<Record<string, number>> {
    const client = new Redis(this.url);
    try {
      const calls: Record<string, number> = {};
      for (const match of (await client.info("commandstats")).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
        calls[match[1] as string] = Number(match[2]);
      return calls;
    } finally {
      client.disconnect();
    }
  }

  /** Makes the server unresponsive for `ms` (CLIENT PAUSE), as a slow Redis would be. */
  async pause(ms: number): Promise<void> {
    const client = new Redis(this.url);
    await client.call("CLIENT", "PAUSE", String(ms), "ALL");
    client.disconnect();
  }
}
