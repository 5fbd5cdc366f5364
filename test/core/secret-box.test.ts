import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isSealed, parseSecretsKeys, SecretBox } from "../../src/core/secret-box.js";
import { loadConfig } from "../../src/service/config.js";
import { fuzz } from "../helpers/fuzz.js";

const hexKey = () => randomBytes(32).toString("hex");
const base64Key = () => randomBytes(32).toString("base64");

describe("KEYWARD_SECRETS_KEY", () => {
  it("takes one key (version 1) or vN:key entries, current first, as 64 hex digits or base64 of 32 bytes", () => {
    const one = hexKey();
    expect(parseSecretsKeys(one)).toEqual([{ version: 1, key: Buffer.from(one, "hex") }]);
    const [a, b] = [base64Key(), hexKey()];
    expect(parseSecretsKeys(`v2:${a}, v1:${b}`).map((k) => k.version)).toEqual([2, 1]);
    expect(parseSecretsKeys(undefined)).toEqual([]);
    expect(parseSecretsKeys("")).toEqual([]);
  });

  it("refuses short keys, passphrases, bad versions and duplicates at start, naming the setting", () => {
    for (const bad of [
      "correct horse battery staple",
      randomBytes(16).toString("hex"),
      randomBytes(31).toString("base64"),
      `v0:${hexKey()}`,
      `v1:${hexKey()},v1:${hexKey()}`,
      `v1:${hexKey()},${hexKey()}`,
    ]) {
      expect(() => parseSecretsKeys(bad), bad).toThrow(/KEYWARD_SECRETS_KEY/);
      expect(() => loadConfig({ KEYWARD_SECRETS_KEY: bad }), bad).toThrow(expect.objectContaining({ code: "INVALID_CONFIGURATION" }));
    }
    expect(loadConfig({ KEYWARD_SECRETS_KEY: hexKey() }).secretsKeys).toHaveLength(1);
  });
});

describe("SecretBox (AES-256-GCM)", () => {
  it("seals to v<version>: text that opens only with its key and its context", () => {
    const v1 = parseSecretsKeys(`v1:${hexKey()}`);
    const box = new SecretBox(v1);
    const sealed = box.seal("whsec_abc", "webhook_endpoint:whk_1");
    expect(sealed).toMatch(/^v1:[A-Za-z0-9_-]+$/);
    expect(isSealed(sealed)).toBe(true);
    expect(isSealed("whsec_abc")).toBe(false);
    expect(sealed).not.toContain("whsec_abc");
    expect(box.open(sealed, "webhook_endpoint:whk_1")).toBe("whsec_abc");
    // Another row's context, a flipped byte, or another key: refused, not garbage.
    expect(() => box.open(sealed, "webhook_endpoint:whk_2")).toThrow();
    const raw = Buffer.from(sealed.slice(3), "base64url");
    raw[20] = (raw[20] as number) ^ 1;
    expect(() => box.open(`v1:${raw.toString("base64url")}`, "webhook_endpoint:whk_1")).toThrow();
    expect(() => new SecretBox(parseSecretsKeys(`v1:${hexKey()}`)).open(sealed, "webhook_endpoint:whk_1")).toThrow();
    // Sealing twice gives two texts (a fresh nonce each time).
    expect(box.seal("whsec_abc", "c")).not.toBe(box.seal("whsec_abc", "c"));
  });

  it("rotates: a new current key seals, the old one still opens, and isCurrent tells what to rewrite", () => {
    const old = parseSecretsKeys(`v1:${hexKey()}`);
    const current = parseSecretsKeys(`v2:${hexKey()}`);
    const before = new SecretBox(old);
    const after = new SecretBox([...current, ...old]);
    const sealedOld = before.seal("whsec_x", "c");
    expect(after.open(sealedOld, "c")).toBe("whsec_x");
    expect(after.isCurrent(sealedOld)).toBe(false);
    const sealedNew = after.seal("whsec_x", "c");
    expect(sealedNew.startsWith("v2:")).toBe(true);
    expect(after.isCurrent(sealedNew)).toBe(true);
    expect(() => before.open(sealedNew, "c")).toThrow(/version 2/);
  });

  it("any secret and context round-trip", () => {
    const box = new SecretBox(parseSecretsKeys(base64Key()));
    fuzz(
      fc.property(fc.string({ unit: "grapheme", maxLength: 200 }), fc.string({ maxLength: 60 }), (secret, context) => {
        return box.open(box.seal(secret, context), context) === secret;
      }),
      { numRuns: 500 },
    );
  });
});
