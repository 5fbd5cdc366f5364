import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KeywardError } from "../../src/core/errors.js";
import { hashApiKey } from "../../src/core/hashing.js";
import type { RequestContext } from "../../src/core/model.js";
import { Keyward } from "../../src/engine/keyward.js";
import { ManualClock } from "../../src/ports/clock.js";
import type { KeyStore } from "../../src/ports/key-store.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";

const ctx: RequestContext = { actor: { type: "cli", id: "test" } };
let dir: string;
let store: SqliteKeyStore;
let clock: ManualClock;
let lookups: number;
let failing: boolean;

/** The real SQLite store, with digest lookups counted and optionally failing (a database outage). */
function instrumented(real: KeyStore): KeyStore {
  return new Proxy(real, {
    get(target, property, receiver) {
      if (property === "findKeyByDigest") {
        return async (digest: string) => {
          lookups++;
          if (failing) throw new Error("database unreachable");
          return target.findKeyByDigest(digest);
        };
      }
      // An outage fails every read, the change token's too.
      if (property === "changeToken" && target.changeToken) {
        const read = target.changeToken.bind(target);
        return async () => {
          if (failing) throw new Error("database unreachable");
          return read();
        };
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

const engine = (options: Partial<ConstructorParameters<typeof Keyward>[0]> = {}) =>
  new Keyward({ store: instrumented(store), clock, ...options });
const create = (keyward: Keyward, extra: Record<string, unknown> = {}) =>
  keyward.createKey({ owner: { type: "user", id: "alice" }, name: "k", environment: "sandbox", scopes: ["read"], ...extra }, ctx);

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "keyward-engine-"));
  store = new SqliteKeyStore({ filename: join(dir, "k.db") });
  await store.migrate();
  clock = new ManualClock();
  lookups = 0;
  failing = false;
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("verify outcomes, in order", () => {
  it("VALID with the verified key", async () => {
    const k = engine();
    const { key, record } = await create(k, { metadata: { team: "a" } });
    const result = await k.verify(key, { scopes: ["read"] });
    expect(result).toMatchObject({ valid: true, code: "VALID", key: { id: record.id, scopes: ["read"], metadata: { team: "a" } } });
  });

  it("MISSING and MALFORMED never reach the store", async () => {
    const k = engine();
    const { key } = await create(k);
    expect((await k.verify("")).code).toBe("MISSING");
    expect((await k.verify(undefined)).code).toBe("MISSING");
    expect((await k.verify(`${key.slice(0, -1)}${key.endsWith("A") ? "B" : "A"}`)).code).toBe("MALFORMED");
    expect((await k.verify(key.replace("kw_", "zz_"))).code).toBe("MALFORMED");
    expect(lookups).toBe(0);
  });

  it("NOT_FOUND for an unknown key, and repeated unknown keys cost one lookup (negative cache)", async () => {
    const k = engine();
    const other = engine();
    const { key } = await create(other);
    await store.db.exec("DELETE FROM keys");
    for (let i = 0; i < 5; i++) expect((await k.verify(key)).code).toBe("NOT_FOUND");
    expect(lookups).toBe(1);
  });

  it("DISABLED for a disabled key or owner; REVOKED; EXPIRED (also from cache)", async () => {
    const k = engine();
    const a = await create(k);
    await k.updateKey(a.record.id, { enabled: false }, ctx);
    expect((await k.verify(a.key)).code).toBe("DISABLED");
    const b = await create(k, { owner: { type: "application", id: "svc" } });
    await k.setOwnerDisabled({ type: "application", id: "svc" }, true, ctx);
    expect((await k.verify(b.key)).code).toBe("DISABLED");
    const c = await create(k);
    await k.revokeKey(c.record.id, "test", ctx);
    expect((await k.verify(c.key)).code).toBe("REVOKED");
    const d = await create(k, { expiresAt: clock.now() + 60_000 });
    expect((await k.verify(d.key)).code).toBe("VALID");
    clock.advance(60_000);
    expect((await k.verify(d.key)).code).toBe("EXPIRED");
  });

  it("ENVIRONMENT_MISMATCH, IP_NOT_ALLOWED, INSUFFICIENT_SCOPE with the missing scopes", async () => {
    const k = engine();
    const { key } = await create(k, { allowedCidrs: ["10.0.0.0/8"], scopes: ["read"] });
    expect((await k.verify(key, { environment: "production", ip: "10.0.0.1" })).code).toBe("ENVIRONMENT_MISMATCH");
    expect((await k.verify(key, { ip: "192.168.0.1" })).code).toBe("IP_NOT_ALLOWED");
    expect((await k.verify(key, { ip: undefined })).code).toBe("IP_NOT_ALLOWED");
    expect(await k.verify(key, { ip: "10.1.1.1", scopes: ["read", "write"] })).toMatchObject({
      code: "INSUFFICIENT_SCOPE",
      missingScopes: ["write"],
    });
  });

  it("the first failing check wins (disabled before expired before scope)", async () => {
    const k = engine();
    const { key, record } = await create(k, { expiresAt: clock.now() + 1_000 });
    await k.updateKey(record.id, { enabled: false }, ctx);
    clock.advance(2_000);
    expect((await k.verify(key, { scopes: ["nope"] })).code).toBe("DISABLED");
  });
});

describe("cache", () => {
  it("a cache hit does not touch the store; a change through the engine applies to the very next verify", async () => {
    const k = engine();
    const { key, record } = await create(k);
    await k.verify(key);
    await k.verify(key);
    expect(lookups).toBe(1);
    await k.revokeKey(record.id, null, ctx);
    expect((await k.verify(key)).code).toBe("REVOKED");
  });

  it("verifyInline answers a cached key without limits in the same tick, and anything that must wait with a promise", async () => {
    const k = engine();
    const { key } = await create(k);
    const { key: limited } = await create(k, { rateLimit: { requests: 5, per_seconds: 1 } });
    const first = k.verifyInline(key, { scopes: ["read"] });
    expect(first).toBeInstanceOf(Promise);
    expect((await first).code).toBe("VALID");
    const cached = k.verifyInline(key, { scopes: ["read"] });
    expect(cached).not.toBeInstanceOf(Promise);
    expect(cached).toMatchObject({ valid: true, code: "VALID", key: { owner: { type: "user", id: "alice" } } });
    // Denials of a cached key are known at once too; the same answers as verify().
    expect(k.verifyInline(key, { scopes: ["write"] })).toMatchObject({ code: "INSUFFICIENT_SCOPE", missingScopes: ["write"] });
    expect(await k.verify(key, { scopes: ["write"] })).toMatchObject({ code: "INSUFFICIENT_SCOPE", missingScopes: ["write"] });
    expect(k.verifyInline(null)).toMatchObject({ code: "MISSING" });
    // A key with limits waits for the limits stage, cached or not.
    await k.verify(limited);
    const metered = k.verifyInline(limited);
    expect(metered).toBeInstanceOf(Promise);
    expect((await metered).code).toBe("VALID");
    expect(lookups).toBe(2);
  });

  it("a change made elsewhere is seen after the cache maximum age", async () => {
    const k = engine({ cache: { maxAgeMs: 1_000 } });
    const elsewhere = engine();
    const { key, record } = await create(k);
    expect((await k.verify(key)).code).toBe("VALID");
    await elsewhere.revokeKey(record.id, null, ctx);
    expect((await k.verify(key)).code).toBe("VALID");
    clock.advance(1_000);
    expect((await k.verify(key)).code).toBe("REVOKED");
  });

  it("past the maximum age, a key is renewed without a re-read while the store's change token stands still", async () => {
    // A store with a change token and no change feed (the feed, preferred, is tested in sqlite-change-feed.test.ts).
    const tokenOnly = new Proxy(instrumented(store), {
      get: (target, property, receiver) => (property === "pollKeyChanges" ? undefined : Reflect.get(target, property, receiver)),
    });
    const k = new Keyward({ store: tokenOnly, clock, cache: { maxAgeMs: 1_000 } });
    const { key } = await create(k);
    expect((await k.verify(key)).code).toBe("VALID");
    for (let i = 0; i < 5; i++) {
      clock.advance(1_500);
      expect((await k.verify(key)).code).toBe("VALID");
    }
    expect(lookups).toBe(1);
  });

  it("a change from another connection to the same file moves the change token: seen after the maximum age", async () => {
    const k = engine({ cache: { maxAgeMs: 1_000 } });
    const other = new SqliteKeyStore({ filename: join(dir, "k.db") });
    const elsewhere = new Keyward({ store: other, clock });
    const { key, record } = await create(k);
    expect((await k.verify(key)).code).toBe("VALID");
    await elsewhere.revokeKey(record.id, null, ctx);
    clock.advance(1_000);
    expect((await k.verify(key)).code).toBe("REVOKED");
    await other.close();
  });

  it("store down: verified keys keep working within the stale window; unknown keys get STORE_UNAVAILABLE", async () => {
    const k = engine({ cache: { maxAgeMs: 1_000, staleWindowMs: 60_000 } });
    const { key } = await create(k);
    const { key: unseen } = await create(k);
    expect((await k.verify(key)).code).toBe("VALID");
    failing = true;
    clock.advance(5_000);
    expect((await k.verify(key)).code).toBe("VALID");
    await expect(k.verify(unseen)).rejects.toMatchObject({ code: "STORE_UNAVAILABLE", retryAfterSeconds: 5 });
    clock.advance(60_000);
    await expect(k.verify(key)).rejects.toBeInstanceOf(KeywardError);
  });
});

describe("rotation", () => {
  it("the successor keeps settings and lineage; the old key works until the grace ends", async () => {
    const k = engine();
    const old = await create(k, {
      scopes: ["read", "write"],
      metadata: { m: 1 },
      rateLimit: { requests: 5, per_seconds: 1 },
      allowedCidrs: ["127.0.0.1"],
    });
    const rotated = await k.rotateKey(old.record.id, 60, ctx);
    expect(rotated.record).toMatchObject({
      scopes: ["read", "write"],
      metadata: { m: 1 },
      rateLimit: { requests: 5, per_seconds: 1 },
      allowedCidrs: ["127.0.0.1"],
      owner: old.record.owner,
      lineageId: old.record.lineageId,
      rotatedFrom: old.record.id,
    });
    expect((await k.verify(old.key, { ip: "127.0.0.1" })).code).toBe("VALID");
    clock.advance(60_000);
    expect((await k.verify(old.key, { ip: "127.0.0.1" })).code).toBe("REVOKED");
    expect((await k.verify(rotated.key, { ip: "127.0.0.1" })).code).toBe("VALID");
    await expect(k.rotateKey(old.record.id, 0, ctx)).rejects.toMatchObject({ code: "CONFLICT" });
  });
});

describe("hash secret rotation", () => {
  it("keys made under an older secret version still verify", async () => {
    const v1 = { version: 1, secret: "old" };
    const before = engine({ hashSecrets: [v1] });
    const { key } = await create(before);
    const after = engine({ hashSecrets: [{ version: 2, secret: "new" }, v1] });
    expect((await after.verify(key)).code).toBe("VALID");
    const onlyNew = engine({ hashSecrets: [{ version: 2, secret: "new" }] });
    expect((await onlyNew.verify(key)).code).toBe("NOT_FOUND");
  });
});

describe("validation", () => {
  const invalid: [string, Record<string, unknown>][] = [
    ["bad scope", { scopes: ["Bad Scope"] }],
    ["CR/LF in name", { name: "a\r\nb" }],
    ["HTML in name", { name: "<script>x</script>" }],
    ["__proto__ in metadata", { metadata: JSON.parse('{"__proto__": {"x": 1}}') }],
    ["deep metadata", { metadata: { a: { b: { c: { d: { e: { f: 1 } } } } } } }],
    ["NaN", { concurrency: Number.NaN }],
    ["past expiry", { expiresAt: Date.UTC(2020, 0, 1) }],
    ["bad CIDR", { allowedCidrs: ["300.0.0.0/8"] }],
  ];
  for (const [name, extra] of invalid) {
    it(`${name} → VALIDATION_FAILED with field errors, nothing written`, async () => {
      const k = engine();
      const error = await create(k, extra).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(KeywardError);
      expect((error as KeywardError).code).toBe("VALIDATION_FAILED");
      expect((error as KeywardError).errors?.length).toBeGreaterThan(0);
      expect(await store.countKeys()).toBe(0);
    });
  }

  it("a garbage cursor → INVALID_CURSOR", async () => {
    await expect(engine().listKeys({}, { cursor: "garbage" })).rejects.toMatchObject({ code: "INVALID_CURSOR" });
  });
});

describe("the verify cache holds equal parts of keys once", () => {
  it("shares scopes, owners and empty metadata and CIDRs between cached keys, and changes no value", async () => {
    const k = engine();
    const a = await create(k, { scopes: ["read", "write"] });
    const b = await create(k, { scopes: ["read", "write"] });
    const c = await create(k, {
      scopes: ["read"],
      owner: { type: "application", id: "billing" },
      metadata: { team: "a" },
      allowedCidrs: ["10.0.0.0/8"],
    });
    const verified = async (key: string) => {
      const result = await k.verify(key, { ip: "10.1.2.3" });
      if (!result.valid) throw new Error(`expected VALID, got ${result.code}`);
      return result.record;
    };
    const [ra, rb, rc] = [await verified(a.key), await verified(b.key), await verified(c.key)];
    expect(rb.scopes).toBe(ra.scopes);
    expect(rb.owner).toBe(ra.owner);
    expect(rb.metadata).toBe(ra.metadata);
    expect(rb.allowedCidrs).toBe(ra.allowedCidrs);
    expect(Object.isFrozen(ra.metadata) && Object.isFrozen(ra.allowedCidrs) && Object.isFrozen(ra.scopes)).toBe(true);
    // A key with parts of its own keeps them.
    expect(rc.scopes).not.toBe(ra.scopes);
    expect(rc.metadata).toEqual({ team: "a" });
    expect(rc.allowedCidrs).toEqual(["10.0.0.0/8"]);
    expect((await k.verify(c.key, { ip: "192.168.1.1" })).code).toBe("IP_NOT_ALLOWED");
    // Every cached record holds what the store holds.
    for (const [{ key }, record] of [
      [a, ra],
      [b, rb],
      [c, rc],
    ] as const) {
      expect(record).toEqual((await store.findKeyByDigest(hashApiKey(key)))?.key);
    }
  });
});
