import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RequestContext } from "../../src/core/model.js";
import { Keyward } from "../../src/engine/keyward.js";
import type { KeyLookup, KeyStore } from "../../src/ports/key-store.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";

const ctx: RequestContext = { actor: { type: "cli", id: "race" } };

/**
 * The real SQLite store, whose digest lookups read the row at once and then wait for `open()`
 * before answering: a read that saw the row before a revocation committed, and returns after it
 * (a database under load). `read` settles once the row has been read.
 */
class HeldReads {
  private gate: Promise<void> = Promise.resolve();
  private release: () => void = () => {};
  read: Promise<void> = Promise.resolve();
  private markRead: () => void = () => {};

  close(): void {
    this.gate = new Promise((resolve) => {
      this.release = resolve;
    });
    this.read = new Promise((resolve) => {
      this.markRead = resolve;
    });
  }

  open(): void {
    this.release();
  }

  wrap(real: KeyStore): KeyStore {
    return new Proxy(real, {
      get: (target, property, receiver) => {
        if (property === "findKeyByDigest") {
          return async (digest: string): Promise<KeyLookup | null> => {
            const row = await target.findKeyByDigest(digest);
            this.markRead();
            await this.gate;
            return row;
          };
        }
        const value = Reflect.get(target, property, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  }
}

describe("a lookup in flight while a revocation commits never brings the key back (1,000 trials)", () => {
  let dir: string;
  let stores: SqliteKeyStore[];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "keyward-race-"));
    stores = [];
  });
  afterAll(async () => {
    for (const store of stores) await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function open(held?: HeldReads): Promise<Keyward> {
    const store = new SqliteKeyStore({ filename: join(dir, "race.db") });
    await store.migrate();
    stores.push(store);
    // No failed-attempt throttle: every trial's first lookup is of a key this instance never saw.
    return new Keyward({ store: held ? held.wrap(store) : store, failedAttempts: false });
  }

  /**
   * One trial: a lookup holds the row it read while the key is revoked; a request after the
   * acknowledgement and one after the lookup returned must both be refused. Returns the stale admissions.
   */
  async function trial(held: HeldReads, revoking: Keyward, serving: Keyward, name: string): Promise<number> {
    const { key, record } = await revoking.createKey(
      { owner: { type: "application", id: "race" }, name, environment: "sandbox", scopes: ["read"] },
      ctx,
    );
    held.close();
    const before = serving.verify(key);
    await held.read;
    await revoking.revokeKey(record.id, "race", ctx);
    const after = serving.verify(key);
    held.open();
    await before;
    return Number((await after).valid) + Number((await serving.verify(key)).valid);
  }

  it("on another instance: the invalidation overtakes the read, and neither later requests nor the cache see the old row", async () => {
    const held = new HeldReads();
    const revoking = await open();
    const serving = await open(held);
    // The invalidation channel, delivered as soon as the revocation commits.
    revoking.onInvalidate((message) => serving.applyInvalidation(message));
    let stale = 0;
    for (let i = 0; i < 1_000; i++) stale += await trial(held, revoking, serving, `t${i}`);
    expect(stale).toBe(0);
  });

  it("on the revoking instance itself: the first request after the acknowledgement is denied", async () => {
    const held = new HeldReads();
    const engine = await open(held);
    let stale = 0;
    for (let i = 0; i < 200; i++) stale += await trial(held, engine, engine, `s${i}`);
    expect(stale).toBe(0);
  });
});
