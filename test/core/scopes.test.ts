import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { findEscalatingScopes, findMissingScopes, isValidScope, scopeCovers } from "../../src/core/scopes.js";

describe("scope grammar", () => {
  it.each(["read", "write", "approvals:read", "approvals:*", "*", "a.b-c_d:e", "keys:verify"])("accepts %s", (scope) => {
    expect(isValidScope(scope)).toBe(true);
  });
  it.each(["", "Read", "a b", "a::b", ":a", "a:", "a:b*", "é", "x".repeat(129)])("refuses %j", (scope) => {
    expect(isValidScope(scope)).toBe(false);
  });
});

describe("scopeCovers", () => {
  it.each([
    ["read", "read", true],
    ["read", "write", false],
    ["approvals:*", "approvals:read", true],
    ["approvals:*", "approvals:read:own", true],
    ["approvals:*", "approvals", false],
    ["*", "anything:at:all", true],
    ["a:*:c", "a:b:c", true],
    ["a:*:c", "a:b:d", false],
    ["admin", "keys:write", true],
    ["admin", "audit:read", true],
    ["admin", "read", false],
    ["keys:*", "keys:verify", true],
  ])("%s covers %s: %s", (granted, required, expected) => {
    expect(scopeCovers(granted, required)).toBe(expected);
  });

  it("a scope always covers itself and * covers every scope (property)", () => {
    const segment = fc.stringMatching(/^[a-z0-9_.-]{1,8}$/);
    const scope = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join(":"));
    fc.assert(fc.property(scope, (s) => scopeCovers(s, s) && scopeCovers("*", s)));
  });
});

describe("findMissingScopes", () => {
  it("names every required scope not granted", () => {
    expect(findMissingScopes(["read", "approvals:*"], ["read", "approvals:write", "write", "billing:read"])).toEqual([
      "write",
      "billing:read",
    ]);
  });
});

describe("findEscalatingScopes", () => {
  it("a key cannot grant management rights it lacks", () => {
    expect(findEscalatingScopes(["keys:write"], ["admin", "keys:read", "read", "*", "keys:*"])).toEqual([
      "admin",
      "keys:read",
      "*",
      "keys:*",
    ]);
    expect(findEscalatingScopes(["admin"], ["admin", "*", "keys:*", "read"])).toEqual([]);
  });
});
