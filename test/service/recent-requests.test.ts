import { afterEach, describe, expect, it } from "vitest";
import { generateApiKey } from "../../src/core/key-format.js";
import { buildApp } from "../../src/service/app.js";
import { loadConfig } from "../../src/service/config.js";
import { createLogger } from "../../src/service/logger.js";
import { ServiceMetrics } from "../../src/service/metrics.js";
import { assembleKeyward, createAdminKey } from "../../src/service/open-keyward.js";
import { storesBeside } from "../../src/service/store-factory.js";
import { PostgresKeyStore } from "../../src/stores/postgres/postgres-key-store.js";
import { backendsAvailable, createTestSchema, DATABASE_URL } from "../helpers/backends.js";
import { createMember, sessionHeaders, setupAdmin } from "../helpers/people.js";
import { startTestService, type TestService } from "../helpers/service.js";

const available = await backendsAvailable();

/** What the scenario needs of a running service, whichever the database. */
interface Backend {
  url: string;
  adminKey: string;
  /** Rows of the key's log in the table itself. */
  storedRows(keyId: string): Promise<number>;
  /** Rows of the table whose route holds something key-shaped, or that belong to no key. */
  strayRows(): Promise<number>;
  /** The key's last use as the store holds it (null before a flush or fold writes it). */
  storedLastUse(keyId: string): Promise<number | null>;
  close(): Promise<void>;
}

const ENV = { KEYWARD_RECENT_REQUESTS: "5", KEYWARD_USAGE_FLUSH_MS: "60000" };

interface Entry {
  at: string;
  outcome: string;
  ip: string | null;
  route: string | null;
  missing_scopes: string[];
}

async function onSqlite(): Promise<Backend & { service: TestService }> {
  const service = await startTestService({ env: ENV });
  const db = service.store.db;
  return {
    service,
    url: service.url,
    adminKey: service.adminKey,
    storedRows: async (keyId) => (db.prepare("SELECT COUNT(*) AS n FROM recent_requests WHERE key_id = ?").get(keyId) as { n: number }).n,
    strayRows: async () =>
      (
        db
          .prepare(
            "SELECT COUNT(*) AS n FROM recent_requests WHERE key_id NOT LIKE 'key\\_%' ESCAPE '\\' OR route LIKE '%\\_test\\_%' ESCAPE '\\'",
          )
          .get() as {
          n: number;
        }
      ).n,
    storedLastUse: async (keyId) =>
      (db.prepare("SELECT at FROM key_last_use WHERE key_id = ?").get(keyId) as { at: number } | undefined)?.at ?? null,
    close: () => service.close(),
  };
}

async function onPostgres(): Promise<Backend> {
  const schema = await createTestSchema();
  const store = new PostgresKeyStore({ connectionString: DATABASE_URL, schema: schema.schema, maxConnections: 4 });
  await store.migrate();
  const config = { ...loadConfig({ KEYWARD_DATABASE_URL: DATABASE_URL, ...ENV }), port: 0, host: "127.0.0.1" };
  const metrics = new ServiceMetrics();
  const logger = createLogger("error");
  const keyward = assembleKeyward(config, await storesBeside(store), { metrics, logger });
  const app = await buildApp({ keyward, config, logger, metrics });
  await app.listen({ port: 0, host: "127.0.0.1" });
  const admin = await createAdminKey(keyward, "pg admin", { type: "cli", id: "test" });
  const count = async (sql: string, values: unknown[] = []) => Number((await store.pool.query<{ n: string }>(sql, values)).rows[0]?.n);
  return {
    url: `http://127.0.0.1:${(app.server.address() as { port: number }).port}`,
    adminKey: admin.key,
    storedRows: (keyId) => count("SELECT COUNT(*) AS n FROM recent_requests WHERE key_id = $1", [keyId]),
    strayRows: () => count("SELECT COUNT(*) AS n FROM recent_requests WHERE key_id NOT LIKE 'key\\_%' OR route LIKE '%\\_test\\_%'"),
    storedLastUse: async (keyId) => {
      const at = (await store.pool.query<{ last_used_at: string | null }>("SELECT last_used_at FROM keys WHERE id = $1", [keyId])).rows[0]
        ?.last_used_at;
      return at === null || at === undefined ? null : Number(at);
    },
    close: async () => {
      await app.close();
      await keyward.close();
      await schema.drop();
    },
  };
}

