import { describe, expect, it } from "vitest";
import { newKeyRecord } from "../../src/core/new-key-record.js";

describe("newKeyRecord", () => {
  const base = {
    id: "key_aaaaaaaaaaaaaaaaaaaaaa",
    secret: { digest: "d", hashVersion: 0, ref: "kw_test_abcd…wxyz" },
    name: "n",
    owner: { type: "user" as const, id: "alice" },
    environment: "sandbox" as const,
    now: 1_000,
  };

  it("starts unused, unrevoked, unreplaced, with no grace, as its own lineage", () => {
    const record = newKeyRecord({ ...base, scopes: ["read", "read", "write"] });
    expect(record).toMatchObject({
      scopes: ["read", "write"],
      enabled: true,
      createdAt: 1_000,
      updatedAt: 1_000,
      expiresAt: null,
      revokedAt: null,
      revokedReason: null,
      lastUsedAt: null,
      lastUsedIp: null,
      rateLimit: null,
      concurrency: null,
      quota: null,
      allowedCidrs: [],
      metadata: {},
      rotatedFrom: null,
      replacedBy: null,
      graceEndsAt: null,
      lineageId: base.id,
    });
  });

  it("drops a used, revoked or replaced key's history when built from it (rotation, approval)", () => {
    const used = {
      ...newKeyRecord({ ...base, scopes: ["read"], rateLimit: { requests: 5, per_seconds: 1 } }),
      lastUsedAt: 900,
      lastUsedIp: "192.0.2.1",
      revokedAt: 950,
      replacedBy: "key_bbbbbbbbbbbbbbbbbbbbbb",
      graceEndsAt: 990,
    };
    const successor = newKeyRecord({
      ...used,
      id: "key_cccccccccccccccccccccc",
      secret: base.secret,
      now: 2_000,
      rotatedFrom: used.id,
      lineageId: used.lineageId,
    });
    expect(successor).toMatchObject({
      rateLimit: { requests: 5, per_seconds: 1 },
      lastUsedAt: null,
      lastUsedIp: null,
      revokedAt: null,
      replacedBy: null,
      graceEndsAt: null,
      rotatedFrom: used.id,
      lineageId: used.id,
      createdAt: 2_000,
    });
    // Its arrays are its own.
    expect(successor.scopes).not.toBe(used.scopes);
  });
});
