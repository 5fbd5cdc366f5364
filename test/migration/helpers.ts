import type { Keyward } from "../../src/engine/keyward.js";
import { openRawStore } from "../../src/migration/raw-store.js";
import { loadConfig } from "../../src/service/config.js";
import { openKeyward } from "../../src/service/open-keyward.js";
import { storesBeside } from "../../src/service/store-factory.js";

export const SECRET = "6f0c1f6b3b2a4c1e9d8e7f60a1b2c3d4e5f60718293a4b5c";
export const OTHER_SECRET = "0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c";
export const CONTEXT = { actor: { type: "cli" as const, id: "test" } };

export function openEngine(url: string, schema: string | null = null, secret = SECRET): Promise<Keyward> {
  return openKeyward(
    loadConfig({ KEYWARD_DATABASE_URL: url, KEYWARD_HASH_SECRET: secret, ...(schema ? { KEYWARD_DATABASE_SCHEMA: schema } : {}) }),
  );
}

export interface Seeded {
  keys: { id: string; key: string }[];
  revoked: { id: string; key: string };
}

/** A store with keys (one revoked), a user, a webhook endpoint, usage counts and a last use. */
export async function seedStore(url: string, schema: string | null, count: number, tag = "a"): Promise<Seeded> {
  const keyward = await openEngine(url, schema);
  const keys: { id: string; key: string }[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const created = await keyward.createKey(
        {
          owner: { type: i % 2 ? "user" : "application", id: `${tag}-owner-${i % 5}` },
          name: `key ${tag} ${i}`,
          environment: i % 3 ? "sandbox" : "production",
          scopes: ["read", ...(i % 2 ? ["write"] : [])],
          expiresAt: null,
          rateLimit: i === 1 ? { requests: 10, per_seconds: 60 } : null,
          concurrency: null,
          quota: null,
          allowedCidrs: i === 2 ? ["10.0.0.0/8"] : [],
          metadata: { n: i },
        } as Parameters<Keyward["createKey"]>[0],
        CONTEXT,
      );
      keys.push({ id: created.record.id, key: created.key });
    }
    const revoked = keys.pop() as { id: string; key: string };
    await keyward.revokeKey(revoked.id, "test", CONTEXT);
    const { createUserFromCli } = await import("../../src/cli/users.js");
    const person = await createUserFromCli(keyward, { email: `${tag}@example.com`, context: CONTEXT });
    // An organization with shared limits, and the person as its owner (docs/organizations.md).
    const organization = { type: "organization" as const, id: `${tag}-org` };
    await keyward.createOwner(
      organization,
      { name: `Org ${tag}`, limits: { rateLimit: null, concurrency: 4, quota: { limit: 1000, period: "month" } } },
      CONTEXT,
    );
    const { buildAuditEvent } = await import("../../src/engine/audit.js");
    const { accountStoreFor } = await import("../../src/service/account-store-factory.js");
    await accountStoreFor(keyward.store)?.saveMembership(
      { organizationId: organization.id, userId: person.id, role: "owner", addedAt: 1_700_000_000_000, addedBy: "cli:test" },
      buildAuditEvent(CONTEXT, 1_700_000_000_000, "organization.member_added", { type: "owner", id: `organization:${organization.id}` }),
    );
    const stores = await storesBeside(keyward.store);
    const first = keys[0] as { id: string };
    await stores.usage.writeUsage(
      [{ minute: 1_700_000_040_000, keyId: first.id, owner: `application:${tag}-owner-0`, outcome: "VALID", count: 7 }],
      [{ keyId: first.id, at: 1_700_000_050_000, ip: "10.1.2.3" }],
    );
    await stores.usage.close?.();
    await stores.quotas.close?.();
    return { keys, revoked };
  } finally {
    await keyward.close();
    const raw = await openRawStore(url, schema);
    try {
      await raw.query(
        raw.sql("INSERT INTO webhook_endpoints (id, url, events, description, secret, created_at) VALUES (?, ?, ?, ?, ?, ?)"),
        [`whe_${tag}`, "https://example.com/hook", '["*"]', null, `whsec_${tag}_secret`, 1_700_000_000_000],
      );
    } finally {
      await raw.close();
    }
  }
}

/** Every seeded key verifies on the store at `url`; the revoked one answers REVOKED. */
export async function verifyAll(url: string, schema: string | null, seeded: Seeded): Promise<{ valid: number; revoked: string }> {
  const keyward = await openEngine(url, schema);
  try {
    let valid = 0;
    for (const { id, key } of seeded.keys) {
      const result = await keyward.verify(key, { skipLimits: true, ip: "10.0.0.1" });
      if (result.valid && result.key.id === id) valid++;
    }
    const revoked = await keyward.verify(seeded.revoked.key, { skipLimits: true });
    return { valid, revoked: revoked.code };
  } finally {
    await keyward.close();
  }
}
