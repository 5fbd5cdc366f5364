import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { lacking, postgresServerPrerequisite } from "./prerequisites.js";
import { freePort } from "./private-redis.js";
import { childPids } from "./process.js";

const PG_ROOT = "/usr/lib/postgresql";

/** The newest installed server's bin folder, or null. */
function postgresBin(): string | null {
  if (!existsSync(PG_ROOT)) return null;
  const versions = readdirSync(PG_ROOT).sort((a, b) => Number(b) - Number(a));
  for (const version of versions) if (existsSync(join(PG_ROOT, version, "bin", "postgres"))) return join(PG_ROOT, version, "bin");
  return null;
}

/** Whether a private server can be started; when not, the suites that skip say why at the end of the run. */
export function privatePostgresAvailable(): boolean {
  if (postgresBin() !== null) return true;
  lacking(postgresServerPrerequisite);
  return false;
}

/**
 * A PostgreSQL server of the test's own (initdb in a temporary folder, a free loopback port),
 * so outage tests can stop and start it without touching the machine's shared server. The
 * server refuses to run as root, so it runs as the `postgres` user when we are root.
 */
export class PrivatePostgres {
  private child: ChildProcess | null = null;
  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly bin: string,
  ) {}

  static async start(): Promise<PrivatePostgres> {
    const bin = postgresBin();
    if (!bin) throw new Error("no PostgreSQL server binaries under /usr/lib/postgresql");
    const dir = mkdtempSync(join(tmpdir(), "keyward-pg-"));
    chmodSync(dir, 0o777);
    const server = new PrivatePostgres(dir, await freePort(), bin);
    server.runAs(join(bin, "initdb"), ["-D", join(dir, "data"), "-A", "trust", "-U", "postgres", "--no-sync"]);
    await server.start();
    return server;
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  /** Starts the server; a no-op while it runs. */
  async start(): Promise<void> {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) return;
    const args = [
      "-D",
      join(this.dir, "data"),
      "-p",
      String(this.port),
      "-k",
      this.dir,
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "fsync=off",
    ];
    const [command, argv] = this.asUser(join(this.bin, "postgres"), args);
    this.child = spawn(command, argv, { stdio: "ignore" });
    for (let i = 0; i < 200; i++) {
      const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 500 });
      try {
        await client.connect();
        await client.end();
        return;
      } catch {
        await client.end().catch(() => {});
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    throw new Error("private postgres did not start");
  }

  /** Stops at once (`pg_ctl stop -m immediate`: connections dropped, no checkpoint), as an outage looks to clients. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    // runuser does not forward signals to the server, so pg_ctl (as the same user) stops it.
    this.runAs(join(this.bin, "pg_ctl"), ["-D", join(this.dir, "data"), "stop", "-m", "immediate", "-w"]);
    await exited;
    this.child = null;
  }

  /**
   * Freezes the server and every backend (SIGSTOP): connections stay open but nothing answers,
   * as a network black hole or a stuck host looks to clients. `thaw()` resumes them.
   */
  freeze(): void {
    for (const pid of this.serverPids()) process.kill(pid, "SIGSTOP");
  }

  thaw(): void {
    for (const pid of this.serverPids()) process.kill(pid, "SIGCONT");
    // runuser stops itself when the server it runs stops (as su does): resume it too.
    if (this.child?.pid && this.child.exitCode === null) process.kill(this.child.pid, "SIGCONT");
  }

  /** The postmaster (from postmaster.pid) and its children. */
  private serverPids(): number[] {
    const postmaster = Number(readFileSync(join(this.dir, "data", "postmaster.pid"), "utf8").split("\n")[0]);
    return [postmaster, ...childPids(postmaster)];
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private asUser(command: string, args: string[]): [string, string[]] {
    return process.getuid?.() === 0 ? ["runuser", ["-u", "postgres", "--", command, ...args]] : [command, args];
  }

  private runAs(command: string, args: string[]): void {
    const [cmd, argv] = this.asUser(command, args);
    execFileSync(cmd, argv, { stdio: "ignore" });
  }
}
