import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { AuditEvent } from "../../src/core/model.js";
import { generateId, generateRandomBase62 } from "../../src/core/random.js";
import { parseSecretsKeys, SecretBox } from "../../src/core/secret-box.js";
import type { KeyStore } from "../../src/ports/key-store.js";
import type { WebhookStore } from "../../src/ports/webhook-store.js";
import { planDeliveries } from "../../src/service/webhook-dispatcher.js";
import { PostgresKeyStore } from "../../src/stores/postgres/postgres-key-store.js";
import { PostgresWebhookStore } from "../../src/stores/postgres/postgres-webhook-store.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";
import { SqliteWebhookStore } from "../../src/stores/sqlite/sqlite-webhook-store.js";
import { backendsAvailable, createTestSchema, DATABASE_URL } from "../helpers/backends.js";
import { readDatabaseBytes } from "../helpers/canary.js";
import { makeAudit, makeKey } from "./key-store.contract.js";

// Issue 19, item 3: webhook signing secrets are sealed at rest (AES-256-GCM, KEYWARD_SECRETS_KEY,
// versioned); rows written in plaintext keep working and are sealed when rewritten.

interface Backend {
  keys: KeyStore;
  webhooks(box: SecretBox | null): WebhookStore;
  /** The secret column as stored. */
  raw(id: string): Promise<string>;
  setRaw(id: string, value: string): Promise<void>;
  /** Every byte the database holds on disk, where that can be read (SQLite). */
  bytes(): string | null;
  cleanup(): Promise<void>;
}

const box = (spec: string) => new SecretBox(parseSecretsKeys(spec));
const key = () => randomBytes(32).toString("hex");
const audit = (id: string): AuditEvent => ({ ...makeAudit("webhook.created", id), targetType: "webhook", changes: null });
const newEndpoint = () => ({
  id: generateId("whk"),
  url: "https://hooks.example.test/k",
  events: ["*"],
  description: null,
  secret: `whsec_${generateRandomBase62(32)}`,
  // Before the audit events of makeAudit, so they are delivered to it.
  createdAt: 0,
});

