import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";
import { startServeProcess, waitForExit } from "../helpers/process.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "keyward-crash-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/**
 * SECURITY.md 19: `kill -9` during a stream of creates and revokes. Every change the server
 * acknowledged must be there after restart, and an acknowledged revoke never comes back.
 */
it("kill -9 during creates and revokes loses nothing acknowledged", async () => {
  const env = { KEYWARD_DATABASE_URL: `sqlite:${join(dir, "keyward.db")}`, KEYWARD_LOG_LEVEL: "warn" };
  const first = await startServeProcess(env);
  const admin = /(kw_live_[0-9A-Za-z]{38})/.exec(first.stdout())?.[1] as string;
  expect(admin).toBeDefined();
  const headers = { authorization: `Bearer ${admin}`, "content-type": "application/json" };

  const created: { id: string; key: string }[] = [];
  const revoked: string[] = [];
  let stop = false;
  const writer = async (worker: number) => {
    for (let i = 0; !stop; i++) {
      try {
        const response = await fetch(`${first.url}/v1/keys`, {
          method: "POST",
          headers,
          body: JSON.stringify({ owner: { type: "user", id: `u${worker}` }, name: `k${i}`, environment: "sandbox", scopes: ["read"] }),
        });
        if (response.status !== 201) continue;
        const body = (await response.json()) as { id: string; key: string };
        created.push(body);
        if (i % 2 === 0) {
          const revoke = await fetch(`${first.url}/v1/keys/${body.id}/revoke`, { method: "POST", headers, body: "{}" });
          if (revoke.status === 200) revoked.push(body.id);
        }
      } catch {
        return; // the server died mid-request: that change was never acknowledged
      }
    }
  };
  const writers = [0, 1, 2, 3].map(writer);
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  first.child.kill("SIGKILL");
  await waitForExit(first.child);
  stop = true;
  await Promise.all(writers);
  expect(created.length).toBeGreaterThan(10);

  const store = new SqliteKeyStore({ filename: join(dir, "keyward.db") });
  try {
    expect((store.db.pragma("integrity_check") as { integrity_check: string }[])[0]?.integrity_check).toBe("ok");
    for (const key of created) expect(await store.getKey(key.id), key.id).not.toBeNull();
    for (const id of revoked) expect((await store.getKey(id))?.revokedAt, id).not.toBeNull();
    // Every acknowledged change has its audit record.
    const creates = store.db.prepare("SELECT COUNT(*) AS n FROM audit_events WHERE action = 'key.created'").get() as { n: number };
    expect(creates.n).toBeGreaterThanOrEqual(created.length);
  } finally {
    await store.close();
  }

  // And the service comes back on the same file with revocations intact.
  const second = await startServeProcess(env);
  try {
    const revokedKey = created.find((k) => revoked.includes(k.id)) as { key: string };
    const response = await fetch(`${second.url}/v1/introspect`, { headers: { "x-api-key": revokedKey.key } });
    expect(((await response.json()) as { code: string }).code).toBe("REVOKED");
  } finally {
    second.child.kill("SIGTERM");
    await waitForExit(second.child);
  }
});
