import { createHash, createHmac } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { generateApiKey } from "../../src/core/key-format.js";
import { toPublicKey } from "../../src/core/key-view.js";
import { type LegacyFormat, parseLegacyFormats } from "../../src/core/legacy-formats.js";
import type { KeyRecord as KeyRecordType, RequestContext } from "../../src/core/model.js";
import { readImportRecords } from "../../src/engine/import-records.js";
import type { ImportOptions } from "../../src/engine/key-import.js";
import { Keyward } from "../../src/engine/keyward.js";
import { ManualClock } from "../../src/ports/clock.js";
import type { KeyStore } from "../../src/ports/key-store.js";
import { PostgresKeyStore } from "../../src/stores/postgres/postgres-key-store.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";
import { backendsAvailable, createTestSchema, DATABASE_URL } from "../helpers/backends.js";

const ctx: RequestContext = { actor: { type: "cli", id: "importer" } };
const T0 = Date.UTC(2026, 0, 1);
const SUNSET = "2026-06-01T00:00:00Z";
const PEPPER = "crm-pepper-0123456789abcdef";

const FORMATS: LegacyFormat[] = parseLegacyFormats(
  JSON.stringify([
    { name: "acme", prefix: "acme_", digest: "sha256_hex" },
    { name: "crm", pattern: "crm-[0-9a-f]{32}", digest: "hmac_sha256", secret: "crm_pepper" },
    { name: "old", prefix: "old.", digest: "sha256_base64", sunset: SUNSET },
  ]),
  JSON.stringify({ crm_pepper: PEPPER }),
  "kw",
);

const sha = (key: string, encoding: "hex" | "base64" | "base64url") => createHash("sha256").update(key).digest(encoding);
const hmac = (key: string, encoding: "hex" | "base64" | "base64url") => createHmac("sha256", PEPPER).update(key).digest(encoding);
let serial = 0;
const acmeKey = () => `acme_${createHash("sha256").update(`acme ${serial++} ${Math.random()}`).digest("hex").slice(0, 40)}`;
const crmKey = () => `crm-${createHash("sha256").update(`crm ${serial++} ${Math.random()}`).digest("hex").slice(0, 32)}`;
const oldKey = () => `old.${createHash("sha256").update(`old ${serial++} ${Math.random()}`).digest("base64url").slice(0, 30)}`;

const jsonl = (records: readonly object[]) => records.map((record) => JSON.stringify(record)).join("\n");
const itemsOf = (text: string) => readImportRecords(Readable.from([Buffer.from(text)]));

interface Backend {
  name: string;
  open: () => Promise<{ store: KeyStore; cleanup: () => Promise<void> }>;
}

