import { describe, expect, it } from "vitest";
import type { RequestContext } from "../../src/core/model.js";
import { type InvalidationMessage, Keyward } from "../../src/engine/keyward.js";
import { ManualClock } from "../../src/ports/clock.js";
import type { KeyStore } from "../../src/ports/key-store.js";
import { MemoryKeyStore } from "../../src/stores/memory/memory-key-store.js";
import { PostgresKeyStore } from "../../src/stores/postgres/postgres-key-store.js";
import { backendsAvailable, createTestSchema, DATABASE_URL } from "../helpers/backends.js";

const ctx: RequestContext = { actor: { type: "cli", id: "test" } };
const available = await backendsAvailable();

const stores: [string, boolean, () => Promise<{ store: KeyStore; cleanup: () => Promise<void> }>][] = [
  ["memory", true, async () => ({ store: new MemoryKeyStore(), cleanup: async () => {} })],
  [
    "postgres",
    available,
    async () => {
      const { schema, drop } = await createTestSchema();
      const store = new PostgresKeyStore({ connectionString: DATABASE_URL, schema });
      return { store, cleanup: async () => drop() };
    },
  ],
];

for (const [name, runs, open] of stores) {
  describe.skipIf(!runs)(`Keyward.endGrace: ${name}`, () => {
    it("ends every grace still running before the named key, in one audit event, and tells the other instances", async () => {
      const { store, cleanup } = await open();
      const clock = new ManualClock();
      const k = new Keyward({ store, clock });
      try {
        await store.migrate();
        const messages: InvalidationMessage[] = [];
        k.onInvalidate((message) => messages.push(message));
        // A → B → C, A and B in a grace: a chain of rotations a week apart, each with 30 days of grace.
        const a = await k.createKey({ owner: { type: "user", id: "alice" }, name: "k", environment: "sandbox", scopes: ["read"] }, ctx);
        const b = await k.rotateKey(a.record.id, 30 * 86_400, ctx);
        clock.advance(7 * 86_400_000);
        const c = await k.rotateKey(b.record.id, 30 * 86_400, ctx);
        for (const key of [a.key, b.key, c.key]) expect((await k.verify(key)).code).toBe("VALID");

        messages.length = 0;
        const seen: string[][] = [];
        const ended = await k.endGrace(c.record.id, ctx, (ending) => seen.push(ending.map((key) => key.id)));
        expect(seen).toEqual([[b.record.id, a.record.id]]);
        expect(ended.endedGrace.map((key) => key.id)).toEqual([b.record.id, a.record.id]);
        expect(ended.key.id).toBe(c.record.id);
        expect(messages).toEqual([
          { kind: "key", keyId: b.record.id, digest: b.record.digest },
          { kind: "key", keyId: a.record.id, digest: a.record.digest },
        ]);
        // Same instant, same instance: denied at once.
        expect((await k.verify(a.key)).code).toBe("REVOKED");
        expect((await k.verify(b.key)).code).toBe("REVOKED");
        expect((await k.verify(c.key)).code).toBe("VALID");
        const events = (await store.listAuditEvents({ action: "key.grace_ended" }, 10, null)).events;
        expect(events).toHaveLength(1);
        expect(events[0]).toMatchObject({ targetId: b.record.id, details: { ended_grace: [b.record.id, a.record.id] } });
        await expect(k.endGrace(c.record.id, ctx)).rejects.toMatchObject({ code: "NO_GRACE_PERIOD" });
      } finally {
        await k.close();
        await cleanup();
      }
    });

    it("writes nothing when the authorization refuses, and skips a predecessor whose grace is over", async () => {
      const { store, cleanup } = await open();
      const clock = new ManualClock();
      const k = new Keyward({ store, clock });
      try {
        await store.migrate();
        const a = await k.createKey({ owner: { type: "user", id: "alice" }, name: "k", environment: "sandbox", scopes: ["read"] }, ctx);
        const b = await k.rotateKey(a.record.id, 60, ctx);
        await expect(
          k.endGrace(b.record.id, ctx, () => {
            throw new Error("refused");
          }),
        ).rejects.toThrow("refused");
        expect((await k.verify(a.key)).code).toBe("VALID");
        expect((await store.listAuditEvents({ action: "key.grace_ended" }, 10, null)).events).toHaveLength(0);
        // B's own grace of 0 seconds is over at once; A's minute is still running: ending B's lineage ends A's.
        const c = await k.rotateKey(b.record.id, 0, ctx);
        const ended = await k.endGrace(b.record.id, ctx);
        expect(ended.endedGrace.map((key) => key.id)).toEqual([a.record.id]);
        expect(ended.key.id).toBe(b.record.id);
        expect((await k.verify(c.key)).code).toBe("VALID");
      } finally {
        await k.close();
        await cleanup();
      }
    });
  });
}
