import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startInProcessService } from "../helpers/in-process-service.js";
import { lacking, rootPrerequisite } from "../helpers/prerequisites.js";

/** A small file system of the test's own (tmpfs, root only), so the disk can really fill up. */
function mountSmallDisk(): string | null {
  const dir = mkdtempSync(join(tmpdir(), "keyward-disk-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", dir], { stdio: "ignore" });
    return dir;
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    if (process.env.CI) throw new Error("the full-disk test mounts a tmpfs and must run as root under CI");
    lacking(rootPrerequisite(process.getuid?.() === 0 ? `mount failed: ${(error as Error).message.split("\n")[0]}` : "not root"));
    return null;
  }
}

const disk = mountSmallDisk();

/**
 * The store's disk fills up: writes (revocations included) answer 503 STORE_UNAVAILABLE with a
 * clear log line, never a generic 500 or a crash; /readyz fails until a write works again; keys
 * already verified keep working.
 */
describe.runIf(disk !== null)("a full disk under the SQLite store", () => {
  const dir = disk as string;
  let service: Awaited<ReturnType<typeof startInProcessService>>;
  beforeAll(async () => {
    service = await startInProcessService({ KEYWARD_DATABASE_URL: `sqlite:${join(dir, "k.db")}` });
  });
  afterAll(async () => {
    await service?.close();
    execFileSync("umount", ["-l", dir], { stdio: "ignore" });
    rmSync(dir, { recursive: true, force: true });
  });

  const call = (method: string, path: string, body?: unknown) =>
    fetch(`${service.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${service.adminKey}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const newKey = { owner: { type: "application", id: "disk" }, name: "d", environment: "sandbox", scopes: ["read"] };

  it("answers writes 503, fails /readyz, keeps verified keys working, and recovers when space is back", async () => {
    const created = (await (await call("POST", "/v1/keys", newKey)).json()) as { id: string; key: string };
    expect((await fetch(`${service.url}/v1/introspect`, { headers: { "x-api-key": created.key } })).status).toBe(200);
    const filler = join(dir, "filler");
    try {
      writeFileSync(filler, Buffer.alloc(8 * 1024 * 1024));
    } catch {
      // ENOSPC: the disk is full, as intended.
    }
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++)
      statuses.push((await call("POST", "/v1/keys", { ...newKey, metadata: { pad: "x".repeat(4_000) } })).status);
    expect(statuses).toContain(503);
    expect(statuses.filter((status) => status !== 201 && status !== 503)).toEqual([]);
    const refused = await call("POST", "/v1/keys", { ...newKey, metadata: { pad: "x".repeat(4_000) } });
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { code: string }).code).toBe("STORE_UNAVAILABLE");
    const ready = await fetch(`${service.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ checks: { store: "unwritable" } });
    expect((await fetch(`${service.url}/v1/introspect`, { headers: { "x-api-key": created.key } })).status).toBe(200);

    rmSync(filler, { force: true });
    expect((await fetch(`${service.url}/readyz`)).status).toBe(200);
    expect((await call("POST", "/v1/keys", newKey)).status).toBe(201);
  });
});
