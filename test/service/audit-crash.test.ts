import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { verifyAuditChain } from "../../src/core/audit-chain.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";
import { startServeProcess, waitForExit } from "../helpers/process.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "keyward-audit-crash-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/**
 * `kill -9` during a stream of creates, renames, rotations and revocations: afterwards every
 * change in the database has its audit event and every event its change (they share one
 * transaction), every acknowledged change is there, and the chain verifies.
 */
it("after kill -9 there is no change without its audit event, and none without its change", async () => {
  const dbPath = join(dir, "keyward.db");
  const server = await startServeProcess({ KEYWARD_DATABASE_URL: `sqlite:${dbPath}`, KEYWARD_LOG_LEVEL: "warn" });
  const admin = /(kw_live_[0-9A-Za-z]{38})/.exec(server.stdout())?.[1] as string;
  const headers = { authorization: `Bearer ${admin}`, "content-type": "application/json" };
  const post = (path: string, body: unknown, method = "POST") =>
    fetch(`${server.url}${path}`, { method, headers, body: JSON.stringify(body) });

  const acknowledged = { created: [] as string[], renamed: [] as string[], rotated: [] as string[], revoked: [] as string[] };
  let stop = false;
  const writer = async (worker: number) => {
    for (let i = 0; !stop; i++) {
      try {
        const created = await post("/v1/keys", {
          owner: { type: "user", id: `w${worker}` },
          name: `k${i}`,
          environment: "sandbox",
          scopes: ["read"],
        });
        if (created.status !== 201) continue;
        const { id } = (await created.json()) as { id: string };
        acknowledged.created.push(id);
        if ((await post(`/v1/keys/${id}`, { name: `renamed-${i}` }, "PATCH")).status === 200) acknowledged.renamed.push(id);
        if (i % 3 === 0 && (await post(`/v1/keys/${id}/rotate`, { grace_seconds: 0 })).status === 201) acknowledged.rotated.push(id);
        else if (i % 3 === 1 && (await post(`/v1/keys/${id}/revoke`, { reason: "crash test" })).status === 200)
          acknowledged.revoked.push(id);
      } catch {
        return; // the server died mid-request: that change was never acknowledged
      }
    }
  };
  const writers = [0, 1, 2, 3].map(writer);
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  server.child.kill("SIGKILL");
  await waitForExit(server.child);
  stop = true;
  await Promise.all(writers);
  expect(acknowledged.created.length).toBeGreaterThan(5);

  const store = new SqliteKeyStore({ filename: dbPath });
  try {
    const db = store.db;
    const count = (sql: string) => (db.prepare(sql).get() as { n: number }).n;
    const eventCount = (action: string) => count(`SELECT COUNT(*) AS n FROM audit_events WHERE action = '${action}'`);
    // Each key row came from a create or a rotation, each with its own event.
    expect(count("SELECT COUNT(*) AS n FROM keys")).toBe(eventCount("key.created") + eventCount("key.rotated"));
    expect(count("SELECT COUNT(*) AS n FROM keys WHERE replaced_by IS NOT NULL")).toBe(eventCount("key.rotated"));
    expect(count("SELECT COUNT(*) AS n FROM keys WHERE revoked_at IS NOT NULL")).toBe(eventCount("key.revoked"));
    expect(count("SELECT COUNT(*) AS n FROM keys WHERE name LIKE 'renamed-%' AND rotated_from IS NULL")).toBe(eventCount("key.updated"));
    // Every acknowledged change is there, with its event.
    const hasEvent = db.prepare<[string, string], { n: number }>(
      "SELECT COUNT(*) AS n FROM audit_events WHERE target_id = ? AND action = ?",
    );
    for (const id of acknowledged.created) expect(hasEvent.get(id, "key.created")?.n, id).toBe(1);
    for (const id of acknowledged.renamed) expect(hasEvent.get(id, "key.updated")?.n, id).toBe(1);
    for (const id of acknowledged.rotated) expect(hasEvent.get(id, "key.rotated")?.n, id).toBe(1);
    for (const id of acknowledged.revoked) expect(hasEvent.get(id, "key.revoked")?.n, id).toBe(1);
    expect(await verifyAuditChain((after, limit) => store.readAuditChain(after, limit))).toMatchObject({ ok: true });
  } finally {
    await store.close();
  }
});