function secretsSuite(name: string, open: () => Promise<Backend>): void {
  describe(`webhook secrets at rest: ${name}`, () => {
    let b: Backend;
    beforeEach(async () => {
      b = await open();
      await b.keys.migrate();
      await b.webhooks(null).migrate();
    });
    afterEach(async () => {
      await b.cleanup();
    });

    it("with a key, the stored secret is v1: ciphertext and never the secret; reads and claims open it", async () => {
      const store = b.webhooks(box(`v1:${key()}`));
      const endpoint = newEndpoint();
      const created = await store.createEndpoint(endpoint, audit(endpoint.id));
      expect(created.secret).toBe(endpoint.secret);
      const stored = await b.raw(endpoint.id);
      expect(stored).toMatch(/^v1:[A-Za-z0-9_-]+$/);
      expect(stored).not.toContain(endpoint.secret.slice(6));
      expect((await store.getEndpoint(endpoint.id))?.secret).toBe(endpoint.secret);
      const k = makeKey();
      await b.keys.insertKey(k, makeAudit("key.created", k.id));
      await store.ingestAuditEvents(100, planDeliveries);
      const [claimed] = await store.claimDueDeliveries(Date.now() + 1_000, 10, 60_000);
      expect(claimed?.secret).toBe(endpoint.secret);
      const bytes = b.bytes();
      if (bytes !== null) expect(bytes).not.toContain(endpoint.secret.slice(6));
    });

    it("plaintext rows keep working with a key, and resealSecrets seals them (once)", async () => {
      const endpoint = newEndpoint();
      await b.webhooks(null).createEndpoint(endpoint, audit(endpoint.id));
      expect(await b.raw(endpoint.id)).toBe(endpoint.secret);
      const store = b.webhooks(box(key()));
      expect((await store.getEndpoint(endpoint.id))?.secret).toBe(endpoint.secret);
      expect(await store.resealSecrets()).toBe(1);
      expect(await store.resealSecrets()).toBe(0);
      expect(await b.raw(endpoint.id)).toMatch(/^v1:/);
      expect((await store.getEndpoint(endpoint.id))?.secret).toBe(endpoint.secret);
      // Without a key nothing is rewritten, and a sealed secret reads as unavailable, not as ciphertext.
      expect(await b.webhooks(null).resealSecrets()).toBe(0);
      expect((await b.webhooks(null).getEndpoint(endpoint.id))?.secret).toBeNull();
    });

    it("rotation: v2 first reads v1 rows and reseals them under v2; then v1 can be dropped", async () => {
      const [k1, k2] = [key(), key()];
      const endpoint = newEndpoint();
      await b.webhooks(box(`v1:${k1}`)).createEndpoint(endpoint, audit(endpoint.id));
      const both = b.webhooks(box(`v2:${k2},v1:${k1}`));
      expect((await both.getEndpoint(endpoint.id))?.secret).toBe(endpoint.secret);
      expect(await both.resealSecrets()).toBe(1);
      expect(await b.raw(endpoint.id)).toMatch(/^v2:/);
      expect((await b.webhooks(box(`v2:${k2}`)).getEndpoint(endpoint.id))?.secret).toBe(endpoint.secret);
      // A key that lacks the row's version cannot open it, and reseal leaves it alone.
      const wrong = b.webhooks(box(`v3:${key()}`));
      expect((await wrong.getEndpoint(endpoint.id))?.secret).toBeNull();
      expect(await wrong.resealSecrets()).toBe(0);
      expect(await b.raw(endpoint.id)).toMatch(/^v2:/);
    });

    it("a sealed secret copied into another endpoint's row does not open there", async () => {
      const store = b.webhooks(box(key()));
      const [first, second] = [newEndpoint(), newEndpoint()];
      await store.createEndpoint(first, audit(first.id));
      await store.createEndpoint(second, audit(second.id));
      await b.setRaw(second.id, await b.raw(first.id));
      expect((await store.getEndpoint(second.id))?.secret).toBeNull();
      expect((await store.getEndpoint(first.id))?.secret).toBe(first.secret);
    });
  });
}

secretsSuite("sqlite", async () => {
  const dir = mkdtempSync(join(tmpdir(), "keyward-secrets-"));
  const filename = join(dir, "k.db");
  const keys = new SqliteKeyStore({ filename });
  return {
    keys,
    webhooks: (secrets) => new SqliteWebhookStore(keys, { secrets }),
    raw: async (id) => (keys.db.prepare("SELECT secret FROM webhook_endpoints WHERE id = ?").pluck().get(id) as string) ?? "",
    setRaw: async (id, value) => {
      keys.db.prepare("UPDATE webhook_endpoints SET secret = ? WHERE id = ?").run(value, id);
    },
    bytes: () => readDatabaseBytes(filename),
    cleanup: async () => {
      await keys.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

const available = await backendsAvailable();

describe.skipIf(!available)("postgres", () => {
  secretsSuite("postgres", async () => {
    const { schema, drop } = await createTestSchema();
    const keys = new PostgresKeyStore({ connectionString: DATABASE_URL, schema });
    return {
      keys,
      webhooks: (secrets) => new PostgresWebhookStore(keys, { secrets }),
      raw: async (id) =>
        (await keys.pool.query<{ secret: string }>("SELECT secret FROM webhook_endpoints WHERE id = $1", [id])).rows[0]?.secret ?? "",
      setRaw: async (id, value) => {
        await keys.pool.query("UPDATE webhook_endpoints SET secret = $1 WHERE id = $2", [value, id]);
      },
      bytes: () => null,
      cleanup: async () => {
        await keys.close();
        await drop();
      },
    };
  });
});
