import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { adminRoleBound, keyAuthority, memberBound, unboundedAuthority } from "../../src/authority/actors.js";
import { loosenedControls } from "../../src/authority/controls.js";
import { decide } from "../../src/authority/decide.js";
import type { Authority } from "../../src/authority/model.js";
import type { Environment } from "../../src/core/key-format.js";
import type { KeyRecord } from "../../src/core/model.js";
import { MANAGEMENT_SCOPES } from "../../src/core/scopes.js";
import { makeKey } from "../stores/key-store.contract.js";

const POLICY = { scopes: ["read", "write"], productionKeys: "request" as const };
const SCOPE_POOL = ["read", "write", "orders:read", "orders:*", "payments:refund", "*", "admin", ...MANAGEMENT_SCOPES];
const ENVIRONMENTS: Environment[] = ["sandbox", "production"];

/** The test's own scope matcher, written apart from src/core/scopes.ts. */
function covers(granted: string, required: string): boolean {
  if (granted === required) return true;
  if (granted === "admin") return (MANAGEMENT_SCOPES as readonly string[]).includes(required);
  const g = granted.split(":");
  const r = required.split(":");
  if (g[g.length - 1] === "*") return r.length >= g.length && g.slice(0, -1).every((segment, i) => segment === "*" || segment === r[i]);
  return g.length === r.length && g.every((segment, i) => segment === "*" || segment === r[i]);
}
const coveredBy = (held: readonly string[], scope: string) => held.some((have) => covers(have, scope));

const keyArbitrary = fc.record({
  scopes: fc.uniqueArray(fc.constantFrom(...SCOPE_POOL), { minLength: 1, maxLength: 4 }),
  environment: fc.constantFrom(...ENVIRONMENTS),
  delegation: fc.option(
    fc.record({
      scopes: fc.uniqueArray(fc.constantFrom(...SCOPE_POOL), { maxLength: 3 }),
      environments: fc.uniqueArray(fc.constantFrom(...ENVIRONMENTS), { minLength: 1, maxLength: 2 }),
    }),
    { nil: null },
  ),
});

