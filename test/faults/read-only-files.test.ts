import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { lacking, rootPrerequisite } from "../helpers/prerequisites.js";
import { type ServeProcess, startServeProcess, startWorkers, waitForExit } from "../helpers/process.js";

/**
 * SQLite files that stop accepting writes under a running service (docs/deploy.md, "Store
 * faults"): an immutable file (`chattr +i`, which binds root too) and a file system gone
 * read-only (ext4's `abort`, what an I/O error does with errors=remount-ro). Each on an ext4
 * image of the test's own, loop-mounted (root only). A worker whose shared-memory page faults on
 * an immutable file is killed by the kernel (SIGBUS, which no process can catch); the primary
 * holds no connection, outlives it and replaces it, and the replacement serves reads from a
 * read-only connection. Writes answer 503 STORE_UNAVAILABLE, /readyz fails, nothing answers 500.
 */

interface Disk {
  dir: string;
  data: string;
  remove: () => void;
}

function mountExt4(): Disk | null {
  const base = mkdtempSync(join(tmpdir(), "keyward-ro-"));
  const image = join(base, "disk.img");
  const dir = join(base, "mnt");
  mkdirSync(dir);
  try {
    execFileSync("truncate", ["-s", "64M", image]);
    execFileSync("mkfs.ext4", ["-q", "-F", image], { stdio: "ignore" });
    execFileSync("mount", ["-o", "loop", image, dir], { stdio: "ignore" });
  } catch (error) {
    rmSync(base, { recursive: true, force: true });
    if (process.env.CI) throw new Error("the read-only-files test loop-mounts an ext4 image and must run as root under CI");
    const why = process.getuid?.() === 0 ? `mount failed: ${(error as Error).message.split("\n")[0]}` : "not root";
    lacking(rootPrerequisite(why, "loop-mount an ext4 image (mkfs.ext4, chattr)"));
    return null;
  }
  const data = join(dir, "data");
  return {
    dir,
    data,
    remove: () => {
      try {
        execFileSync("chattr", ["-R", "-i", dir], { stdio: "ignore" });
      } catch {
        // Not immutable (or already unmounted).
      }
      execFileSync("umount", ["-l", dir], { stdio: "ignore" });
      rmSync(base, { recursive: true, force: true });
    },
  };
}

const canMount = (() => {
  const disk = mountExt4();
  disk?.remove();
  return disk !== null;
})();

const newKey = { owner: { type: "application", id: "ro" }, name: "r", environment: "sandbox", scopes: ["read"] };

/** One request; a connection reset while a worker is being replaced is reported as status 0. */
async function request(url: string, init: RequestInit = {}): Promise<{ status: number; code?: string }> {
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
    const text = await response.text();
    const code = response.headers.get("content-type")?.includes("json") ? (JSON.parse(text) as { code?: string }).code : undefined;
    return code === undefined ? { status: response.status } : { status: response.status, code };
  } catch {
    return { status: 0 };
  }
}

function client(server: ServeProcess, adminKey: string) {
  return {
    create: () =>
      request(`${server.url}/v1/keys`, {
        method: "POST",
        headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
        body: JSON.stringify(newKey),
      }),
    verify: (key: string) => request(`${server.url}/v1/introspect`, { headers: { "x-api-key": key } }),
    ready: () => request(`${server.url}/readyz`),
  };
}

const alive = (server: ServeProcess) => server.child.exitCode === null && server.child.signalCode === null;

describe.runIf(canMount)("SQLite files that stop accepting writes", () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  async function serveOn(workers: number): Promise<{ disk: Disk; server: ServeProcess; api: ReturnType<typeof client>; key: string }> {
    const disk = mountExt4() as Disk;
    cleanups.push(disk.remove);
    const env = { KEYWARD_DATABASE_URL: `sqlite:${join(disk.data, "k.db")}`, KEYWARD_LOG_LEVEL: "warn" };
    const server = workers > 1 ? await startWorkers(env, workers) : await startServeProcess(env);
    cleanups.push(async () => {
      server.child.kill("SIGKILL");
      await waitForExit(server.child);
    });
    const adminKey = (server.stdout().match(/kw_live_[0-9A-Za-z]{38}/g) ?? [])[0] as string;
    const created = await fetch(`${server.url}/v1/keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
      body: JSON.stringify(newKey),
    });
    const { key } = (await created.json()) as { key: string };
    return { disk, server, api: client(server, adminKey), key };
  }

  it("immutable files under --workers 2: the primary survives, workers are replaced, writes 503, reads served, then writes recover", async () => {
    const { disk, server, api, key } = await serveOn(2);
    expect((await api.verify(key)).status).toBe(200);

    // Writes in flight, then every file immutable and its dirty pages written back: the next
    // write to the mapped WAL index faults.
    const inFlight = Array.from({ length: 20 }, () => api.create());
    execFileSync("chattr", ["+i", ...readdirSync(disk.data).map((name) => join(disk.data, name))]);
    execFileSync("sync");
    const seen: number[] = (await Promise.all(inFlight)).map((answer) => answer.status);

    // Until every answer is the degraded service's: reads 200, writes 503, /readyz 503.
    await expect
      .poll(
        async () => {
          const round = await Promise.all([api.verify(key), api.create(), api.ready(), api.verify(key), api.create(), api.ready()]);
          seen.push(...round.map((answer) => answer.status));
          return round.map((answer) => `${answer.status}${answer.code ? ` ${answer.code}` : ""}`);
        },
        { timeout: 30_000, interval: 200 },
      )
      .toEqual(["200", "503 STORE_UNAVAILABLE", "503", "200", "503 STORE_UNAVAILABLE", "503"]);
    expect(alive(server)).toBe(true);
    expect(seen.filter((status) => status >= 500 && status !== 503)).toEqual([]);
    expect(server.stdout()).not.toMatch(/worker \d+ exited \((?!SIGBUS|0)/);

    // Writable again: a worker holding a read-only connection is replaced on its first refused
    // write, and writes succeed on every worker.
    execFileSync("chattr", ["-i", ...readdirSync(disk.data).map((name) => join(disk.data, name))]);
    await expect
      .poll(
        async () => {
          const round = await Promise.all([api.create(), api.create(), api.ready(), api.ready(), api.verify(key)]);
          return round.map((answer) => answer.status);
        },
        { timeout: 30_000, interval: 200 },
      )
      .toEqual([201, 201, 200, 200, 200]);
    expect(alive(server)).toBe(true);
  }, 90_000);

  it("a file system gone read-only under one process: no crash, writes 503, /readyz fails at once, reads served", async () => {
    const { disk, server, api, key } = await serveOn(1);
    const inFlight = Array.from({ length: 20 }, () => api.create());
    execFileSync("mount", ["-o", "remount,abort", disk.dir]);
    const seen = (await Promise.all(inFlight)).map((answer) => answer.status);
    // Before any write has failed here: the file system's refusal is seen without writing.
    expect(await api.ready()).toEqual({ status: 503 });
    for (let i = 0; i < 20; i++) {
      const round = await Promise.all([api.create(), api.verify(key)]);
      expect(round.map((answer) => `${answer.status}${answer.code ? ` ${answer.code}` : ""}`)).toEqual(["503 STORE_UNAVAILABLE", "200"]);
      seen.push(...round.map((answer) => answer.status));
      if (i === 10) execFileSync("sync");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(seen.filter((status) => status >= 500 && status !== 503)).toEqual([]);
    expect(alive(server)).toBe(true);
  }, 60_000);
});