const available = await backendsAvailable();
const backends: Backend[] = [
  {
    name: "SQLite",
    open: async () => {
      const dir = mkdtempSync(join(tmpdir(), "keyward-import-"));
      const store = new SqliteKeyStore({ filename: join(dir, "k.db") });
      return {
        store,
        cleanup: async () => {
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  ...(available
    ? [
        {
          name: "PostgreSQL",
          open: async () => {
            const { schema, drop } = await createTestSchema();
            const store = new PostgresKeyStore({ connectionString: DATABASE_URL, schema });
            return {
              store,
              cleanup: async () => {
                await store.close();
                await drop();
              },
            };
          },
        },
      ]
    : []),
];

describe.each(backends)("import and legacy keys on $name", ({ open }) => {
  let store: KeyStore;
  let cleanup: () => Promise<void>;
  let clock: ManualClock;
  let lookups: number;
  let keyward: Keyward;

  /** The store, with digest lookups counted. */
  const counted = (real: KeyStore): KeyStore =>
    new Proxy(real, {
      get(target, property, receiver) {
        if (property === "findKeyByDigest")
          return (digest: string) => {
            lookups++;
            return target.findKeyByDigest(digest);
          };
        const value = Reflect.get(target, property, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });

  beforeEach(async () => {
    ({ store, cleanup } = await open());
    await store.migrate();
    clock = new ManualClock(T0);
    lookups = 0;
    keyward = new Keyward({ store: counted(store), clock, legacyFormats: FORMATS, failedAttempts: false });
  });
  afterEach(async () => {
    await cleanup();
  });

  const run = (text: string, options: ImportOptions = {}) => keyward.importKeys(itemsOf(text), ctx, options);
  const owner = "user:alice";

  it("verifies a key of every digest variant after import, and plaintexts (Keyward and legacy) hashed on the way in", async () => {
    const keys = {
      hex: acmeKey(),
      base64: acmeKey(),
      base64url: acmeKey(),
      hmacHex: crmKey(),
      hmacBase64: crmKey(),
      hmacBase64url: crmKey(),
      plainLegacy: acmeKey(),
      plainCrm: crmKey(),
      plainKeyward: generateApiKey({ environment: "production" }),
    };
    const report = await run(
      jsonl([
        { external_id: "1", owner, digest: sha(keys.hex, "hex"), digest_variant: "sha256_hex", format: "acme", last4: keys.hex.slice(-4) },
        { external_id: "2", owner, digest: sha(keys.base64, "base64"), digest_variant: "sha256_base64", format: "acme" },
        { external_id: "3", owner, digest: sha(keys.base64url, "base64url"), digest_variant: "sha256_base64url", format: "acme" },
        {
          external_id: "4",
          owner,
          digest: hmac(keys.hmacHex, "hex"),
          digest_variant: "hmac_sha256",
          hmac_secret: "crm_pepper",
          format: "crm",
        },
        { external_id: "5", owner, digest: hmac(keys.hmacBase64, "base64"), digest_variant: "hmac_sha256", format: "crm" },
        { external_id: "6", owner, digest: hmac(keys.hmacBase64url, "base64url"), digest_variant: "hmac_sha256", format: "crm" },
        { external_id: "7", owner, key: keys.plainLegacy, scopes: ["read"] },
        { external_id: "8", owner, key: keys.plainCrm },
        { external_id: "9", owner, key: keys.plainKeyward, name: "carried over" },
      ]),
    );
    expect(report).toMatchObject({ records: 9, created: 9, unchanged: 0, failed: 0, completed: true, errors: [] });
    expect(report.createdByFormat).toEqual({ "legacy:acme": 4, "legacy:crm": 4, keyward: 1 });
    for (const [variant, key] of Object.entries(keys)) {
      const result = await keyward.verify(key);
      expect(result.code, variant).toBe("VALID");
    }
    const hex = await keyward.verify(keys.hex);
    if (!hex.valid) throw new Error("not valid");
    expect(toPublicKey(hex.record, clock.now())).toMatchObject({
      format: "legacy:acme",
      external_id: "1",
      environment: "production",
      ref: `acme_…${keys.hex.slice(-4)}`,
      owner: { type: "user", id: "alice" },
    });
    const carried = await keyward.verify(keys.plainKeyward);
    if (!carried.valid) throw new Error("not valid");
    expect(toPublicKey(carried.record, clock.now())).toMatchObject({ format: "keyward", external_id: "9", name: "carried over" });
    // Digests only: no plaintext is stored; legacy digests sit in their own namespace.
    for (const key of Object.values(keys)) {
      const result = await keyward.verify(key);
      if (!result.valid) throw new Error("not valid");
      expect(result.record.digest).not.toContain(key);
      expect(result.record.digest.startsWith("legacy:")).toBe(result.record.legacyFormat !== null);
    }
  });

  it("gives a legacy key every check a Keyward key gets: disabled, revoked, expired, environment, CIDR, scopes, limits", async () => {
    const k = {
      disabledKey: acmeKey(),
      disabledOwner: acmeKey(),
      revoked: acmeKey(),
      expired: acmeKey(),
      checks: acmeKey(),
      limited: acmeKey(),
    };
    const rec = (key: string, extra: object) => ({ key, owner, ...extra });
    const report = await run(
      jsonl([
        rec(k.disabledKey, { enabled: false }),
        rec(k.disabledOwner, { owner: "application:gone" }),
        rec(k.revoked, {}),
        rec(k.expired, { expires_at: "2025-12-31T00:00:00Z" }),
        rec(k.checks, { environment: "sandbox", scopes: ["read"], allowed_cidrs: ["10.0.0.0/8"] }),
        rec(k.limited, { rate_limit: { requests: 1, per_seconds: 60 } }),
      ]),
    );
    expect(report).toMatchObject({ created: 6, failed: 0 });
    expect((await keyward.verify(k.disabledKey)).code).toBe("DISABLED");
    await keyward.setOwnerDisabled({ type: "application", id: "gone" }, true, ctx);
    expect((await keyward.verify(k.disabledOwner)).code).toBe("DISABLED");
    const revoked = await keyward.verify(k.revoked);
    expect(revoked.code).toBe("VALID");
    await keyward.revokeKey(revoked.key?.id as string, "gone", ctx);
    expect((await keyward.verify(k.revoked)).code).toBe("REVOKED");
    expect((await keyward.verify(k.expired)).code).toBe("EXPIRED");
    expect((await keyward.verify(k.checks, { environment: "production", ip: "10.1.2.3" })).code).toBe("ENVIRONMENT_MISMATCH");
    expect((await keyward.verify(k.checks, { ip: "192.168.1.1" })).code).toBe("IP_NOT_ALLOWED");
    const denied = await keyward.verify(k.checks, { ip: "10.1.2.3", scopes: ["write"] });
    expect(denied).toMatchObject({ code: "INSUFFICIENT_SCOPE", missingScopes: ["write"] });
    expect((await keyward.verify(k.checks, { ip: "10.1.2.3", scopes: ["read"] })).code).toBe("VALID");
    expect((await keyward.verify(k.limited)).code).toBe("VALID");
    expect((await keyward.verify(k.limited)).code).toBe("RATE_LIMITED");
  });

  it("answers MALFORMED without a lookup for a string of no format, and never looks a Keyward-shaped string up as legacy", async () => {
    const kept = acmeKey();
    await run(jsonl([{ key: kept, owner }]));
    lookups = 0;
    const keywardKey = generateApiKey({ environment: "sandbox" });
    for (const presented of [
      "zzz_0123456789abcdef0123456789abcdef",
      "acme_", // the prefix alone
      "crm-0123", // not the pattern
      "crm-0123456789abcdef0123456789abcdeg",
      `${keywardKey.slice(0, -1)}${keywardKey.endsWith("A") ? "B" : "A"}`, // a Keyward key with a typo
      `kw_${kept}`,
      `${"acme_".padEnd(300, "x")}`, // longer than any key
    ])
      expect((await keyward.verify(presented)).code, presented).toBe("MALFORMED");
    expect(lookups).toBe(0);
    expect((await keyward.verify(acmeKey())).code).toBe("NOT_FOUND");
    expect(lookups).toBe(1);
    // A legacy format never claims the deployment's own prefix.
    expect(() => parseLegacyFormats('[{"name":"x","prefix":"kw_live_","digest":"sha256"}]', undefined, "kw")).toThrow(/overlaps/);
  });

  it("answers LEGACY_KEY_RETIRED after its format's sunset, and rotation issues a Keyward key", async () => {
    const retiring = oldKey();
    const report = await run(jsonl([{ key: retiring, owner, scopes: ["read"], external_id: "old-1" }]));
    expect(report.created).toBe(1);
    const before = await keyward.verify(retiring);
    expect(before.code).toBe("VALID");
    clock.set(Date.parse(SUNSET));
    expect((await keyward.verify(retiring)).code).toBe("LEGACY_KEY_RETIRED");
    // Revoked and expired keys still say so first; other formats are unaffected.
    const other = acmeKey();
    await run(jsonl([{ key: other, owner }]));
    expect((await keyward.verify(other)).code).toBe("VALID");

    const rotated = await keyward.rotateKey(before.key?.id as string, 3600, ctx);
    expect(rotated.key).toMatch(/^kw_live_/);
    expect(toPublicKey(rotated.record, clock.now())).toMatchObject({ format: "keyward", external_id: null, scopes: ["read"] });
    expect((await keyward.verify(rotated.key)).code).toBe("VALID");
    // Within the grace the old key is still retired; after it, revoked.
    expect((await keyward.verify(retiring)).code).toBe("LEGACY_KEY_RETIRED");
    clock.advance(3_600_001);
    expect((await keyward.verify(retiring)).code).toBe("REVOKED");
  });

  it("rotates a legacy key before its sunset with a grace: both work, the successor is a Keyward key", async () => {
    const key = acmeKey();
    await run(jsonl([{ key, owner }]));
    const found = await keyward.verify(key);
    const rotated = await keyward.rotateKey(found.key?.id as string, 60, ctx);
    expect(rotated.key.startsWith("kw_")).toBe(true);
    expect((await keyward.verify(key)).code).toBe("VALID");
    expect((await keyward.verify(rotated.key)).code).toBe("VALID");
  });

  it("is safe to repeat: a second run creates nothing and says so; a changed record is reported, not applied", async () => {
    const keys = [acmeKey(), acmeKey(), acmeKey()];
    const text = jsonl(keys.map((key, i) => ({ external_id: `u${i}`, owner, digest: sha(key, "hex"), digest_variant: "sha256_hex" })));
    const first = await run(text, { format: "acme" });
    expect(first).toMatchObject({ created: 3, unchanged: 0, failed: 0 });
    const second = await run(text, { format: "acme" });
    expect(second).toMatchObject({ records: 3, created: 0, unchanged: 3, failed: 0 });
    expect(await store.countKeys()).toBe(3);
    // The same external id with another secret, and the same secret under another external id: conflicts, by line.
    const third = await run(
      jsonl([
        { external_id: "u0", owner, key: acmeKey() },
        { external_id: "other", owner, key: keys[1] },
        { owner, key: keys[2] },
        { external_id: "u3", owner, key: acmeKey() },
      ]),
    );
    expect(third).toMatchObject({ created: 1, unchanged: 1, failed: 2 });
    expect(third.errors.map((e) => e.line)).toEqual([1, 2]);
    expect(third.errors[0]?.reason).toMatch(/external_id is already imported/);
    expect(third.errors[1]?.reason).toMatch(/this secret is already imported/);
    expect(await store.countKeys()).toBe(4);
  });

  it("two imports of the same records at once store each key once, and each says what it did", async () => {
    const text = jsonl(Array.from({ length: 40 }, (_, i) => ({ external_id: `c${i}`, owner, key: acmeKey() })));
    const other = new Keyward({ store, clock, legacyFormats: FORMATS, failedAttempts: false });
    const [a, b] = await Promise.all([run(text, { batchSize: 7 }), other.importKeys(itemsOf(text), ctx, { batchSize: 7 })]);
    expect(a.created + b.created).toBe(40);
    expect([a.created + a.unchanged, b.created + b.unchanged, a.failed + b.failed]).toEqual([40, 40, 0]);
    expect(await store.countKeys()).toBe(40);
  });

  it("a dry run validates and matches everything and writes nothing, duplicates across batches included", async () => {
    const keys = [acmeKey(), acmeKey(), acmeKey()];
    const records = [
      { external_id: "a", owner, key: keys[0] },
      { external_id: "b", owner, key: keys[1] },
      { external_id: "c", owner, key: keys[2] },
      { external_id: "a", owner, key: keys[0] }, // a repeat, in a later batch
      { external_id: "b", owner, key: acmeKey() }, // a conflict with line 2
      { owner: "nobody", key: acmeKey() },
    ];
    const events = (await store.listAuditEvents({}, 100, null)).events.length;
    const dry = await run(jsonl(records), { dryRun: true, batchSize: 2 });
    expect(dry).toMatchObject({ dryRun: true, records: 6, created: 3, unchanged: 1, failed: 2, auditEvent: null });
    expect(dry.errors.map((e) => e.line)).toEqual([5, 6]);
    expect(await store.countKeys()).toBe(0);
    expect((await store.listAuditEvents({}, 100, null)).events.length).toBe(events);
    expect((await keyward.verify(keys[0] as string)).code).toBe("NOT_FOUND");
    // The real run answers what the dry run said.
    const real = await run(jsonl(records), { batchSize: 2 });
    expect({ created: real.created, unchanged: real.unchanged, failed: real.failed, lines: real.errors.map((e) => e.line) }).toEqual({
      created: 3,
      unchanged: 1,
      failed: 2,
      lines: [5, 6],
    });
  });

  it("reports each bad record with its line and reason, never its key, and goes on", async () => {
    const good = [acmeKey(), acmeKey()];
    const secret = acmeKey();
    const text = [
      JSON.stringify({ owner, key: good[0] }),
      `{"owner": "${owner}", "key": "${secret}"`, // cut short: not JSON
      JSON.stringify({ owner, key: acmeKey(), scope: ["read"] }),
      JSON.stringify({ owner: "alice", key: acmeKey() }),
      "",
      JSON.stringify({ owner, key: "nobody-knows-this-format" }),
      JSON.stringify({ owner, digest: "abc", digest_variant: "sha256_hex", format: "acme" }),
      JSON.stringify({ owner, digest: sha(acmeKey(), "hex"), digest_variant: "sha256_hex" }),
      JSON.stringify({ owner, key: acmeKey(), expires_at: "tomorrow" }),
      JSON.stringify({ owner, key: acmeKey(), scopes: ["Not A Scope"] }),
      JSON.stringify({ owner, digest: sha(acmeKey(), "hex"), digest_variant: "hmac_sha256", format: "acme" }),
      "[1, 2]",
      JSON.stringify({ owner, key: good[1] }),
    ].join("\r\n");
    const report = await run(text);
    expect(report).toMatchObject({ records: 12, created: 2, failed: 10, completed: true });
    expect(report.errors.map((e) => e.line)).toEqual([2, 3, 4, 6, 7, 8, 9, 10, 11, 12]);
    expect(report.errors.map((e) => e.reason)).toEqual([
      "not valid JSON",
      "unknown field scope",
      "owner must be user:<id>, application:<id> or organization:<id>",
      expect.stringMatching(/no declared format/),
      "a sha256_hex digest is 64 hexadecimal characters",
      expect.stringMatching(/needs its legacy format/),
      expect.stringMatching(/^expires_at must be an RFC 3339/),
      expect.stringMatching(/^scopes\[0\]/),
      expect.stringMatching(/does not fit format acme/),
      "not a JSON object",
    ]);
    expect(JSON.stringify(report.errors)).not.toContain(secret);
    for (const key of good) expect((await keyward.verify(key)).code).toBe("VALID");
  });

  it("--strict stops at the first bad record: its batch and the rest are not written", async () => {
    const keys = Array.from({ length: 6 }, acmeKey);
    const records: object[] = keys.map((key) => ({ owner, key }));
    records.splice(4, 0, { owner, key: "unknown-format" });
    const report = await run(jsonl(records), { strict: true, batchSize: 3 });
    expect(report).toMatchObject({ completed: false, stoppedAtLine: 5, created: 3, failed: 1, records: 4 });
    expect(report.errors).toEqual([{ line: 5, reason: expect.stringMatching(/no declared format/) }]);
    expect(await store.countKeys()).toBe(3);
    const audit = (await store.listAuditEvents({ action: "keys.imported" }, 10, null)).events;
    expect(audit[0]?.details).toMatchObject({ completed: false, stopped_at_line: 5, created: 3 });
  });

  it("writes one audit event per import, with its counts, and none per key", async () => {
    const events = async () => (await store.listAuditEvents({}, 1000, null)).events;
    const before = (await events()).length;
    const records = Array.from({ length: 25 }, () => ({ owner, key: acmeKey() }));
    const report = await run(jsonl([...records, { owner: "x" }]), { batchSize: 10, source: "keys.jsonl" });
    const after = await events();
    expect(after.length).toBe(before + 1);
    expect(after[0]).toMatchObject({
      id: report.auditEvent?.id,
      action: "keys.imported",
      actor: ctx.actor,
      targetType: "system",
      targetId: report.importId,
      details: {
        source: "keys.jsonl",
        completed: true,
        records: 26,
        created: 25,
        unchanged: 0,
        failed: 1,
        created_by_format: { "legacy:acme": 25 },
      },
    });
    expect(JSON.stringify(after[0])).not.toContain(records[0]?.key);
  });

  it("reads CSV: quoted cells, list cells, metadata.<name> columns, with line numbers", async () => {
    const [a, b, c] = [acmeKey(), acmeKey(), acmeKey()];
    const csv = [
      "external_id,owner,name,environment,scopes,key,metadata.plan,created_at",
      `10,user:bob,"Bob, Inc.",sandbox,read write,${a},gold,2024-05-01T10:00:00Z`,
      `11,user:bob,"Multi ""quoted""",production,"[""read""]",${b},,`,
      `12,user:bob,short row`,
      `13,user:bob,Carol,production,read,${c},silver,2024-05-01`,
    ].join("\n");
    const report = await run(csv);
    expect(report).toMatchObject({ created: 2, failed: 2 });
    expect(report.errors).toEqual([
      { line: 4, reason: "3 cells where the header has 8 columns" },
      { line: 5, reason: expect.stringMatching(/^created_at/) },
    ]);
    const first = await keyward.verify(a);
    if (!first.valid) throw new Error("not valid");
    expect(toPublicKey(first.record, clock.now())).toMatchObject({
      name: "Bob, Inc.",
      environment: "sandbox",
      scopes: ["read", "write"],
      metadata: { plan: "gold" },
      created_at: "2024-05-01T10:00:00.000Z",
      external_id: "10",
    });
    const second = await keyward.verify(b);
    if (!second.valid) throw new Error("not valid");
    expect(second.record).toMatchObject({ name: 'Multi "quoted"', scopes: ["read"], metadata: {} });
  });

  it("revokes a leaked legacy key reported by its plaintext", async () => {
    const key = acmeKey();
    await run(jsonl([{ key, owner }]));
    const [result] = await keyward.reportLeaks([key], "pastebin", ctx);
    expect(result).toMatchObject({ outcome: "revoked" });
    expect((await keyward.verify(key)).code).toBe("REVOKED");
  });
});

describe("import races", () => {
  it("matches again a record another writer stored between the match and the write: the same key is unchanged, another key is reported", async () => {
    const { MemoryKeyStore } = await import("../../src/stores/memory/memory-key-store.js");
    const store = new MemoryKeyStore();
    const keyward = new Keyward({ store, clock: new ManualClock(T0), legacyFormats: FORMATS });
    const [same, taken, free] = [acmeKey(), acmeKey(), acmeKey()];
    const openImport = store.openImport.bind(store);
    // Another writer: right before this import's first write, it stores `same` (as this import would) and
    // a key under `taken`'s external id with another secret.
    let raced = false;
    store.openImport = async (options) => {
      const session = await openImport(options);
      return {
        ...session,
        insert: async (keys) => {
          if (!raced) {
            raced = true;
            const rival = await openImport({ dryRun: false });
            const [first, second] = keys as [KeyRecordType, KeyRecordType];
            await rival.insert([
              { ...first, id: "key_rivalrivalrival0001" },
              { ...second, id: "key_rivalrivalrival0002", digest: "legacy:sha256:another" },
            ]);
          }
          return session.insert(keys);
        },
      };
    };
    const report = await keyward.importKeys(
      itemsOf(
        jsonl([
          { external_id: "s", owner: "user:a", key: same },
          { external_id: "t", owner: "user:a", key: taken },
          { external_id: "f", owner: "user:a", key: free },
        ]),
      ),
      ctx,
    );
    expect(report).toMatchObject({ created: 1, unchanged: 1, failed: 1 });
    expect(report.errors).toEqual([{ line: 2, reason: "external_id is already imported as key_rivalrivalrival0002, with another secret" }]);
    expect(await store.countKeys()).toBe(3);
  });
});

describe("reading import files", () => {
  const read = async (chunks: string[], format?: "jsonl" | "csv") => {
    const items = [];
    for await (const item of readImportRecords(Readable.from(chunks.map((c) => Buffer.from(c))), format ? { format } : {}))
      items.push(item);
    return items;
  };

  it("reports a line longer than 1 MiB by its number without holding it, and reads on", async () => {
    const huge = `{"owner": "user:a", "name": "${"x".repeat(700_000)}`;
    const items = await read(['{"a": 1}\n', huge, huge, '"}\n{"b": 2}\n']);
    expect(items).toEqual([
      { line: 1, record: { a: 1 } },
      { line: 2, error: "a line longer than 1 MiB" },
      { line: 3, record: { b: 2 } },
    ]);
  });

  it("splits lines and multi-byte characters across chunks, and strips a byte-order mark", async () => {
    const text = '\uFEFF{"name": "Zoë"}\r\n\n{"name": "日本"}';
    const bytes = Buffer.from(text);
    const chunks = Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1));
    const items = [];
    for await (const item of readImportRecords(Readable.from(chunks))) items.push(item);
    expect(items).toEqual([
      { line: 1, record: { name: "Zoë" } },
      { line: 3, record: { name: "日本" } },
    ]);
  });

  it("reads a CSV cell over several lines, and reports a quote left open at the end", async () => {
    const items = await read(['owner,name\nuser:a,"two\nlines"\nuser:b,"open'], "csv");
    expect(items).toEqual([
      { line: 2, record: { owner: "user:a", name: "two\nlines" } },
      { line: 4, error: "a quoted cell is never closed" },
    ]);
  });
});
