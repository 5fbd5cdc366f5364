import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AUDIT_GENESIS_HASH, verifyAuditChain } from "../../src/core/audit-chain.js";
import type { AuditEvent, KeyRecord } from "../../src/core/model.js";
import { generateId } from "../../src/core/random.js";
import type { KeyStore } from "../../src/ports/key-store.js";

const T0 = Date.UTC(2026, 0, 1);

export function makeKey(overrides: Partial<KeyRecord> = {}): KeyRecord {
  const id = overrides.id ?? generateId("key");
  return {
    id,
    digest: `digest-${id}`,
    hashVersion: 0,
    ref: "kw_test_…abcd",
    name: "k",
    owner: { type: "user", id: "alice" },
    environment: "sandbox",
    scopes: ["read"],
    enabled: true,
    createdAt: T0,
    updatedAt: T0,
    expiresAt: null,
    revokedAt: null,
    revokedReason: null,
    lastUsedAt: null,
    lastUsedIp: null,
    rateLimit: null,
    concurrency: null,
    quota: null,
    allowedCidrs: [],
    metadata: {},
    rotatedFrom: null,
    replacedBy: null,
    graceEndsAt: null,
    lineageId: id,
    delegation: null,
    awaitingPickup: false,
    legacyFormat: null,
    externalId: null,
    ...overrides,
  };
}

export function makeAudit(action: string, targetId: string, at = T0): AuditEvent {
  return {
    id: generateId("evt"),
    at,
    actor: { type: "cli", id: "tester" },
    action,
    targetType: "key",
    targetId,
    ip: "127.0.0.1",
    userAgent: "test",
    requestId: "req-1",
    changes: { name: { from: "a", to: "b" } },
    details: null,
  };
}

/**
 * The one behaviour every KeyStore adapter must show. A new adapter is one file plus one call
 * of this function.
 */
