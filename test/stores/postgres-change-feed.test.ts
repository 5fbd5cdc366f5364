import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { RequestContext } from "../../src/core/model.js";
import { Keyward } from "../../src/engine/keyward.js";
import { ServiceMetrics } from "../../src/service/metrics.js";
import { PostgresKeyStore } from "../../src/stores/postgres/postgres-key-store.js";
import { backendsAvailable, createTestSchema, DATABASE_URL } from "../helpers/backends.js";

/**
 * The PostgreSQL change feed (docs/architecture.md): two engines on one schema and no Redis,
 * the default (5-minute) maximum age. Revocation bounds are asserted by polling the outcome
 * against a deadline, never by a fixed sleep.
 */
const available = await backendsAvailable();
const ctx: RequestContext = { actor: { type: "cli", id: "feed" } };
const BOUND_MS = 1_000;

let drop: () => Promise<void>;
let storeA: PostgresKeyStore;
let storeB: PostgresKeyStore;
let a: Keyward;
let b: Keyward;

const create = (owner = "alice") =>
  a.createKey({ owner: { type: "user", id: owner }, name: "k", environment: "sandbox", scopes: ["read"] }, ctx);

/** Verifies `key` on `engine` until `done` holds; answers how long that took from `since`. */
async function until(engine: Keyward, keys: string[], done: (codes: string[]) => boolean, since: number, deadlineMs = 3_000) {
  for (;;) {
    const codes = await Promise.all(keys.map(async (key) => (await engine.verify(key)).code));
    const elapsed = performance.now() - since;
    if (done(codes)) return elapsed;
    if (elapsed > deadlineMs) throw new Error(`not within ${deadlineMs} ms: ${codes.join(", ")}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe.skipIf(!available)("postgres change feed", () => {
  beforeEach(async () => {
    const schema = await createTestSchema();
    drop = schema.drop;
    storeA = new PostgresKeyStore({ connectionString: DATABASE_URL, schema: schema.schema });
    storeB = new PostgresKeyStore({ connectionString: DATABASE_URL, schema: schema.schema });
    await storeA.migrate();
    a = new Keyward({ store: storeA, failedAttempts: false });
    b = new Keyward({ store: storeB, failedAttempts: false });
  });
  afterEach(async () => {
    await a.close();
    await b.close();
    await drop();
  });

  it("the maximum age is a safety net of minutes with a feed", () => {
    expect(b.cache.maxAgeMs).toBe(3_600_000);
    expect(b.cache.feedInUse).toBe(true);
  });

  it("a revocation on one instance is seen on the other within 1 s, without Redis", async () => {
    const { key, record } = await create();
    expect((await b.verify(key)).code).toBe("VALID");
    await a.revokeKey(record.id, null, ctx);
    const took = await until(b, [key], ([code]) => code === "REVOKED", performance.now());
    console.log(`change feed: revocation seen on the other instance after ${took.toFixed(0)} ms`);
    expect(took).toBeLessThanOrEqual(BOUND_MS);
  });

  it("1,000 cached keys and no changes: no key is re-read, and polls are one per interval", async () => {
    const keys: string[] = [];
    for (let i = 0; i < 1_000; i += 50) {
      const batch = await Promise.all(Array.from({ length: 50 }, () => create()));
      keys.push(...batch.map((created) => created.key));
    }
    for (const key of keys) expect((await b.verify(key)).code).toBe("VALID");
    const lookups = storeB.statementCounts.keyLookups;
    const polls = storeB.statementCounts.changePolls;
    const started = performance.now();
    let verifications = 0;
    while (performance.now() - started < 3_000) {
      for (let i = 0; i < keys.length; i += 100) {
        const results = await Promise.all(keys.slice(i, i + 100).map((key) => b.verify(key)));
        verifications += results.length;
        expect(results.every((result) => result.code === "VALID")).toBe(true);
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const seconds = (performance.now() - started) / 1000;
    const reads = storeB.statementCounts.keyLookups - lookups;
    const polled = storeB.statementCounts.changePolls - polls;
    console.log(
      `change feed: ${verifications} verifications of 1,000 keys over ${seconds.toFixed(1)} s: ${reads} key reads, ${polled} polls`,
    );
    expect(reads).toBe(0);
    // One poll per 500 ms interval while traffic flows (give or take the edges).
    expect(polled).toBeGreaterThanOrEqual(Math.floor(seconds / 0.5) - 2);
    expect(polled).toBeLessThanOrEqual(Math.ceil(seconds / 0.5) + 2);
    // The same counts, as the service exposes them.
    const metrics = new ServiceMetrics();
    metrics.watchStoreStatements(storeB.statementCounts);
    const text = await metrics.registry.metrics();
    expect(text).toContain(`keyward_store_statements_total{kind="key_lookup"} ${storeB.statementCounts.keyLookups}`);
    expect(text).toContain(`keyward_store_statements_total{kind="change_poll"} ${storeB.statementCounts.changePolls}`);
  });

  it("an owner disabled: every cached key of it is refused within 1 s, other owners' keys are not re-read", async () => {
    const held = await Promise.all([create("bob"), create("bob"), create("bob")]);
    const other = await create("carol");
    for (const { key } of [...held, other]) expect((await b.verify(key)).code).toBe("VALID");
    const lookups = storeB.statementCounts.keyLookups;
    await a.setOwnerDisabled({ type: "user", id: "bob" }, true, ctx);
    const took = await until(
      b,
      held.map((created) => created.key),
      (codes) => codes.every((code) => code === "DISABLED"),
      performance.now(),
    );
    expect(took).toBeLessThanOrEqual(BOUND_MS);
    expect((await b.verify(other.key)).code).toBe("VALID");
    // Bob's three keys were re-read; Carol's was not.
    expect(storeB.statementCounts.keyLookups - lookups).toBe(3);
  });

  it("a feed behind the prune horizon drops the whole cache", async () => {
    const created = await Promise.all(Array.from({ length: 10 }, () => create()));
    for (const { key } of created) expect((await b.verify(key)).code).toBe("VALID");
    expect(b.cache.size.positive).toBe(10);
    const [revoked, untouched] = created as [(typeof created)[0], (typeof created)[0]];
    // B is idle (no poll) while a change is written and every change row is pruned.
    await a.revokeKey(revoked.record.id, null, ctx);
    expect(await storeA.pruneKeyChanges(-60_000)).toBe(true);
    const lookups = storeB.statementCounts.keyLookups;
    // An untouched key is re-read: B's next poll found its cursor behind the pruned rows and reset.
    await until(b, [untouched.key], () => storeB.statementCounts.keyLookups > lookups, performance.now());
    expect(b.cache.size.positive).toBeLessThanOrEqual(2);
    expect((await b.verify(revoked.key)).code).toBe("REVOKED");
  });

  it("a lower seq committed after a higher one is not skipped (commit order is not sequence order)", async () => {
    const first = await create();
    const second = await create();
    const start = await storeB.pollKeyChanges(null);
    const early = await storeA.pool.connect();
    const late = await storeA.pool.connect();
    try {
      await early.query("BEGIN");
      await early.query("UPDATE keys SET name = 'early' WHERE id = $1", [first.record.id]);
      await late.query("BEGIN");
      await late.query("UPDATE keys SET name = 'late' WHERE id = $1", [second.record.id]);
      await late.query("COMMIT");
      const seqs = await late.query<{ key_id: string; seq: string }>("SELECT key_id, seq FROM key_changes ORDER BY seq");
      expect(seqs.rows.map((row) => row.key_id)).toEqual([second.record.id]);
      const seen = await storeB.pollKeyChanges(start.cursor);
      expect(seen.keys.map((change) => change.id)).toEqual([second.record.id]);
      await early.query("COMMIT");
      // The early transaction's row has the lower seq, committed last.
      const ordered = await late.query<{ key_id: string }>("SELECT key_id FROM key_changes ORDER BY seq");
      expect(ordered.rows.map((row) => row.key_id)).toEqual([first.record.id, second.record.id]);
      const then = await storeB.pollKeyChanges(seen.cursor);
      expect(then.keys.map((change) => change.id)).toEqual([first.record.id]);
      expect(then.reset).toBe(false);
      const after = await storeB.pollKeyChanges(then.cursor);
      expect(after.keys).toEqual([]);
    } finally {
      early.release();
      late.release();
    }
  });

  it("last uses write no change row; every other column of keys is watched by the trigger", async () => {
    const { record } = await create();
    const start = await storeB.pollKeyChanges(null);
    await storeA.pool.query("UPDATE keys SET last_used_at = 1, last_used_ip = '127.0.0.1' WHERE id = $1", [record.id]);
    expect((await storeB.pollKeyChanges(start.cursor)).keys).toEqual([]);
    const watched = await storeA.pool.query<{ attname: string }>(
      `SELECT a.attname FROM pg_trigger t JOIN pg_attribute a ON a.attrelid = t.tgrelid AND a.attnum = ANY (t.tgattr)
       WHERE t.tgname = 'keys_changed_update' AND t.tgrelid = 'keys'::regclass`,
    );
    const columns = await storeA.pool.query<{ attname: string }>(
      "SELECT attname FROM pg_attribute WHERE attrelid = 'keys'::regclass AND attnum > 0 AND NOT attisdropped",
    );
    const expected = columns.rows.map((row) => row.attname).filter((name) => name !== "last_used_at" && name !== "last_used_ip");
    expect(watched.rows.map((row) => row.attname).sort()).toEqual(expected.sort());
  });
});
