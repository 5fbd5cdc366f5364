import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { computeAuditHash } from "../../src/core/audit-chain.js";
import { hashSecretFingerprint, parseHashSecrets } from "../../src/core/hashing.js";
import { type ExportOptions, exportStore } from "../../src/migration/export.js";
import { openRawStore } from "../../src/migration/raw-store.js";
import { SECRET, type Seeded, seedStore } from "./helpers.js";

// docs/migrating.md, "Export and moving stores": keyward export.

let dir: string;
let url: string;
let seeded: Seeded;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "keyward-export-"));
  url = `sqlite:${join(dir, "keyward.db")}`;
  seeded = await seedStore(url, null, 6);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function exportText(options: ExportOptions = {}): Promise<string> {
  const store = await openRawStore(url);
  const sink = new PassThrough();
  let text = "";
  sink.on("data", (chunk: Buffer) => {
    text += chunk.toString();
  });
  try {
    await exportStore(store, sink, { pageSize: 2, ...options });
  } finally {
    await store.close();
  }
  return text;
}

// biome-ignore lint/suspicious/noExplicitAny: export lines read back, checked field by field
type Line = Record<string, any>;

const linesOf = (text: string) =>
  text
    .trimEnd()
    .split("\n")
    .map((line) => JSON.parse(line) as Line);

describe("keyward export", () => {
  it("writes a header, every record type, and an end line with the counts", async () => {
    const lines = linesOf(await exportText());
    const header = lines[0] as Line;
    expect(header).toMatchObject({ type: "header", format: "keyward-export", format_version: 1, store: "sqlite" });
    expect(header.schema_version).toBe(header.schema_migrations.length);
    expect(header.schema_migrations).toContain("core/0001_keys");
    const [secret] = parseHashSecrets(SECRET);
    expect(header.hash_secret_fingerprints).toEqual({ v1: hashSecretFingerprint(secret as never) });
    const end = lines[lines.length - 1] as Line;
    expect(end.type).toBe("end");
    const byType = (type: string) => lines.filter((l) => l.type === type).map((l) => l.row);
    expect(byType("key")).toHaveLength(6);
    expect(byType("owner").length).toBeGreaterThan(0);
    expect(byType("user")).toHaveLength(1);
    expect(byType("webhook_endpoint")).toHaveLength(1);
    expect(byType("usage_count")).toEqual([expect.objectContaining({ count: 7, outcome: "VALID" })]);
    expect(byType("key_last_use")).toEqual([expect.objectContaining({ ip: "10.1.2.3" })]);
    for (const [type, n] of Object.entries(end.counts)) expect(byType(type)).toHaveLength(n as number);
    // Keys carry their digests; the audit chain can be recomputed from the export alone.
    const ids = new Set(byType("key").map((k) => k.id));
    for (const { id } of [...seeded.keys, seeded.revoked]) expect(ids.has(id)).toBe(true);
    expect(byType("key").every((k) => typeof k.digest === "string" && k.digest.length > 0)).toBe(true);
    let previous = "0".repeat(64);
    const events = byType("audit_event");
    expect(events.length).toBeGreaterThan(6);
    for (const e of events) {
      expect(e.prev_hash).toBe(previous);
      const values = [
        e.id,
        e.at,
        e.actor_type,
        e.actor_id,
        e.action,
        e.target_type,
        e.target_id,
        e.ip,
        e.user_agent,
        e.request_id,
        e.changes,
        e.details,
      ];
      expect(computeAuditHash(e.prev_hash, values)).toBe(e.hash);
      previous = e.hash;
    }
  });

  it("never writes a plaintext key, and leaves out password hashes and webhook secrets unless asked", async () => {
    const text = await exportText();
    for (const { key } of [...seeded.keys, seeded.revoked]) {
      expect(text).not.toContain(key);
      // Not even the secret part after the prefix and ref.
      expect(text).not.toContain(key.slice(-20));
    }
    expect(text).not.toContain("password_hash");
    expect(text).not.toContain("whsec_a_secret");
    const user = linesOf(text).find((l) => l.type === "user")?.row;
    expect(user).toMatchObject({ email: "a@example.com" });
    const endpoint = linesOf(text).find((l) => l.type === "webhook_endpoint")?.row;
    expect(endpoint).toMatchObject({ id: "whe_a", url: "https://example.com/hook" });
    expect(endpoint).not.toHaveProperty("secret");

    const full = await exportText({ includeCredentials: true, includeSecrets: true });
    expect(linesOf(full)[0]).toMatchObject({ include_credentials: true, include_secrets: true });
    expect(linesOf(full).find((l) => l.type === "user")?.row.password_hash).toMatch(/\S/);
    expect(full).toContain("whsec_a_secret");
    for (const { key } of seeded.keys) expect(full).not.toContain(key);
  });
});