export function runKeyStoreContract(name: string, open: () => Promise<{ store: KeyStore; cleanup: () => Promise<void> }>): void {
  describe(`KeyStore contract: ${name}`, () => {
    let store: KeyStore;
    let cleanup: () => Promise<void>;
    beforeEach(async () => {
      ({ store, cleanup } = await open());
      await store.migrate();
    });
    afterEach(async () => {
      await cleanup();
    });

    it("keeps owners with a name and shared limits, read with every key's lookup; lists organizations newest first", async () => {
      const acme = { type: "organization" as const, id: "acme" };
      const limits = { rateLimit: { requests: 5, per_seconds: 1 }, concurrency: null, quota: { limit: 100, period: "day" as const } };
      const created = await store.createOwner(acme, { name: "Acme", limits }, makeAudit("owner.created", "organization:acme"), T0);
      expect(created).toMatchObject({ ...acme, name: "Acme", limits, disabled: false, createdAt: T0 });
      expect(await store.createOwner(acme, { name: "again" }, makeAudit("owner.created", "organization:acme"), T0)).toBeNull();
      const key = makeKey({ owner: acme });
      await store.insertKey(key, makeAudit("key.created", key.id));
      expect((await store.findKeyByDigest(key.digest))?.ownerLimits).toEqual({ ...limits, owner: acme, createdAt: T0 });
      // Limits with nothing in them are none.
      const cleared = await store.updateOwner(
        acme,
        { limits: { rateLimit: null, concurrency: null, quota: null } },
        makeAudit("owner.updated", "x"),
      );
      expect(cleared?.limits).toBeNull();
      expect((await store.findKeyByDigest(key.digest))?.ownerLimits).toBeNull();
      expect(await store.updateOwner({ type: "organization", id: "nobody" }, { name: "x" }, makeAudit("owner.updated", "x"))).toBeNull();
      for (let i = 0; i < 5; i++)
        await store.createOwner(
          { type: "organization", id: `org${i}` },
          { name: i % 2 ? "Globex" : "Initech" },
          makeAudit("owner.created", "x"),
          T0 + i + 1,
        );
      const first = await store.listOwners({ type: "organization" }, 3, null);
      expect(first.owners.map((o) => o.id)).toEqual(["org4", "org3", "org2"]);
      const second = await store.listOwners({ type: "organization" }, 3, first.next);
      expect(second.owners.map((o) => o.id)).toEqual(["org1", "org0", "acme"]);
      expect(second.next).toBeNull();
      expect((await store.listOwners({ type: "organization", q: "GLOB" }, 10, null)).owners.map((o) => o.id)).toEqual(["org3", "org1"]);
      expect((await store.listOwners({ type: "organization", ids: ["acme", "org2"] }, 10, null)).owners.map((o) => o.id)).toEqual([
        "org2",
        "acme",
      ]);
      expect((await store.listOwners({ type: "organization", ids: [] }, 10, null)).owners).toEqual([]);
      expect((await store.listOwners({ type: "user" }, 10, null)).owners).toEqual([]);
    });

    it("migrate is idempotent", async () => {
      await store.migrate();
      expect(await store.countKeys()).toBe(0);
    });

    it("inserts a key with its audit event and finds it by digest, with the owner's disabled flag", async () => {
      const key = makeKey({
        scopes: ["read", "approvals:*"],
        metadata: { a: { b: [1, 2] } },
        rateLimit: { requests: 5, per_seconds: 1 },
        quota: { remaining: 7 },
        allowedCidrs: ["10.0.0.0/8"],
        expiresAt: T0 + 1000,
      });
      await store.insertKey(key, makeAudit("key.created", key.id));
      expect(await store.findKeyByDigest(key.digest)).toEqual({ key, ownerDisabled: false, ownerLimits: null });
      expect(await store.getKey(key.id)).toEqual(key);
      expect(await store.findKeyByDigest("nope")).toBeNull();
      expect(await store.getKey("key_missing")).toBeNull();
      expect((await store.listAuditEvents({ targetId: key.id }, 10, null)).events.map((e) => e.action)).toEqual(["key.created"]);
    });

    it("refuses a second key with the same digest and writes no audit event for it", async () => {
      const key = makeKey();
      await store.insertKey(key, makeAudit("key.created", key.id));
      const twin = makeKey({ digest: key.digest });
      await expect(store.insertKey(twin, makeAudit("key.created", twin.id))).rejects.toThrow();
      expect(await store.countKeys()).toBe(1);
      expect((await store.listAuditEvents({}, 10, null)).events).toHaveLength(1);
    });

    it("lists newest first with cursors, no duplicates or gaps", async () => {
      const ids: string[] = [];
      for (let i = 0; i < 7; i++) {
        const key = makeKey({ createdAt: T0 + Math.floor(i / 2) });
        ids.push(key.id);
        await store.insertKey(key, makeAudit("key.created", key.id));
      }
      const seen: string[] = [];
      let cursor = null;
      do {
        const page = await store.listKeys({ now: T0 }, 3, cursor);
        seen.push(...page.keys.map((k) => k.id));
        cursor = page.next;
      } while (cursor);
      expect(seen).toHaveLength(7);
      expect(new Set(seen)).toEqual(new Set(ids));
      const created = await Promise.all(seen.map(async (id) => (await store.getKey(id))?.createdAt ?? 0));
      expect(created).toEqual([...created].sort((a, b) => b - a));
    });

    it("filters by owner, environment and status computed at `now`", async () => {
      const keys = [
        makeKey({ owner: { type: "user", id: "bob" } }),
        makeKey({ environment: "production" }),
        makeKey({ revokedAt: T0 }),
        makeKey({ enabled: false }),
        makeKey({ expiresAt: T0 + 10 }),
        makeKey({ graceEndsAt: T0 + 5, replacedBy: "key_x" }),
      ];
      for (const key of keys) await store.insertKey(key, makeAudit("key.created", key.id));
      const ids = async (filter: Parameters<KeyStore["listKeys"]>[0]) =>
        (await store.listKeys(filter, 50, null)).keys.map((k) => k.id).sort();
      expect(await ids({ now: T0, ownerId: "bob" })).toEqual([keys[0]?.id]);
      expect(await ids({ now: T0, ownerType: "user", environment: "production" })).toEqual([keys[1]?.id]);
      expect(await ids({ now: T0 + 20, status: "revoked" })).toEqual([keys[2]?.id, keys[5]?.id].sort());
      expect(await ids({ now: T0 + 20, status: "disabled" })).toEqual([keys[3]?.id]);
      expect(await ids({ now: T0 + 20, status: "expired" })).toEqual([keys[4]?.id]);
      expect(await ids({ now: T0 + 20, status: "active" })).toEqual([keys[0]?.id, keys[1]?.id].sort());
      expect(await ids({ now: T0, status: "active" })).toHaveLength(4);
    });

    it("updates a key and records the change; an unknown id changes nothing", async () => {
      const key = makeKey();
      await store.insertKey(key, makeAudit("key.created", key.id));
      const updated = await store.updateKey(
        key.id,
        { name: "b", scopes: ["write"], enabled: false, metadata: { x: 1 }, quota: null },
        makeAudit("key.updated", key.id, T0 + 5),
      );
      expect(updated).toMatchObject({ name: "b", scopes: ["write"], enabled: false, metadata: { x: 1 }, updatedAt: T0 + 5 });
      expect(await store.getKey(key.id)).toEqual(updated);
      expect(await store.updateKey("key_missing", { name: "c" }, makeAudit("key.updated", "key_missing"))).toBeNull();
      expect((await store.listAuditEvents({}, 10, null)).events.map((e) => e.action)).toEqual(["key.updated", "key.created"]);
    });

    it("keeps a key's last use through insert, every read and update, and clears it", async () => {
      const used = makeKey({ lastUsedAt: T0 + 7, lastUsedIp: "198.51.100.4" });
      const fresh = makeKey({ createdAt: T0 + 1 });
      await store.insertKey(used, makeAudit("key.created", used.id));
      await store.insertKey(fresh, makeAudit("key.created", fresh.id));
      expect(await store.getKey(used.id)).toEqual(used);
      expect((await store.findKeyByDigest(used.digest))?.key).toEqual(used);
      expect((await store.listKeys({ now: T0 }, 10, null)).keys).toEqual([fresh, used]);
      const moved = await store.updateKey(fresh.id, { lastUsedAt: T0 + 9, lastUsedIp: "192.0.2.1" }, null);
      expect(moved).toMatchObject({ lastUsedAt: T0 + 9, lastUsedIp: "192.0.2.1" });
      expect(await store.getKey(fresh.id)).toEqual(moved);
      const cleared = await store.updateKey(used.id, { lastUsedAt: null, lastUsedIp: null, name: "renamed" }, null);
      expect(cleared).toMatchObject({ lastUsedAt: null, lastUsedIp: null, name: "renamed" });
      expect(await store.updateKey("key_missing", { lastUsedAt: T0 }, null)).toBeNull();
    });

    it("rotates once: a second rotation conflicts and leaves no audit event", async () => {
      const key = makeKey();
      await store.insertKey(key, makeAudit("key.created", key.id));
      const successor = makeKey({ rotatedFrom: key.id, lineageId: key.lineageId });
      expect(
        await store.rotateKey(key.id, { replacedBy: successor.id, graceEndsAt: T0 + 60 }, successor, makeAudit("key.rotated", key.id)),
      ).toBe("rotated");
      expect(await store.getKey(key.id)).toMatchObject({ replacedBy: successor.id, graceEndsAt: T0 + 60 });
      expect(await store.getKey(successor.id)).toEqual(successor);
      const another = makeKey();
      expect(await store.rotateKey(key.id, { replacedBy: another.id, graceEndsAt: T0 }, another, makeAudit("key.rotated", key.id))).toBe(
        "conflict",
      );
      expect(await store.getKey(another.id)).toBeNull();
      expect(await store.rotateKey("key_missing", {}, makeKey(), makeAudit("key.rotated", "key_missing"))).toBe("not_found");
      expect((await store.listAuditEvents({ action: "key.rotated" }, 10, null)).events).toHaveLength(1);
    });

    it("disables an owner, which the digest lookup reports", async () => {
      const key = makeKey({ owner: { type: "application", id: "svc" } });
      await store.insertKey(key, makeAudit("key.created", key.id));
      const owner = await store.setOwnerDisabled(
        { type: "application", id: "svc" },
        true,
        makeAudit("owner.disabled", "application:svc"),
        T0,
      );
      expect(owner).toMatchObject({ type: "application", id: "svc", disabled: true });
      expect((await store.findKeyByDigest(key.digest))?.ownerDisabled).toBe(true);
      expect(await store.getOwner({ type: "user", id: "nobody" })).toBeNull();
      await store.ensureOwner({ type: "user", id: "new" }, T0);
      expect(await store.getOwner({ type: "user", id: "new" })).toMatchObject({ disabled: false });
    });

    it("pages and filters audit events, and keeps them in one verifiable hash chain", async () => {
      for (let i = 0; i < 5; i++) await store.appendAuditEvent(makeAudit(i % 2 ? "a.odd" : "a.even", `t${i}`, T0 + i));
      const first = await store.listAuditEvents({}, 2, null);
      const second = await store.listAuditEvents({}, 2, first.next);
      const third = await store.listAuditEvents({}, 2, second.next);
      expect([...first.events, ...second.events, ...third.events].map((e) => e.targetId)).toEqual(["t4", "t3", "t2", "t1", "t0"]);
      expect(third.next).toBeNull();
      expect((await store.listAuditEvents({ action: "a.odd" }, 10, null)).events.map((e) => e.targetId)).toEqual(["t3", "t1"]);
      expect((await store.listAuditEvents({ since: T0 + 1, until: T0 + 3 }, 10, null)).events.map((e) => e.targetId)).toEqual(["t2", "t1"]);
      const chain = await store.readAuditChain(0, 100);
      expect(chain[0]?.prevHash).toBe(AUDIT_GENESIS_HASH);
      expect(chain.slice(1).map((e) => e.prevHash)).toEqual(chain.slice(0, -1).map((e) => e.hash));
      expect(await verifyAuditChain((after, limit) => store.readAuditChain(after, limit))).toEqual({ ok: true, events: 5 });
    });

    it("meta values are a once-only latch", async () => {
      expect(await store.getMeta("x")).toBeNull();
      expect(await store.setMetaOnce("x", "1")).toBe(true);
      expect(await store.setMetaOnce("x", "2")).toBe(false);
      expect(await store.getMeta("x")).toBe("1");
    });
  });
}
