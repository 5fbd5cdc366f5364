import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { generateApiKey } from "../../src/core/key-format.js";
import { Keyward } from "../../src/engine/keyward.js";
import { FailedAttemptLimiter } from "../../src/limits/failed-attempt-limiter.js";
import type { Verifier } from "../../src/middleware/http-edge.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";
import { rawRequest } from "../helpers/raw-http.js";
import { type RunningApp, startExpressApp, startFastifyApp, startHonoApp, startNodeApp } from "./apps.js";

// SECURITY.md 7 in-process: every adapter answers a client address over its failed attempts
// with the same 429 problem and Retry-After, and still serves a known key from it.

const ADAPTERS: [string, (verifier: Verifier) => Promise<RunningApp>][] = [
  ["fastify", startFastifyApp],
  ["express", startExpressApp],
  ["hono", startHonoApp],
  ["node:http", startNodeApp],
];

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe.each(ADAPTERS)("%s", (_name, start) => {
  it("past the limit a guessing address gets 429 TOO_MANY_FAILED_ATTEMPTS with Retry-After; a known key still passes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "keyward-mw-fa-"));
    const store = new SqliteKeyStore({ filename: join(dir, "k.db") });
    await store.migrate();
    const keyward = new Keyward({ store, failedAttempts: new FailedAttemptLimiter({ limit: 3, windowMs: 60_000 }) });
    const app = await start(keyward);
    cleanups.push(async () => {
      await app.close();
      await keyward.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const { key } = await keyward.createKey(
      { owner: { type: "user", id: "alice" }, name: "k", environment: "sandbox", scopes: ["read"] },
      { actor: { type: "cli", id: "test" } },
    );
    expect((await rawRequest(app.url, { path: "/read", headers: { "x-api-key": key } })).status).toBe(200);
    const guess = () =>
      rawRequest(app.url, { path: "/read", headers: { authorization: `Bearer ${generateApiKey({ environment: "sandbox" })}` } });
    for (let i = 0; i < 3; i++) expect((await guess()).status).toBe(401);
    const refused = await guess();
    expect(refused.status).toBe(429);
    expect(refused.headers["content-type"]).toContain("application/problem+json");
    expect(JSON.parse(refused.body).code).toBe("TOO_MANY_FAILED_ATTEMPTS");
    expect(Number(refused.headers["retry-after"])).toBeGreaterThan(0);
    expect((await rawRequest(app.url, { path: "/read", headers: { "x-api-key": key } })).status).toBe(200);
  });
});
