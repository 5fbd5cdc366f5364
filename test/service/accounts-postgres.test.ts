import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Accounts } from "../../src/engine/accounts.js";
import { Keyward } from "../../src/engine/keyward.js";
import { accountStoreFor } from "../../src/service/account-store-factory.js";
import { buildApp } from "../../src/service/app.js";
import { loadConfig } from "../../src/service/config.js";
import { createLogger } from "../../src/service/logger.js";
import { ServiceMetrics } from "../../src/service/metrics.js";
import { createAdminKey } from "../../src/service/open-keyward.js";
import { PostgresKeyStore } from "../../src/stores/postgres/postgres-key-store.js";
import { backendsAvailable, createTestSchema, DATABASE_URL } from "../helpers/backends.js";

const available = await backendsAvailable();

describe.skipIf(!available)("people and key requests on PostgreSQL", () => {
  let app: FastifyInstance;
  let store: PostgresKeyStore;
  let drop: () => Promise<void>;
  let keyward: Keyward;
  let url: string;

  /** Real HTTP on loopback: the service reads `headersDistinct`, which inject() does not provide. */
  async function call(method: string, path: string, headers: Record<string, string> = {}, payload?: unknown) {
    const response = await fetch(url + path, {
      method,
      headers: payload === undefined ? headers : { ...headers, "content-type": "application/json" },
      ...(payload === undefined ? {} : { body: JSON.stringify(payload) }),
    });
    const text = await response.text();
    return { statusCode: response.status, headers: response.headers, json: () => JSON.parse(text) as unknown };
  }

  beforeAll(async () => {
    const schema = await createTestSchema();
    drop = schema.drop;
    store = new PostgresKeyStore({ connectionString: DATABASE_URL, schema: schema.schema, maxConnections: 4 });
    await store.migrate();
    keyward = new Keyward({ store });
    const config = loadConfig({ KEYWARD_DATABASE_URL: DATABASE_URL });
    app = await buildApp({ keyward, config, logger: createLogger("error"), metrics: new ServiceMetrics() });
    await app.listen({ port: 0, host: "127.0.0.1" });
    url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
    await drop?.();
  });

  it("sets up the first admin, signs in, and carries a production key request from ask to pick-up", async () => {
    const accountStore = accountStoreFor(store);
    const token = await new Accounts(keyward, accountStore as NonNullable<typeof accountStore>).issueSetupToken();
    const setup = await call("POST", "/v1/setup", {}, { token, email: "admin@example.com", password: "correct horse battery" });
    expect(setup.statusCode).toBe(201);
    const cookie = String(setup.headers.get("set-cookie")).split(";")[0] as string;
    const csrf = (setup.json() as { csrf_token: string }).csrf_token;
    const userId = (setup.json() as { user: { id: string } }).user.id;
    const headers = { cookie, "x-csrf-token": csrf };

    const sandbox = await call("POST", "/v1/keys", headers, {
      owner: { type: "user", id: userId },
      name: "pg sandbox",
      environment: "sandbox",
      scopes: ["read"],
      concurrency: 4,
    });
    expect(sandbox.statusCode).toBe(201);
    const sandboxKey = sandbox.json() as { id: string; key: string };
    const asked = await call("POST", "/v1/key-requests", { authorization: `Bearer ${sandboxKey.key}` }, {});
    expect(asked.statusCode).toBe(201);
    const requestId = (asked.json() as { id: string }).id;
    const approved = await call("POST", `/v1/key-requests/${requestId}/approve`, headers, {});
    expect(approved.statusCode).toBe(200);
    const claimed = await call("POST", `/v1/key-requests/${requestId}/claim`, headers, {});
    expect(claimed.statusCode).toBe(201);
    const production = claimed.json() as { key: string; concurrency: number; environment: string };
    expect(production).toMatchObject({ environment: "production", concurrency: 4 });
    expect((await keyward.verify(production.key)).code).toBe("VALID");
    const admin = await createAdminKey(keyward, "pg admin", { type: "cli", id: "test" });
    const audit = await call("GET", "/v1/audit-events?action=key_request.approved", { authorization: `Bearer ${admin.key}` });
    expect((audit.json() as { data: unknown[] }).data).toHaveLength(1);
  });
});
