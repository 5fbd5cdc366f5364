import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { findEscalatingScopes, findMissingScopes, isValidScope, scopeCovers } from "../../src/core/scopes.js";
import { fuzz } from "../helpers/fuzz.js";

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
    fuzz(fc.property(scope, (s) => scopeCovers(s, s) && scopeCovers("*", s)));
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

describe("scope matching (property)", () => {
  const segment = fc.oneof(fc.stringMatching(/^[a-z0-9_.-]{1,6}$/), fc.constant("*"));
  const scope = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join(":"));
  const concrete = fc.array(fc.stringMatching(/^[a-z0-9_.-]{1,6}$/), { minLength: 1, maxLength: 4 }).map((s) => s.join(":"));
  const anything = fc.oneof(scope, fc.string({ maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 20 }));

  it("never throws on any input, valid or not", () => {
    fuzz(
      fc.property(fc.array(anything, { maxLength: 5 }), fc.array(anything, { maxLength: 5 }), (granted, required) => {
        isValidScope(required[0] ?? "");
        findMissingScopes(granted, required);
        findEscalatingScopes(granted, required);
        return true;
      }),
    );
  });

  it("missing scopes are exactly the required ones no granted scope covers", () => {
    fuzz(
      fc.property(fc.array(scope, { maxLength: 5 }), fc.array(concrete, { maxLength: 5 }), (granted, required) => {
        const missing = findMissingScopes(granted, required);
        return required.every((need) => missing.includes(need) === !granted.some((have) => scopeCovers(have, need)));
      }),
    );
  });

  it("a trailing * covers exactly the longer scopes under it; a * inside covers exactly one segment", () => {
    fuzz(
      fc.property(concrete, concrete, (base, tail) => {
        const under = `${base}:${tail}`;
        const oneDeeper = `${base}:${tail.split(":")[0]}`;
        return (
          scopeCovers(`${base}:*`, under) &&
          !scopeCovers(`${base}:*`, base) &&
          scopeCovers(`*:${tail}`, `x:${tail}`) === true &&
          (tail.includes(":") ? !scopeCovers(`*:${tail}`, `x:y:${tail}`) : true) &&
          scopeCovers(`${base}:*`, oneDeeper)
        );
      }),
    );
  });

  it("a concrete granted scope covers only itself (no prefix or case tricks)", () => {
    fuzz(
      fc.property(
        concrete,
        concrete,
        (granted, required) => scopeCovers(granted, required) === (granted === required) || granted === "admin",
      ),
    );
  });
});