describe("decide()", () => {
  it("never lets a non-admin key confer a scope, environment or management right it does not hold (property)", () => {
    fc.assert(
      fc.property(
        keyArbitrary,
        fc.uniqueArray(fc.constantFrom(...SCOPE_POOL), { minLength: 1, maxLength: 3 }),
        fc.constantFrom(...ENVIRONMENTS),
        (actor, scopes, environment) => {
          const key = makeKey({ ...actor, owner: { type: "application", id: "provisioner" } });
          const authority = keyAuthority(key, null, POLICY);
          const allowed = decide(authority, {
            type: "key.create",
            rights: { owner: { type: "application", id: "customer" }, environment, scopes, delegation: null },
          }).allowed;
          if (!allowed) return;
          const isAdmin = MANAGEMENT_SCOPES.every((m) => coveredBy(actor.scopes, m));
          if (isAdmin) return;
          // Its environment: the ceiling's, or its own.
          expect(actor.delegation?.environments ?? [actor.environment]).toContain(environment);
          for (const scope of scopes) {
            // Every management right the new key gets, the actor holds itself.
            for (const management of MANAGEMENT_SCOPES)
              if (covers(scope, management)) expect(coveredBy(actor.scopes, management)).toBe(true);
            // And the scope is within its ceiling, or within its own scopes.
            expect(coveredBy(actor.delegation?.scopes ?? actor.scopes, scope)).toBe(true);
          }
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it("lets a delegate rotate only keys whose rights it could confer (property)", () => {
    fc.assert(
      fc.property(keyArbitrary, keyArbitrary, (actor, target) => {
        const authority = keyAuthority(makeKey(actor), null, POLICY);
        const victim = makeKey(target);
        const rotate = decide(authority, { type: "key.rotate", key: victim }).allowed;
        const create = decide(authority, {
          type: "key.create",
          rights: { owner: victim.owner, environment: victim.environment, scopes: victim.scopes, delegation: victim.delegation },
        }).allowed;
        expect(rotate).toBe(create);
      }),
      { numRuns: 1_000 },
    );
  });

  it("leaves admin keys and the CLI unbounded, but not over a key awaiting pickup", () => {
    const admin = keyAuthority(makeKey({ scopes: ["admin"] }), null, POLICY);
    expect(admin.bounds).toEqual([]);
    const awaiting = makeKey({ environment: "production", awaitingPickup: true });
    expect(decide(admin, { type: "key.rotate", key: awaiting })).toMatchObject({ allowed: false, code: "KEY_AWAITING_PICKUP" });
    expect(decide(unboundedAuthority({ type: "cli", id: "root" }), { type: "key.revoke", key: awaiting }).allowed).toBe(true);
  });

  it("lets a member tighten but loosen only what it set itself", () => {
    const member: Authority = { actor: { type: "user", id: "usr_m" }, bounds: [memberBound("usr_m", POLICY)] };
    const key = makeKey({ owner: { type: "user", id: "usr_m" }, allowedCidrs: ["10.0.0.0/8"], enabled: false });
    const tighten = { type: "key.update" as const, key, changes: { allowedCidrs: ["10.1.0.0/16"] }, setByActor: {} };
    expect(decide(member, tighten).allowed).toBe(true);
    const loosen = { type: "key.update" as const, key, changes: { allowedCidrs: [], enabled: true }, setByActor: { allowedCidrs: true } };
    expect(decide(member, loosen)).toMatchObject({ allowed: false, message: expect.stringContaining("enabled") });
    expect(decide(member, { ...loosen, setByActor: { allowedCidrs: true, enabled: true } }).allowed).toBe(true);
    const someoneElses: KeyRecord = makeKey({ owner: { type: "user", id: "usr_other" } });
    expect(decide(member, { type: "key.read", key: someoneElses })).toMatchObject({ allowed: false, code: "RESOURCE_NOT_FOUND" });
  });

  it("gives members sandbox keys only, unless the operator allows direct production keys", () => {
    const rights = {
      owner: { type: "user" as const, id: "usr_m" },
      environment: "production" as const,
      scopes: ["read"],
      delegation: null,
    };
    const strict: Authority = { actor: { type: "user", id: "usr_m" }, bounds: [memberBound("usr_m", POLICY)] };
    const direct: Authority = {
      actor: { type: "user", id: "usr_m" },
      bounds: [memberBound("usr_m", { ...POLICY, productionKeys: "direct" })],
    };
    expect(decide(strict, { type: "key.create", rights }).allowed).toBe(false);
    expect(decide(direct, { type: "key.create", rights }).allowed).toBe(true);
  });

  it("creates administrators only with admin rights, and keeps an owner in step with its user", () => {
    const member = { management: ["keys:read", "keys:write"], scopes: ["read", "write"], environments: ["sandbox"] as Environment[] };
    const people = keyAuthority(makeKey({ scopes: ["users:write"] }), null, POLICY);
    expect(decide(people, { type: "user.create", role: "admin", member }).allowed).toBe(false);
    expect(decide(people, { type: "user.create", role: "member", member }).allowed).toBe(false);
    const session: Authority = { actor: { type: "user", id: "usr_a" }, bounds: [adminRoleBound(["*"])] };
    expect(decide(session, { type: "user.create", role: "admin", member }).allowed).toBe(true);
    const user = {
      id: "usr_x",
      email: "x@example.com",
      role: "member" as const,
      passwordHash: "",
      disabled: true,
      mustChangePassword: false,
      createdAt: 0,
      updatedAt: 0,
    };
    expect(decide(session, { type: "owner.update", owner: { type: "user", id: "usr_x" }, disabled: false, user, keys: [] })).toMatchObject({
      allowed: false,
      code: "OWNER_FOLLOWS_USER",
    });
  });

  it("ends a person's sessions only for callers no less mighty than that person", () => {
    const member = { management: ["keys:read", "keys:write"], scopes: ["read", "write"], environments: ["sandbox"] as Environment[] };
    const person = (role: "admin" | "member") => ({
      id: "usr_x",
      email: "x@example.com",
      role,
      passwordHash: "",
      disabled: false,
      mustChangePassword: false,
      createdAt: 0,
      updatedAt: 0,
    });
    const adminSession: Authority = { actor: { type: "user", id: "usr_a" }, bounds: [adminRoleBound(["*"])] };
    const memberSession: Authority = { actor: { type: "user", id: "usr_m" }, bounds: [memberBound("usr_m", POLICY)] };
    const usersOnly = keyAuthority(makeKey({ scopes: ["users:write"], owner: { type: "application", id: "p" } }), null, POLICY);
    const manager = keyAuthority(
      makeKey({
        scopes: ["users:write", "keys:read", "keys:write", "read", "write"],
        environment: "sandbox",
        owner: { type: "application", id: "p" },
      }),
      null,
      POLICY,
    );
    const ends = (authority: Authority, role: "admin" | "member", keys: KeyRecord[] = []) =>
      decide(authority, { type: "user.sessions", user: person(role), member, keys }).allowed;
    expect(ends(unboundedAuthority({ type: "admin_key", id: "key_admin" }), "admin")).toBe(true);
    expect(ends(adminSession, "admin")).toBe(true);
    expect(ends(adminSession, "member")).toBe(true);
    expect(ends(memberSession, "member")).toBe(false);
    expect(ends(usersOnly, "member")).toBe(false);
    expect(ends(manager, "member")).toBe(true);
    expect(ends(manager, "admin")).toBe(false);
    // A member holding a key beyond the caller's reach is mightier than it.
    const production = makeKey({ owner: { type: "user", id: "usr_x" }, environment: "production", scopes: ["read"] });
    expect(ends(manager, "member", [production])).toBe(false);
  });
});

describe("loosenedControls()", () => {
  const base = makeKey();
  it("names each control a change loosens, and none a change tightens", () => {
    expect(
      loosenedControls({ ...base, rateLimit: { requests: 5, per_seconds: 1 } }, { ...base, rateLimit: { requests: 10, per_seconds: 1 } }),
    ).toEqual(["rateLimit"]);
    expect(
      loosenedControls({ ...base, rateLimit: { requests: 5, per_seconds: 1 } }, { ...base, rateLimit: { requests: 5, per_seconds: 2 } }),
    ).toEqual([]);
    expect(loosenedControls({ ...base, allowedCidrs: ["10.0.0.0/8"] }, { ...base, allowedCidrs: ["10.2.0.0/16", "10.3.4.5"] })).toEqual([]);
    expect(loosenedControls({ ...base, allowedCidrs: ["10.0.0.0/8"] }, { ...base, allowedCidrs: ["11.0.0.0/8"] })).toEqual([
      "allowedCidrs",
    ]);
    expect(loosenedControls({ ...base, quota: { limit: 10, period: "day" } }, { ...base, quota: { limit: 10, period: "month" } })).toEqual([
      "quota",
    ]);
    expect(loosenedControls({ ...base, quota: { remaining: 10 } }, { ...base, quota: { remaining: 3 } })).toEqual([]);
    expect(loosenedControls({ ...base, expiresAt: 1_000 }, { ...base, expiresAt: null })).toEqual(["expiresAt"]);
    expect(loosenedControls({ ...base, concurrency: 1 }, { ...base, concurrency: null })).toEqual(["concurrency"]);
  });
});
