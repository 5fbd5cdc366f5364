import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { afterEach, beforeEach, expect, it } from "vitest";
import { Keyward } from "../../src/engine/keyward.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";
import { buildApprovalsApi } from "./app.js";

let dir: string;
let store: SqliteKeyStore;
let app: FastifyInstance;
let url: string;
let reader: string;
let writer: string;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "keyward-approvals-"));
  store = new SqliteKeyStore({ filename: join(dir, "k.db") });
  await store.migrate();
  const keyward = new Keyward({ store });
  const ctx = { actor: { type: "cli" as const, id: "example" } };
  reader = (
    await keyward.createKey(
      { owner: { type: "application", id: "dashboard" }, name: "reader", environment: "sandbox", scopes: ["read"] },
      ctx,
    )
  ).key;
  writer = (
    await keyward.createKey(
      { owner: { type: "application", id: "erp" }, name: "writer", environment: "sandbox", scopes: ["read", "write"] },
      ctx,
    )
  ).key;
  app = buildApprovalsApi(keyward);
  await app.listen({ port: 0, host: "127.0.0.1" });
  url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
});
afterEach(async () => {
  await app.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const call = (path: string, key: string | null, body?: unknown) =>
  fetch(url + path, {
    method: body === undefined ? "GET" : "POST",
    headers: { ...(key ? { authorization: `ApiKey ${key}` } : {}), ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

it("a write key creates and decides approvals; a read key lists them", async () => {
  const created = await call("/approvals", writer, { title: "New laptop" });
  expect(created.status).toBe(201);
  const approval = (await created.json()) as { id: string; requested_by: string };
  expect(approval.requested_by).toBe("application:erp");
  const pending = (await (await call("/approvals/not-complete", reader)).json()) as { data: { id: string }[] };
  expect(pending.data.map((a) => a.id)).toEqual([approval.id]);
  expect((await call(`/approvals/${approval.id}/status`, writer, { status: "approved" })).status).toBe(200);
  expect(((await (await call("/approvals/not-complete", reader)).json()) as { data: unknown[] }).data).toEqual([]);
});

it("a read key cannot write, and no key cannot read", async () => {
  const denied = await call("/approvals", reader, { title: "x" });
  expect(denied.status).toBe(403);
  expect(((await denied.json()) as { code: string }).code).toBe("INSUFFICIENT_SCOPE");
  expect((await call("/approvals/not-complete", null)).status).toBe(401);
});
