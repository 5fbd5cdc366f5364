import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseLegacyFormats } from "../../src/core/legacy-formats.js";
import { readImportRecords } from "../../src/engine/import-records.js";
import { Keyward } from "../../src/engine/keyward.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";
import { rawRequest } from "../helpers/raw-http.js";
import { type RunningApp, startExpressApp } from "./apps.js";

// docs/middleware.md (Carriers): a Bearer token of a declared legacy format is a key; any other
// token without the deployment's prefix stays foreign (an SSO's JWT), as before.
const FORMATS = parseLegacyFormats(
  JSON.stringify([
    { name: "acme", prefix: "acme_", digest: "sha256_hex" },
    { name: "crm", pattern: "crm-[0-9a-f]{32}", digest: "sha256_hex" },
  ]),
  undefined,
  "kw",
);
const random = (label: string) => createHash("sha256").update(`${label} ${Math.random()}`).digest("hex");
const acmeKey = `acme_${random("acme").slice(0, 40)}`;
const crmKey = `crm-${random("crm").slice(0, 32)}`;
// A realistic JWT: longer than any key, three base64url parts.
const jwt = `eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.${Buffer.from(JSON.stringify({ sub: "alice", pad: "x".repeat(300) })).toString("base64url")}.${"s".repeat(86)}`;

let dir: string;
let keyward: Keyward;
let app: RunningApp;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "keyward-legacy-bearer-"));
  const store = new SqliteKeyStore({ filename: join(dir, "k.db") });
  await store.migrate();
  keyward = new Keyward({ store, legacyFormats: FORMATS, failedAttempts: false });
  const records = [acmeKey, crmKey].map((key) => JSON.stringify({ owner: "user:alice", key, scopes: ["read"] })).join("\n");
  const report = await keyward.importKeys(readImportRecords(Readable.from([Buffer.from(records)])), {
    actor: { type: "cli", id: "test" },
  });
  expect(report.created).toBe(2);
  app = await startExpressApp(keyward);
});
afterAll(async () => {
  await app?.close();
  await keyward?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("legacy keys as Authorization: Bearer (express)", () => {
  it("a Bearer token of a declared format, by prefix or pattern, verifies as a key", async () => {
    for (const key of [acmeKey, crmKey]) {
      const response = await rawRequest(app.url, { path: "/read", headers: { authorization: `Bearer ${key}` } });
      expect(response.status, key.slice(0, 5)).toBe(200);
      expect(JSON.parse(response.body)).toMatchObject({ owner: "alice" });
    }
    // An unknown key of a format is looked up and not found: ours, not foreign.
    const unknown = await rawRequest(app.url, { path: "/optional", headers: { authorization: `Bearer acme_${random("x")}` } });
    expect(unknown.status).toBe(401);
    expect(JSON.parse(unknown.body).code).toBe("NOT_FOUND");
  });

  it("a JWT-looking Bearer token answers as before: MALFORMED where a key is required, left to the app in optional mode", async () => {
    for (const token of [jwt, "eyJhbGciOiJIUzI1NiJ9.e30.c2ln"]) {
      const required = await rawRequest(app.url, { path: "/read", headers: { authorization: `Bearer ${token}` } });
      expect(required.status).toBe(401);
      expect(JSON.parse(required.body).code).toBe("MALFORMED");
      const optional = await rawRequest(app.url, { path: "/optional", headers: { authorization: `Bearer ${token}` } });
      expect(optional.status).toBe(200);
      expect(JSON.parse(optional.body)).toEqual({ key: null, owner: null });
    }
  });
});
