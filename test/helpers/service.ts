import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import type { FastifyInstance } from "fastify";
import type { Keyward } from "../../src/engine/keyward.js";
import type { Clock } from "../../src/ports/clock.js";
import type { KeyStore } from "../../src/ports/key-store.js";
import { buildApp } from "../../src/service/app.js";
import { loadConfig, type ServiceConfig } from "../../src/service/config.js";
import { createLogger } from "../../src/service/logger.js";
import { ServiceMetrics } from "../../src/service/metrics.js";
import { assembleKeyward, createAdminKey } from "../../src/service/open-keyward.js";
import { storesBeside } from "../../src/service/store-factory.js";
import { WebhookDispatcher } from "../../src/service/webhook-dispatcher.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";
import { SqliteWebhookStore } from "../../src/stores/sqlite/sqlite-webhook-store.js";
import { findLeaks, readDatabaseBytes, recordForSweep } from "./canary.js";

/** Plaintext keys may appear only in these answers: the one response that creates them. */
export function isKeyIssuingExchange(exchange: { method: string; url: string; status: number }): boolean {
  return (
    exchange.method === "POST" &&
    exchange.status === 201 &&
    (exchange.url === "/v1/keys" ||
      /^\/v1\/keys\/[^/]+\/rotate$/.test(exchange.url) ||
      /^\/v1\/key-requests\/[^/]+\/claim$/.test(exchange.url))
  );
}

export interface RecordedExchange {
  method: string;
  url: string;
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface TestService {
  url: string;
  app: FastifyInstance;
  keyward: Keyward;
  store: SqliteKeyStore;
  metrics: ServiceMetrics;
  dir: string;
  dbPath: string;
  adminKey: string;
  /** Every log line the service wrote. */
  logs: string[];
  /** Every exchange made through `call`. */
  exchanges: RecordedExchange[];
  /** Keys obtained another way (e.g. read from a browser page), planted for the leak sweep too. */
  plant(key: string): void;
  /** fetch against the service, recorded for leak sweeps. */
  call(path: string, init?: RequestInit): Promise<{ status: number; headers: Headers; text: string; json: () => unknown }>;
  close(): Promise<void>;
}

export interface TestServiceOptions {
  env?: Record<string, string>;
  /** Pin the engine's time (e.g. so "simultaneous" requests share one instant on a loaded machine). */
  clock?: Clock;
  /** Wrap the real store (e.g. in a counting proxy). */
  wrapStore?: (store: SqliteKeyStore) => KeyStore;
  /** Run the webhook dispatcher (with the `KEYWARD_WEBHOOK_*` settings of `env`). Default false. */
  startWebhooks?: boolean;
}

/** A real Keyward service on a temporary SQLite file, listening on loopback, with its logs captured. */
export async function startTestService(options: TestServiceOptions = {}): Promise<TestService> {
  const dir = mkdtempSync(join(tmpdir(), "keyward-test-"));
  const dbPath = join(dir, "keyward.db");
  const config: ServiceConfig = { ...loadConfig({ KEYWARD_DATABASE_URL: `sqlite:${dbPath}`, ...options.env }), port: 0, host: "127.0.0.1" };
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const logger = createLogger("debug", sink);
  const store = new SqliteKeyStore({ filename: dbPath });
  await store.migrate();
  const metrics = new ServiceMetrics();
  const stores = await storesBeside(store);
  const keyward = assembleKeyward(
    config,
    { ...stores, keys: options.wrapStore ? options.wrapStore(store) : store },
    {
      metrics,
      logger,
      ...(options.clock ? { clock: options.clock } : {}),
    },
  );
  const webhooks = new SqliteWebhookStore(store);
  await webhooks.migrate();
  const dispatcher = options.startWebhooks ? new WebhookDispatcher(webhooks, config.webhooks, { metrics, logger }) : null;
  const app = await buildApp({ keyward, config: { ...config, logRequests: true }, logger, metrics, webhooks });
  await app.listen({ port: 0, host: "127.0.0.1" });
  const address = app.server.address();
  const url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  const admin = await createAdminKey(keyward, "test admin", { type: "cli", id: "test" });
  dispatcher?.start(keyward);
  const exchanges: RecordedExchange[] = [];
  const plantedElsewhere: string[] = [];
  return {
    url,
    app,
    keyward,
    store,
    metrics,
    dir,
    dbPath,
    adminKey: admin.key,
    logs,
    exchanges,
    plant: (key) => {
      plantedElsewhere.push(key);
    },
    async call(path, init = {}) {
      const response = await fetch(url + path, init);
      const text = await response.text();
      exchanges.push({
        method: init.method ?? "GET",
        url: path,
        status: response.status,
        headers: Object.fromEntries(response.headers),
        body: text,
      });
      return { status: response.status, headers: response.headers, text, json: () => JSON.parse(text) };
    },
    async close() {
      await app.close();
      await dispatcher?.close();
      await keyward.close();
      const planted = [
        admin.key,
        ...plantedElsewhere,
        ...exchanges.filter(isKeyIssuingExchange).map((e) => (JSON.parse(e.body) as { key: string }).key),
      ];
      recordForSweep({ kind: "planted", keys: planted });
      recordForSweep({ kind: "logs", text: logs.join("") });
      for (const exchange of exchanges.filter((e) => !isKeyIssuingExchange(e))) recordForSweep({ kind: "response", ...exchange });
      const inDatabase = findLeaks(readDatabaseBytes(dbPath), planted);
      if (inDatabase.length > 0) recordForSweep({ kind: "database-leak", count: inDatabase.length, dbPath });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const jsonHeaders = (key: string): Record<string, string> => ({
  authorization: `Bearer ${key}`,
  "content-type": "application/json",
});

/** Creates a key through the HTTP API as the admin; returns the plaintext and the key object. */
export async function createKeyOverHttp(
  service: TestService,
  body: Record<string, unknown> = {},
): Promise<{ key: string; id: string; [field: string]: unknown }> {
  const response = await service.call("/v1/keys", {
    method: "POST",
    headers: jsonHeaders(service.adminKey),
    body: JSON.stringify({ owner: { type: "user", id: "alice" }, name: "test key", environment: "sandbox", scopes: ["read"], ...body }),
  });
  if (response.status !== 201) throw new Error(`create failed: ${response.status} ${response.text}`);
  return response.json() as { key: string; id: string };
}

/** Wraps the real store so each digest lookup is reported: proves a refused key never reached it. */
export function countDigestLookups(store: KeyStore, onLookup: () => void): KeyStore {
  return new Proxy(store, {
    get(target, property, receiver) {
      if (property === "findKeyByDigest") {
        return (digest: string) => {
          onLookup();
          return target.findKeyByDigest(digest);
        };
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
