import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { keyAuthority, portalBound, unboundedAuthority } from "../../src/authority/actors.js";
import { decide } from "../../src/authority/decide.js";
import type { Action, Authority } from "../../src/authority/model.js";
import type { KeyRequestRecord } from "../../src/core/accounts.js";
import type { Environment } from "../../src/core/key-format.js";
import type { OwnerRef } from "../../src/core/model.js";
import { makeKey } from "../stores/key-store.contract.js";

// The portal bound (docs/authority.md, "Portal sessions"), action by action: its owner's keys
// only, the policy's scopes and environments, an expiry within the longest, production only by
// an approved request when allowed, no management action; and opening a session, decided as
// delegating is.

const OWNER: OwnerRef = { type: "application", id: "customer-1" };
const OTHER: OwnerRef = { type: "application", id: "customer-2" };
const NOW = Date.UTC(2026, 5, 1);
const DAY = 86_400_000;
const MEMBER_POLICY = { scopes: ["read", "write"], productionKeys: "request" as const };

function portal(
  policy: Partial<{ scopes: string[]; environments: Environment[]; maxExpiresInDays: number; mayRequestProduction: boolean }> = {},
): Authority {
  return {
    actor: { type: "portal", id: "pts_test" },
    bounds: [
      portalBound(OWNER, { scopes: ["read"], environments: ["sandbox"], maxExpiresInDays: 30, mayRequestProduction: false, ...policy }),
    ],
  };
}

const create = (
  rights: Partial<{ owner: OwnerRef; environment: Environment; scopes: string[] }>,
  at: number | null = NOW + 10 * DAY,
): Action => ({
  type: "key.create",
  rights: { owner: OWNER, environment: "sandbox", scopes: ["read"], delegation: null, ...rights },
  expiry: { at, now: NOW },
});

const request = (owner: OwnerRef): KeyRequestRecord => ({
  id: "kreq_1",
  sandboxKeyId: "key_sandbox",
  owner,
  requestedBy: { type: "key", id: "key_sandbox" },
  reason: null,
  status: "approved",
  createdAt: NOW,
  decidedAt: NOW,
  decidedBy: null,
  decisionReason: null,
  issuedKeyId: "key_issued",
  claimedAt: null,
  asked: null,
});

