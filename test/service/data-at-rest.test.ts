import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { verifyWebhookSignature } from "../../src/core/webhook-signature.js";
import { loadConfig } from "../../src/service/config.js";
import { createLogger } from "../../src/service/logger.js";
import { createAdminKey } from "../../src/service/open-keyward.js";
import { type RunningService, startService } from "../../src/service/runtime.js";
import { readDatabaseBytes } from "../helpers/canary.js";
import { jsonHeaders } from "../helpers/service.js";
import { startWebhookReceiver, type WebhookReceiver } from "../helpers/webhook-receiver.js";

// Issue 19, item 3, through `keyward serve`'s own start-up (startService): the start-up log says
// when files are open to other users and when webhook secrets are stored in plaintext, and with
// KEYWARD_SECRETS_KEY a webhook's secret is sealed at rest yet every delivery is still signed with it.

const dirs: string[] = [];
const running: RunningService[] = [];
let receiver: WebhookReceiver | undefined;
afterEach(async () => {
  for (const service of running.splice(0)) await service.close();
  await receiver?.close();
  receiver = undefined;
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

interface Started {
  service: RunningService;
  adminKey: string;
  lines: { level: number; msg: string; [field: string]: unknown }[];
}

async function start(dbPath: string, env: Record<string, string> = {}): Promise<Started> {
  const config = {
    ...loadConfig({
      KEYWARD_DATABASE_URL: `sqlite:${dbPath}`,
      KEYWARD_WEBHOOK_POLL_MS: "50",
      KEYWARD_WEBHOOK_ALLOW_PRIVATE: "true",
      ...env,
    }),
    port: 0,
    host: "127.0.0.1",
  };
  const raw: string[] = [];
  const logger = createLogger(
    "info",
    new Writable({
      write(chunk, _encoding, done) {
        raw.push(String(chunk));
        done();
      },
    }),
  );
  const service = await startService(config, { logger, print: () => {} });
  running.push(service);
  const adminKey = (await createAdminKey(service.keyward, "test admin", { type: "cli", id: "test" })).key;
  const lines = raw
    .join("")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line));
  return { service, adminKey, lines };
}

async function call(s: Started, path: string, init: RequestInit = {}) {
  const response = await fetch(s.service.url + path, { ...init, headers: jsonHeaders(s.adminKey) });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "keyward-rest-"));
  dirs.push(dir);
  return dir;
}

const storedSecret = (dbPath: string, id: string): string => {
  const db = new Database(dbPath, { readonly: true });
  try {
    return db.prepare("SELECT secret FROM webhook_endpoints WHERE id = ?").pluck().get(id) as string;
  } finally {
    db.close();
  }
};

const PLAINTEXT_WARNING = /webhook signing secrets are stored in plaintext: set KEYWARD_SECRETS_KEY/;

describe("start-up warnings", () => {
  it("warns of a data folder and database file open to other users, and of plaintext webhook secrets", async () => {
    const folder = join(tempDir(), "data");
    mkdirSync(folder);
    chmodSync(folder, 0o755);
    const dbPath = join(folder, "keyward.db");
    const first = await start(dbPath);
    const warnings = first.lines.filter((line) => line.level === 40).map((line) => line.msg);
    expect(warnings).toContainEqual(`data folder ${folder} is open to other users (mode 0755): chmod 700 ${folder}`);
    expect(warnings.some((msg) => PLAINTEXT_WARNING.test(msg))).toBe(true);
    // The file was made by this start: 0600, so only the folder is named.
    expect(warnings.some((msg) => msg.startsWith("database file"))).toBe(false);
  });

  it("with KEYWARD_SECRETS_KEY and a private folder, no such warning", async () => {
    const s = await start(join(tempDir(), "data", "keyward.db"), { KEYWARD_SECRETS_KEY: randomBytes(32).toString("base64") });
    expect(s.lines.filter((line) => line.level >= 40)).toEqual([]);
  });
});

describe("webhook secrets at rest", () => {
  it("sealed under KEYWARD_SECRETS_KEY: absent from the database files, and every delivery is still signed with the secret", async () => {
    receiver = await startWebhookReceiver();
    const dbPath = join(tempDir(), "keyward.db");
    const s = await start(dbPath, { KEYWARD_SECRETS_KEY: `v1:${randomBytes(32).toString("hex")}` });
    const endpoint = (await call(s, "/v1/webhooks", { method: "POST", body: JSON.stringify({ url: receiver.url }) })).body as {
      id: string;
      secret: string;
    };
    expect(endpoint.secret).toMatch(/^whsec_/);
    await call(s, "/v1/keys", {
      method: "POST",
      body: JSON.stringify({ owner: { type: "user", id: "alice" }, name: "k", environment: "sandbox", scopes: [] }),
    });
    const [delivery] = await receiver.waitFor(1);
    expect(verifyWebhookSignature(delivery?.body as string, delivery?.headers["keyward-signature"] as string, endpoint.secret)).toBe(true);
    expect(storedSecret(dbPath, endpoint.id)).toMatch(/^v1:/);
    expect(readDatabaseBytes(dbPath)).not.toContain(endpoint.secret.slice(6));
  });

  it("a secret stored in plaintext before the key was set keeps working and is sealed at the next start", async () => {
    receiver = await startWebhookReceiver();
    const dbPath = join(tempDir(), "keyward.db");
    const before = await start(dbPath);
    const endpoint = (await call(before, "/v1/webhooks", { method: "POST", body: JSON.stringify({ url: receiver.url }) })).body as {
      id: string;
      secret: string;
    };
    expect(storedSecret(dbPath, endpoint.id)).toBe(endpoint.secret);
    await before.service.close();
    running.splice(0);

    const after = await start(dbPath, { KEYWARD_SECRETS_KEY: randomBytes(32).toString("hex") });
    expect(after.lines).toContainEqual(
      expect.objectContaining({ level: 30, count: 1, msg: "webhook secrets sealed under the current KEYWARD_SECRETS_KEY" }),
    );
    expect(storedSecret(dbPath, endpoint.id)).toMatch(/^v1:/);
    // The old cell was zeroed (secure_delete) and the WAL that held the plaintext page truncated.
    expect(readDatabaseBytes(dbPath)).not.toContain(endpoint.secret.slice(6));
    await call(after, "/v1/keys", {
      method: "POST",
      body: JSON.stringify({ owner: { type: "user", id: "alice" }, name: "k", environment: "sandbox", scopes: [] }),
    });
    const [delivery] = await receiver.waitFor(1, (r) => r.body.includes('"key.created"'));
    expect(verifyWebhookSignature(delivery?.body as string, delivery?.headers["keyward-signature"] as string, endpoint.secret)).toBe(true);
  });
});
