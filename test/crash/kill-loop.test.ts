import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { verifyAuditChain } from "../../src/core/audit-chain.js";
import type { KeyStore } from "../../src/ports/key-store.js";
import { PostgresKeyStore } from "../../src/stores/postgres/postgres-key-store.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";
import { backendsAvailable, createTestSchema, DATABASE_URL } from "../helpers/backends.js";
import { type ServeProcess, startServeProcess, waitForExit } from "../helpers/process.js";

const haveBackends = await backendsAvailable();
const ROUNDS = 20;
const QUOTA = 60;

interface Acknowledged {
  created: Map<string, string>;
  revoked: Set<string>;
  rotated: Set<string>;
  spends: number;
}

/**
 * SECURITY.md 19 and issue #9: `kill -9` over and over during mixed creates, revokes, rotations
 * and quota spends. Afterwards every acknowledged change is there, no revoked key is valid
 * again, the quota was never over-spent (nor under-counted), and the audit chain verifies.
 */
async function killLoop(env: Record<string, string>, openStore: () => Promise<KeyStore>, quotaUsed: (store: KeyStore) => Promise<number>) {
  const ack: Acknowledged = { created: new Map(), revoked: new Set(), rotated: new Set(), spends: 0 };
  let server: ServeProcess = await startServeProcess(env);
  const admin = /(kw_live_[0-9A-Za-z]{38})/.exec(server.stdout())?.[1] as string;
  expect(admin).toBeDefined();
  const headers = { authorization: `Bearer ${admin}`, "content-type": "application/json" };
  const quotaKey = (await (
    await fetch(`${server.url}/v1/keys`, {
      method: "POST",
      headers,
      body: JSON.stringify({
        owner: { type: "application", id: "spender" },
        name: "q",
        environment: "sandbox",
        scopes: ["read"],
        quota: { remaining: QUOTA },
      }),
    })
  ).json()) as { key: string };

  for (let round = 0; round < ROUNDS; round++) {
    if (round > 0) server = await startServeProcess(env);
    const url = server.url;
    let stop = false;
    const worker = async (n: number) => {
      for (let i = 0; !stop; i++) {
        try {
          if (n === 0) {
            // Spend quota; count only what the server acknowledged.
            const spent = await fetch(`${url}/v1/authz`, { headers: { "x-api-key": quotaKey.key } });
            if (spent.status === 200) ack.spends++;
            continue;
          }
          const created = await fetch(`${url}/v1/keys`, {
            method: "POST",
            headers,
            body: JSON.stringify({
              owner: { type: "user", id: `r${round}w${n}` },
              name: `k${i}`,
              environment: "sandbox",
              scopes: ["read"],
            }),
          });
          if (created.status !== 201) continue;
          const body = (await created.json()) as { id: string; key: string };
          ack.created.set(body.id, body.key);
          const action = i % 3;
          if (action === 0) {
            const r = await fetch(`${url}/v1/keys/${body.id}/revoke`, { method: "POST", headers, body: "{}" });
            if (r.status === 200) ack.revoked.add(body.id);
          } else if (action === 1) {
            const r = await fetch(`${url}/v1/keys/${body.id}/rotate`, {
              method: "POST",
              headers,
              body: JSON.stringify({ grace_seconds: 0 }),
            });
            if (r.status === 201) {
              ack.rotated.add(body.id);
              const successor = (await r.json()) as { id: string; key: string };
              ack.created.set(successor.id, successor.key);
            }
          }
        } catch {
          return; // killed mid-request: not acknowledged
        }
      }
    };
    const workers = [0, 1, 2].map(worker);
    await new Promise((resolve) => setTimeout(resolve, 250 + (round % 4) * 100));
    server.child.kill("SIGKILL");
    await waitForExit(server.child);
    stop = true;
    await Promise.all(workers);
  }

  expect(ack.created.size).toBeGreaterThan(ROUNDS);
  expect(ack.revoked.size + ack.rotated.size).toBeGreaterThan(ROUNDS / 2);
  const store = await openStore();
  try {
    for (const id of ack.created.keys()) expect(await store.getKey(id), id).not.toBeNull();
    for (const id of ack.revoked) expect((await store.getKey(id))?.revokedAt, id).not.toBeNull();
    for (const id of ack.rotated) expect((await store.getKey(id))?.replacedBy, id).not.toBeNull();
    const used = await quotaUsed(store);
    // A spend can commit just before the kill, unacknowledged: never fewer than acknowledged, never more than the quota.
    expect(used).toBeGreaterThanOrEqual(ack.spends);
    expect(used).toBeLessThanOrEqual(QUOTA);
    expect(await verifyAuditChain((after, limit) => store.readAuditChain(after, limit))).toMatchObject({ ok: true });
  } finally {
    await store.close();
  }

  // Restarted, no acknowledged revocation or no-grace rotation has come back.
  const last = await startServeProcess(env);
  try {
    for (const id of [...ack.revoked, ...ack.rotated]) {
      const response = await fetch(`${last.url}/v1/introspect`, { headers: { "x-api-key": ack.created.get(id) as string } });
      expect(response.status, id).toBe(401);
      expect(((await response.json()) as { code: string }).code).toBe("REVOKED");
    }
  } finally {
    last.child.kill("SIGTERM");
    await waitForExit(last.child);
  }
  return ack;
}

describe("kill -9 loop", () => {
  it(`SQLite: ${ROUNDS} rounds`, async () => {
    const dir = mkdtempSync(join(tmpdir(), "keyward-kill-loop-"));
    const filename = join(dir, "keyward.db");
    try {
      await killLoop(
        { KEYWARD_DATABASE_URL: `sqlite:${filename}`, KEYWARD_LOG_LEVEL: "warn" },
        async () => {
          const store = new SqliteKeyStore({ filename });
          expect((store.db.pragma("integrity_check") as { integrity_check: string }[])[0]?.integrity_check).toBe("ok");
          return store;
        },
        async (store) =>
          ((store as SqliteKeyStore).db.prepare("SELECT COALESCE(SUM(used), 0) AS used FROM quota_counters").get() as { used: number })
            .used,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);

  it.runIf(haveBackends)(
    `PostgreSQL: ${ROUNDS} rounds`,
    async () => {
      const { schema, drop } = await createTestSchema();
      try {
        await killLoop(
          { KEYWARD_DATABASE_URL: DATABASE_URL, KEYWARD_DATABASE_SCHEMA: schema, KEYWARD_LOG_LEVEL: "warn" },
          async () => new PostgresKeyStore({ connectionString: DATABASE_URL, schema }),
          async (store) =>
            Number(
              (await (store as PostgresKeyStore).pool.query<{ used: string }>("SELECT COALESCE(SUM(used), 0) AS used FROM quota_counters"))
                .rows[0]?.used,
            ),
        );
      } finally {
        await drop();
      }
    },
    180_000,
  );
});
