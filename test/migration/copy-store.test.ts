import { mkdtempSync, rmSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseHashSecrets } from "../../src/core/hashing.js";
import { copyStore } from "../../src/migration/copy-store.js";
import { exportStore } from "../../src/migration/export.js";
import { openRawStore } from "../../src/migration/raw-store.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";
import { SqliteUsageStore } from "../../src/stores/sqlite/sqlite-usage-store.js";
import { encodeUsageBatch } from "../../src/usage/usage-merge.js";
import { backendsAvailable, createTestSchema, DATABASE_URL } from "../helpers/backends.js";
import { OTHER_SECRET, openEngine, SECRET, seedStore, verifyAll } from "./helpers.js";

// docs/migrating.md, "Export and moving stores": keyward copy-store.

const available = await backendsAvailable();
const hashSecrets = parseHashSecrets(SECRET);

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "keyward-copy-store-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const sqliteUrl = (name: string) => `sqlite:${join(dir, name)}`;

async function copy(from: [string, string | null], to: [string, string | null], merge = false) {
  const source = await openRawStore(...from);
  const target = await openRawStore(...to);
  try {
    return await copyStore(source, target, { hashSecrets, merge, batchSize: 7 });
  } finally {
    await source.close();
    await target.close();
  }
}

/** The export's lines of these types (rows as stored), for comparing two stores. */
async function rowsOf(url: string, schema: string | null, types: string[]): Promise<string[]> {
  const store = await openRawStore(url, schema);
  const sink = new PassThrough();
  let text = "";
  sink.on("data", (chunk: Buffer) => {
    text += chunk.toString();
  });
  try {
    await exportStore(store, sink);
  } finally {
    await store.close();
  }
  return text
    .trimEnd()
    .split("\n")
    .filter((line) => types.includes((JSON.parse(line) as { type: string }).type));
}

describe("keyward copy-store between SQLite files", () => {
  it("refuses a target that holds data, and merges into it with --merge", async () => {
    const a = await seedStore(sqliteUrl("a.db"), null, 5, "a");
    const b = await seedStore(sqliteUrl("b.db"), null, 4, "b");
    await expect(copy([sqliteUrl("a.db"), null], [sqliteUrl("b.db"), null])).rejects.toMatchObject({
      code: "CONFLICT",
      message: expect.stringMatching(/not empty.*--merge/),
    });
    const report = await copy([sqliteUrl("a.db"), null], [sqliteUrl("b.db"), null], true);
    expect(report).toMatchObject({ ok: true, mode: "merge" });
    expect(report.rechainedAuditEvents).toBeGreaterThan(0);
    expect(report.auditChain.target.ok).toBe(true);
    expect(await verifyAll(sqliteUrl("b.db"), null, a)).toEqual({ valid: 4, revoked: "REVOKED" });
    expect(await verifyAll(sqliteUrl("b.db"), null, b)).toEqual({ valid: 3, revoked: "REVOKED" });
    // A second merge adds nothing and keeps the chain whole.
    const again = await copy([sqliteUrl("a.db"), null], [sqliteUrl("b.db"), null], true);
    expect(again.ok).toBe(true);
    expect(again.rechainedAuditEvents).toBe(0);
    expect(again.tables.find((t) => t.table === "keys")).toMatchObject({ source: 5, target: 9 });
  });

  it("refuses a target hashed under another KEYWARD_HASH_SECRET", async () => {
    await seedStore(sqliteUrl("a.db"), null, 2, "a");
    const other = await openEngine(sqliteUrl("b.db"), null, OTHER_SECRET);
    await other.close();
    await expect(copy([sqliteUrl("a.db"), null], [sqliteUrl("b.db"), null])).rejects.toMatchObject({ code: "HASH_SECRET_MISMATCH" });
  });
});

describe.skipIf(!available)("keyward copy-store SQLite → PostgreSQL → SQLite", () => {
  it("leaves every key verifiable and the audit chain intact, both ways", async () => {
    const { schema, drop } = await createTestSchema();
    try {
      const seeded = await seedStore(sqliteUrl("a.db"), null, 12, "a");
      // Usage a stopped service journaled but never folded: folded before the copy, not lost.
      const sqlite = new SqliteKeyStore({ filename: join(dir, "a.db") });
      const usage = new SqliteUsageStore(sqlite.db, { checkpointInWorker: false });
      const keyId = (seeded.keys[1] as { id: string }).id;
      await usage.journal.append(
        { id: "stopped-writer", host: hostname(), pid: 2 ** 31 - 1 },
        encodeUsageBatch([{ minute: 1_700_000_100_000, keyId, owner: "user:a-owner-1", outcome: "VALID", count: 5 }], []),
      );
      await usage.close();
      await sqlite.close();

      const there = await copy([sqliteUrl("a.db"), null], [DATABASE_URL, schema]);
      expect(there.ok).toBe(true);
      expect(there.auditChain.target).toEqual(there.auditChain.source);
      expect(there.sample.matched).toBe(12);
      expect(await verifyAll(DATABASE_URL, schema, seeded)).toEqual({ valid: 11, revoked: "REVOKED" });
      const onPostgres = await openRawStore(DATABASE_URL, schema);
      try {
        expect(
          await onPostgres.query(onPostgres.sql("SELECT count FROM usage_counts WHERE key_id = ? AND minute = ?"), [
            keyId,
            1_700_000_100_000,
          ]),
        ).toEqual([{ count: "5" }]);
      } finally {
        await onPostgres.close();
      }

      const back = await copy([DATABASE_URL, schema], [sqliteUrl("back.db"), null]);
      expect(back.ok).toBe(true);
      expect(back.auditChain.target).toEqual({ ok: true, events: there.auditChain.source.events });
      expect(await verifyAll(sqliteUrl("back.db"), null, seeded)).toEqual({ valid: 11, revoked: "REVOKED" });

      // Row for row the same as where it started: keys, owners, last uses, users, webhooks, audit, usage.
      const types = [
        "owner",
        "key",
        "key_last_use",
        "user",
        "organization_member",
        "key_request",
        "webhook_endpoint",
        "audit_event",
        "usage_count",
      ];
      expect(await rowsOf(sqliteUrl("back.db"), null, types)).toEqual(await rowsOf(sqliteUrl("a.db"), null, types));
      // An export of the PostgreSQL store says the same (integers as numbers, booleans as 0/1),
      // except for keys, whose last use PostgreSQL keeps in the keys table.
      const shared = ["owner", "user", "organization_member", "key_request", "webhook_endpoint", "audit_event", "usage_count"];
      expect(await rowsOf(DATABASE_URL, schema, shared)).toEqual(await rowsOf(sqliteUrl("a.db"), null, shared));

      // The target engine goes on appending to the copied chain.
      const engine = await openEngine(DATABASE_URL, schema);
      try {
        await engine.revokeKey((seeded.keys[0] as { id: string }).id, "after the move", { actor: { type: "cli", id: "test" } });
      } finally {
        await engine.close();
      }
      const pg = await openRawStore(DATABASE_URL, schema);
      try {
        const { verifyAuditChain } = await import("../../src/core/audit-chain.js");
        expect(await verifyAuditChain((after, limit) => pg.keys.readAuditChain(after, limit))).toEqual({
          ok: true,
          events: there.auditChain.source.events + 1,
        });
      } finally {
        await pg.close();
      }
    } finally {
      await drop();
    }
  });
});