let backend: Backend | undefined;
afterEach(async () => {
  await backend?.close();
  backend = undefined;
});

const headers = (key: string, extra: Record<string, string> = {}) => ({ authorization: `Bearer ${key}`, ...extra });

async function call(path: string, init: RequestInit = {}) {
  const response = await fetch((backend as Backend).url + path, init);
  const text = await response.text();
  return { status: response.status, json: () => JSON.parse(text) as unknown, text };
}

async function createKey(body: Record<string, unknown> = {}): Promise<{ id: string; key: string }> {
  const response = await call("/v1/keys", {
    method: "POST",
    headers: { ...headers((backend as Backend).adminKey), "content-type": "application/json" },
    body: JSON.stringify({ owner: { type: "user", id: "alice" }, name: "log", environment: "sandbox", scopes: ["read"], ...body }),
  });
  expect(response.status, response.text).toBe(201);
  return response.json() as { id: string; key: string };
}

async function log(keyId: string, query = "", key = (backend as Backend).adminKey) {
  const response = await call(`/v1/keys/${keyId}/requests${query}`, { headers: headers(key) });
  expect(response.status, response.text).toBe(200);
  return response.json() as { kept: number; data: Entry[]; next_cursor: string | null };
}

/** The scenario both databases run: outcomes, routes, addresses and missing scopes, newest first, bounded to 5. */
async function scenario(b: Backend): Promise<void> {
  const { id, key } = await createKey();
  const authz = (extra: Record<string, string> = {}) => call("/v1/authz", { headers: { "x-api-key": key, ...extra } });
  expect((await authz()).status).toBe(200);
  expect((await authz({ "x-keyward-scopes": "orders:write read" })).status).toBe(403);
  // The proxy names the request it asks about; the query string (whatever it carries) is never kept.
  expect((await authz({ "x-original-method": "POST", "x-original-uri": "/orders/7?token=s3cret" })).status).toBe(200);
  const verified = await call("/v1/keys/verify", {
    method: "POST",
    headers: { ...headers(b.adminKey), "content-type": "application/json" },
    body: JSON.stringify({ key, scopes: ["read"], ip: "203.0.113.9" }),
  });
  expect((verified.json() as { code: string }).code).toBe("VALID");
  expect((await call("/v1/introspect", { headers: headers(key) })).status).toBe(200);

  const first = await log(id);
  expect(first.kept).toBe(5);
  expect(first.next_cursor).toBeNull();
  expect(first.data.map((entry) => [entry.outcome, entry.route, entry.ip, entry.missing_scopes])).toEqual([
    ["VALID", "GET /v1/introspect", "127.0.0.1", []],
    ["VALID", "verify", "203.0.113.9", []],
    ["VALID", "POST /orders/7", "127.0.0.1", []],
    ["INSUFFICIENT_SCOPE", "authz", "127.0.0.1", ["orders:write"]],
    ["VALID", "authz", "127.0.0.1", []],
  ]);
  const times = first.data.map((entry) => Date.parse(entry.at));
  expect([...times].sort((x, y) => y - x)).toEqual(times);

  // A key in the proxied path is redacted; a disabled key's denial is logged: the oldest entries go.
  expect((await authz({ "x-forwarded-method": "GET", "x-forwarded-uri": `/echo/${key}` })).status).toBe(200);
  const disabled = await call(`/v1/keys/${id}`, {
    method: "PATCH",
    headers: { ...headers(b.adminKey), "content-type": "application/json" },
    body: JSON.stringify({ enabled: false }),
  });
  expect(disabled.status).toBe(200);
  expect((await authz()).status).toBe(401);
  const second = await log(id);
  expect(second.data.map((entry) => [entry.outcome, entry.route])).toEqual([
    ["DISABLED", "authz"],
    ["VALID", "GET /echo/[REDACTED]"],
    ["VALID", "GET /v1/introspect"],
    ["VALID", "verify"],
    ["VALID", "POST /orders/7"],
  ]);
  for (let i = 0; i < 7; i++) await authz();
  expect((await log(id)).data).toHaveLength(5);
  expect(await b.storedRows(id)).toBe(5);

  // Pages, newest first, each entry once.
  const pages: Entry[][] = [];
  let cursor: string | null = "";
  while (cursor !== null) {
    const page: { data: Entry[]; next_cursor: string | null } = await log(id, `?limit=2${cursor ? `&cursor=${cursor}` : ""}`);
    pages.push(page.data);
    cursor = page.next_cursor;
  }
  expect(pages.map((page) => page.length)).toEqual([2, 2, 1]);
  expect(pages.flat()).toEqual((await log(id)).data);
  expect((await call(`/v1/keys/${id}/requests?cursor=nonsense`, { headers: headers(b.adminKey) })).status).toBe(400);

  // Missing and unknown keys have no log; nothing stored names no key or holds a key.
  await call("/v1/authz");
  await call("/v1/authz", { headers: { "x-api-key": generateApiKey({ prefix: "kw", environment: "sandbox" }) } });
  await log(id);
  expect(await b.strayRows()).toBe(0);
}

