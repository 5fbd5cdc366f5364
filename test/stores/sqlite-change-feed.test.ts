import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { RequestContext } from "../../src/core/model.js";
import { Keyward } from "../../src/engine/keyward.js";
import type { KeyStore } from "../../src/ports/key-store.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";

/**
 * The SQLite change feed (docs/architecture.md): two engines on one file (two processes, or the
 * CLI beside a server), no Redis, the default maximum age. Bounds asserted by polling.
 */
const ctx: RequestContext = { actor: { type: "cli", id: "feed" } };
let dir: string;
let storeA: SqliteKeyStore;
let storeB: SqliteKeyStore;
let a: Keyward;
let b: Keyward;
let lookupsB: number;

function counted(real: KeyStore): KeyStore {
  return new Proxy(real, {
    get(target, property, receiver) {
      if (property === "findKeyByDigest") {
        return (digest: string) => {
          lookupsB++;
          return target.findKeyByDigest(digest);
        };
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

async function until(engine: Keyward, keys: string[], done: (codes: string[]) => boolean, deadlineMs = 3_000): Promise<number> {
  const since = performance.now();
  for (;;) {
    const codes = await Promise.all(keys.map(async (key) => (await engine.verify(key)).code));
    const elapsed = performance.now() - since;
    if (done(codes)) return elapsed;
    if (elapsed > deadlineMs) throw new Error(`not within ${deadlineMs} ms: ${codes.join(", ")}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const create = (owner = "alice") =>
  a.createKey({ owner: { type: "user", id: owner }, name: "k", environment: "sandbox", scopes: ["read"] }, ctx);

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "keyward-feed-"));
  storeA = new SqliteKeyStore({ filename: join(dir, "k.db") });
  await storeA.migrate();
  storeB = new SqliteKeyStore({ filename: join(dir, "k.db") });
  a = new Keyward({ store: storeA, failedAttempts: false });
  b = new Keyward({ store: counted(storeB), failedAttempts: false });
  lookupsB = 0;
});
afterEach(async () => {
  await a.close();
  await b.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("sqlite change feed", () => {
  it("a revocation through another connection is seen within 1 s, without Redis, with the default maximum age", async () => {
    expect(b.cache.maxAgeMs).toBe(3_600_000);
    const { key, record } = await create();
    expect((await b.verify(key)).code).toBe("VALID");
    await a.revokeKey(record.id, null, ctx);
    expect(await until(b, [key], ([code]) => code === "REVOKED")).toBeLessThanOrEqual(1_000);
  });

  it("an owner disabled elsewhere: its cached keys are refused within 1 s; nothing else is re-read", async () => {
    const held = await Promise.all([create("bob"), create("bob")]);
    const other = await create("carol");
    for (const { key } of [...held, other]) expect((await b.verify(key)).code).toBe("VALID");
    const before = lookupsB;
    await a.setOwnerDisabled({ type: "user", id: "bob" }, true, ctx);
    const took = await until(
      b,
      held.map((created) => created.key),
      (codes) => codes.every((code) => code === "DISABLED"),
    );
    expect(took).toBeLessThanOrEqual(1_000);
    expect((await b.verify(other.key)).code).toBe("VALID");
    expect(lookupsB - before).toBe(2);
  });

  it("cached keys with no change are not re-read while the feed is polled", async () => {
    const created = await Promise.all(Array.from({ length: 20 }, () => create()));
    for (const { key } of created) expect((await b.verify(key)).code).toBe("VALID");
    const before = lookupsB;
    const started = performance.now();
    while (performance.now() - started < 1_500) {
      for (const { key } of created) expect((await b.verify(key)).code).toBe("VALID");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(lookupsB - before).toBe(0);
  });

  it("a cursor behind the pruned rows answers reset", async () => {
    const { record } = await create();
    const start = await storeB.pollKeyChanges(null);
    await a.revokeKey(record.id, null, ctx);
    expect((await storeB.pollKeyChanges(start.cursor)).keys.map((change) => change.id)).toEqual([record.id]);
    expect(storeA.pruneKeyChanges(-60_000)).toBe(1);
    expect((await storeB.pollKeyChanges(start.cursor)).reset).toBe(true);
    const fresh = await storeB.pollKeyChanges(null);
    expect((await storeB.pollKeyChanges(fresh.cursor)).reset).toBe(false);
  });
});