describe("the portal bound", () => {
  it("creates its owner's keys within the policy, with an expiry within the longest", () => {
    expect(decide(portal(), create({}))).toEqual({ allowed: true });
    expect(decide(portal(), create({ scopes: ["write"] })).allowed).toBe(false);
    expect(decide(portal(), create({ environment: "production" })).allowed).toBe(false);
    expect(decide(portal(), create({ owner: OTHER })).allowed).toBe(false);
    expect(decide(portal(), create({}, null)).allowed).toBe(false);
    expect(decide(portal(), create({}, NOW + 31 * DAY)).allowed).toBe(false);
    expect(
      decide(portal(), { type: "key.create", rights: { owner: OWNER, environment: "sandbox", scopes: ["read"], delegation: null } })
        .allowed,
    ).toBe(false);
    const ceiling: Action = {
      type: "key.create",
      rights: { owner: OWNER, environment: "sandbox", scopes: ["read"], delegation: { scopes: ["read"], environments: ["sandbox"] } },
      expiry: { at: NOW + DAY, now: NOW },
    };
    expect(decide(portal(), ceiling).allowed).toBe(false);
  });

  it("never confers a management scope, whatever the policy names (property)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("keys:read", "keys:write", "users:write", "audit:read", "portal:create", "admin", "*", "keys:*"),
        (scope) => {
          expect(decide(portal({ scopes: ["read", scope] }), create({ scopes: [scope] })).allowed).toBe(false);
        },
      ),
    );
  });

  it("reaches its owner's keys only: another's is 404", () => {
    const theirs = makeKey({ owner: OTHER });
    for (const type of ["key.read", "key.revoke", "key.rotate"] as const)
      expect(decide(portal(), { type, key: theirs } as Action)).toMatchObject({ allowed: false, code: "RESOURCE_NOT_FOUND" });
    const mine = makeKey({ owner: OTHER.id === "x" ? OTHER : OWNER });
    expect(decide(portal(), { type: "key.revoke", key: mine })).toEqual({ allowed: true });
    expect(decide(portal(), { type: "key.rotate", key: mine })).toEqual({ allowed: true });
  });

  it("rotates only what it could confer: production only when it may ask for production", () => {
    const production = makeKey({ owner: OWNER, environment: "production", scopes: ["read"] });
    expect(decide(portal(), { type: "key.rotate", key: production }).allowed).toBe(false);
    expect(decide(portal({ mayRequestProduction: true }), { type: "key.rotate", key: production })).toEqual({ allowed: true });
    const wider = makeKey({ owner: OWNER, scopes: ["read", "payments:refund"] });
    expect(decide(portal({ mayRequestProduction: true }), { type: "key.rotate", key: wider }).allowed).toBe(false);
  });

  it("asks for and picks up production keys only when allowed, for its owner only", () => {
    const sandbox = makeKey({ owner: OWNER });
    expect(decide(portal(), { type: "key_request.create", sandbox, forItself: false }).allowed).toBe(false);
    expect(decide(portal({ mayRequestProduction: true }), { type: "key_request.create", sandbox, forItself: false })).toEqual({
      allowed: true,
    });
    const claim = (owner: OwnerRef, may: boolean) =>
      decide(portal({ mayRequestProduction: may }), {
        type: "key_request.claim",
        request: request(owner),
        claimant: { type: "portal", id: "pts_test", owner: OWNER },
      });
    expect(claim(OWNER, true)).toEqual({ allowed: true });
    expect(claim(OWNER, false).allowed).toBe(false);
    expect(claim(OTHER, true)).toMatchObject({ allowed: false, code: "RESOURCE_NOT_FOUND" });
  });

  it("takes no management action", () => {
    const key = makeKey({ owner: OWNER });
    const actions: Action[] = [
      {
        type: "key_request.approve",
        request: request(OWNER),
        asked: { name: "k", scopes: ["read"], rateLimit: null, concurrency: null, quota: null, allowedCidrs: [], metadata: {} },
      },
      { type: "key_request.reject", request: request(OWNER) },
      { type: "user.create", role: "member", member: { management: [], scopes: ["read"], environments: ["sandbox"] } },
      { type: "owner.update", owner: OWNER, disabled: true, user: null, keys: [key] },
      { type: "keys.import" },
      { type: "webhooks.manage" },
      { type: "audit.read" },
      { type: "users.read" },
      { type: "leaks.report" },
      { type: "portal_session.create", owner: OWNER, scopes: ["read"], environments: ["sandbox"] },
      { type: "portal_session.manage", openedBy: OWNER, caller: OWNER },
    ];
    for (const action of actions) expect(decide(portal({ mayRequestProduction: true }), action).allowed, action.type).toBe(false);
  });
});

describe("opening a portal session", () => {
  const open = (scopes: string[], environments: Environment[]): Action => ({
    type: "portal_session.create",
    owner: OWNER,
    scopes,
    environments,
  });

  it("is decided as delegating is: within the opener's ceiling", () => {
    const provisioning = keyAuthority(
      makeKey({
        scopes: ["portal:create"],
        environment: "production",
        delegation: { scopes: ["read", "write"], environments: ["sandbox"] },
      }),
      null,
      MEMBER_POLICY,
    );
    expect(decide(provisioning, open(["read", "write"], ["sandbox"]))).toEqual({ allowed: true });
    expect(decide(provisioning, open(["read", "payments:refund"], ["sandbox"]))).toMatchObject({ allowed: false, code: "FORBIDDEN" });
    expect(decide(provisioning, open(["read"], ["production"])).allowed).toBe(false);
    expect(decide(unboundedAuthority({ type: "admin_key", id: "key_admin" }), open(["payments:refund"], ["production"]))).toEqual({
      allowed: true,
    });
    const membersKey = keyAuthority(
      makeKey({ owner: { type: "user", id: "bob" }, scopes: ["portal:create", "read"] }),
      "member",
      MEMBER_POLICY,
    );
    expect(decide(membersKey, open(["read"], ["sandbox"])).allowed).toBe(false);
  });

  it("is read and revoked by an admin, or a key of the opener's owner (others: 404)", () => {
    const key = keyAuthority(makeKey({ scopes: ["portal:create"] }), null, MEMBER_POLICY);
    expect(decide(key, { type: "portal_session.manage", openedBy: OWNER, caller: OWNER })).toEqual({ allowed: true });
    expect(decide(key, { type: "portal_session.manage", openedBy: OWNER, caller: OTHER })).toMatchObject({ code: "RESOURCE_NOT_FOUND" });
    expect(decide(key, { type: "portal_session.manage", openedBy: null, caller: OWNER })).toMatchObject({ code: "RESOURCE_NOT_FOUND" });
    expect(
      decide(unboundedAuthority({ type: "admin_key", id: "key_admin" }), { type: "portal_session.manage", openedBy: null, caller: null }),
    ).toEqual({
      allowed: true,
    });
  });
});