/** Used, then read at once: `last_used_at` is this process's unwritten use (the flush is a minute away). */
async function lastUsedAtOnce(b: Backend): Promise<void> {
  const { id, key } = await createKey({ owner: { type: "user", id: "zoe" } });
  expect((await call("/v1/authz", { headers: { "x-api-key": key } })).status).toBe(200);
  expect(await b.storedLastUse(id)).toBeNull();
  const read = (await call(`/v1/keys/${id}`, { headers: headers(b.adminKey) })).json() as { last_used_at: string; last_used_ip: string };
  expect(read.last_used_ip).toBe("127.0.0.1");
  expect(Date.now() - Date.parse(read.last_used_at)).toBeLessThan(60_000);
  const listed = (await call("/v1/keys?owner_id=zoe", { headers: headers(b.adminKey) })).json() as {
    data: { id: string; last_used_at: string | null; last_used_ip: string | null }[];
  };
  expect(listed.data.find((k) => k.id === id)).toMatchObject({ last_used_at: read.last_used_at, last_used_ip: "127.0.0.1" });
}

describe("recent requests of a key, SQLite", () => {
  it("logs outcomes, routes, addresses and missing scopes, newest first, at most KEYWARD_RECENT_REQUESTS a key", async () => {
    backend = await onSqlite();
    await scenario(backend);
  });

  it("shows last_used_at at once, before the usage flush writes it", async () => {
    backend = await onSqlite();
    await lastUsedAtOnce(backend);
  });

  it("is read as the key's usage is: a member sees their own keys' logs only", async () => {
    const b = await onSqlite();
    backend = b;
    const admin = await setupAdmin(b.service);
    const alice = await createMember(b.service, admin, "alice@example.com");
    const bob = await createMember(b.service, admin, "bob@example.com");
    const alicesKey = await createKey({ owner: { type: "user", id: alice.userId } });
    const bobsKey = await createKey({ owner: { type: "user", id: bob.userId } });
    await call("/v1/authz", { headers: { "x-api-key": alicesKey.key, "x-keyward-scopes": "write" } });
    const own = await call(`/v1/keys/${alicesKey.id}/requests`, { headers: sessionHeaders(b.service, alice) });
    expect(own.status).toBe(200);
    expect((own.json() as { data: Entry[] }).data).toEqual([
      expect.objectContaining({ outcome: "INSUFFICIENT_SCOPE", missing_scopes: ["write"] }),
    ]);
    expect((await call(`/v1/keys/${bobsKey.id}/requests`, { headers: sessionHeaders(b.service, alice) })).status).toBe(404);
    // A key without keys:read may not read any log, its own included.
    expect((await call(`/v1/keys/${alicesKey.id}/requests`, { headers: headers(alicesKey.key) })).status).toBe(403);
    expect((await call("/v1/keys/key_AAAAAAAAAAAAAAAAAAAA/requests", { headers: headers(b.adminKey) })).status).toBe(404);
  });
});

describe.skipIf(!available)("recent requests of a key, PostgreSQL", () => {
  it("logs outcomes, routes, addresses and missing scopes, newest first, at most KEYWARD_RECENT_REQUESTS a key", async () => {
    backend = await onPostgres();
    await scenario(backend);
  });

  it("shows last_used_at at once, before the usage flush writes it", async () => {
    backend = await onPostgres();
    await lastUsedAtOnce(backend);
  });
});
