import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RequestContext } from "../../src/core/model.js";
import { generateId } from "../../src/core/random.js";
import { Keyward } from "../../src/engine/keyward.js";
import { ManualClock } from "../../src/ports/clock.js";
import type { LimitDecision, LimitEnforcer } from "../../src/ports/limits.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";

/**
 * A limiter for adapter tests: keys say in their metadata which limit denies them, and every
 * allowed request holds a slot until the adapter releases it. It stands in for the limits port
 * only; storage is the real SQLite store.
 */
export class ScriptedLimits implements LimitEnforcer {
  inFlight = 0;
  released = 0;
  private readonly leases = new Map<string, () => void>();
  async enforce(key: { metadata: Record<string, unknown> }): Promise<LimitDecision> {
    const rateLimit = { limit: 10, remaining: 9, resetSeconds: 1 };
    switch (key.metadata.deny) {
      case "rate":
        return { allowed: false, code: "RATE_LIMITED", retryAfterSeconds: 7, rateLimit: { limit: 10, remaining: 0, resetSeconds: 7 } };
      case "concurrency":
        return { allowed: false, code: "CONCURRENCY_LIMITED", retryAfterSeconds: 1 };
      case "quota":
        return { allowed: false, code: "QUOTA_EXCEEDED", retryAfterSeconds: 3600 };
    }
    this.inFlight++;
    const id = generateId("lease");
    let held = true;
    const release = () => {
      if (!held) return;
      held = false;
      this.leases.delete(id);
      this.inFlight--;
      this.released++;
    };
    this.leases.set(id, release);
    return { allowed: true, rateLimit, lease: { id, expiresAt: Date.now() + 60_000 }, release };
  }
  async inspect() {
    return {};
  }
  /** The explicit release a remote verifier sends through the service. */
  async releaseLease(_key: unknown, leaseId: string) {
    const release = this.leases.get(leaseId);
    release?.();
    return release !== undefined;
  }
  async close() {}
}

export interface Fixture {
  keyward: Keyward;
  limits: ScriptedLimits;
  keys: Record<string, string>;
  close(): Promise<void>;
}

const ctx: RequestContext = { actor: { type: "cli", id: "test" } };

/** A real engine on a temporary SQLite file with one key per outcome. */
export async function createFixture(): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), "keyward-mw-"));
  const store = new SqliteKeyStore({ filename: join(dir, "k.db") });
  await store.migrate();
  const clock = new ManualClock(Date.now());
  const limits = new ScriptedLimits();
  const keyward = new Keyward({ store, clock, limits });
  const make = async (extra: Record<string, unknown> = {}) =>
    (
      await keyward.createKey(
        // A concurrency limit on every key, so the engine hands every request to the scripted limiter.
        { owner: { type: "user", id: "alice" }, name: "k", environment: "sandbox", scopes: ["read"], concurrency: 1_000, ...extra },
        ctx,
      )
    ).key;
  const keys: Record<string, string> = {
    valid: await make(),
    production: await make({ environment: "production" }),
    noScope: await make({ scopes: ["other"] }),
    cidr: await make({ allowedCidrs: ["10.0.0.0/8"] }),
    rate: await make({ metadata: { deny: "rate" } }),
    concurrency: await make({ metadata: { deny: "concurrency" } }),
    quota: await make({ metadata: { deny: "quota" } }),
    verifier: await make({ scopes: ["keys:verify"], owner: { type: "application", id: "gateway" } }),
  };
  // No limits: once cached, decided in the request's own tick (verifyInline), with no limiter.
  keys.plain = (
    await keyward.createKey({ owner: { type: "user", id: "alice" }, name: "p", environment: "sandbox", scopes: ["read"] }, ctx)
  ).key;
  const disabled = await keyward.createKey(
    { owner: { type: "user", id: "alice" }, name: "d", environment: "sandbox", scopes: ["read"] },
    ctx,
  );
  await keyward.updateKey(disabled.record.id, { enabled: false }, ctx);
  keys.disabled = disabled.key;
  const revoked = await keyward.createKey(
    { owner: { type: "user", id: "alice" }, name: "r", environment: "sandbox", scopes: ["read"] },
    ctx,
  );
  await keyward.revokeKey(revoked.record.id, null, ctx);
  keys.revoked = revoked.key;
  keys.expired = await make({ expiresAt: clock.now() + 1_000 });
  clock.advance(2_000);
  const valid = keys.valid as string;
  keys.badChecksum = valid.slice(0, -1) + (valid.endsWith("A") ? "B" : "A");
  // Well-formed, never issued: the checksum is recomputed by the engine's own generator.
  const { generateApiKey } = await import("../../src/core/key-format.js");
  keys.unknown = generateApiKey({ environment: "sandbox" });
  return {
    keyward,
    limits,
    keys,
    close: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export type Carrier = "apikey" | "bearer" | "x-api-key" | "basic";
export const CARRIERS: Carrier[] = ["apikey", "bearer", "x-api-key", "basic"];

export function carrierHeaders(carrier: Carrier, key: string): Record<string, string> {
  switch (carrier) {
    case "apikey":
      return { authorization: `ApiKey ${key}` };
    case "bearer":
      return { authorization: `Bearer ${key}` };
    case "x-api-key":
      return { "x-api-key": key };
    case "basic":
      return { authorization: `Basic ${Buffer.from(`${key}:`).toString("base64")}` };
  }
}

/** [key name, route, expected status, expected code] — every outcome an adapter must map. */
export const OUTCOME_CASES: [string, string, number, string][] = [
  ["valid", "/read", 200, "VALID"],
  ["badChecksum", "/read", 401, "MALFORMED"],
  ["unknown", "/read", 401, "NOT_FOUND"],
  ["disabled", "/read", 401, "DISABLED"],
  ["revoked", "/read", 401, "REVOKED"],
  ["expired", "/read", 401, "EXPIRED"],
  ["valid", "/production", 403, "ENVIRONMENT_MISMATCH"],
  ["cidr", "/read", 403, "IP_NOT_ALLOWED"],
  ["noScope", "/read", 403, "INSUFFICIENT_SCOPE"],
  ["rate", "/read", 429, "RATE_LIMITED"],
  ["concurrency", "/read", 429, "CONCURRENCY_LIMITED"],
  ["quota", "/read", 429, "QUOTA_EXCEEDED"],
];
