import { createHash, createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { hashApiKey } from "../../src/core/hashing.js";
import { API_KEY_PATTERN, computeKeyChecksum, formatKeyRef, generateApiKey, parseApiKey } from "../../src/core/key-format.js";
import { fuzz } from "../helpers/fuzz.js";

interface Vector {
  seed: number;
  prefix: string;
  environment: "sandbox" | "production";
  key: string;
  secret: string;
  checksum: string;
  ref: string;
  sha256: string;
  hmac_v1_test_secret: string;
}
const { vectors } = JSON.parse(readFileSync(join(import.meta.dirname, "..", "vectors", "key-format.json"), "utf8")) as {
  vectors: Vector[];
};

/** A reference CRC32 (IEEE 802.3, reflected, as zlib), written here so the test does not trust the code under test. */
function referenceCrc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}
function referenceBase62(value: number, width: number): string {
  const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  let out = "";
  for (let v = value; v > 0; v = Math.floor(v / 62)) out = alphabet[v % 62] + out;
  return out.padStart(width, "0");
}
const counter = (seed: number) => {
  let i = 0;
  return (n: number) => Uint8Array.from({ length: n }, () => (seed * 31 + i++ * 7) % 256);
};

describe("golden vectors", () => {
  for (const v of vectors) {
    it(`${v.prefix} ${v.environment} (seed ${v.seed})`, () => {
      expect(generateApiKey({ prefix: v.prefix, environment: v.environment, random: counter(v.seed) })).toBe(v.key);
      const body = v.key.slice(0, -6);
      expect(v.checksum).toBe(referenceBase62(referenceCrc32(new TextEncoder().encode(body)), 6));
      expect(computeKeyChecksum(body)).toBe(v.checksum);
      expect(formatKeyRef(v.key)).toBe(v.ref);
      expect(hashApiKey(v.key)).toBe(createHash("sha256").update(v.key).digest("base64url"));
      expect(hashApiKey(v.key)).toBe(v.sha256);
      expect(hashApiKey(v.key, { version: 1, secret: "test-secret" })).toBe(
        createHmac("sha256", "test-secret").update(v.key).digest("base64url"),
      );
      expect(hashApiKey(v.key, { version: 1, secret: "test-secret" })).toBe(v.hmac_v1_test_secret);
      expect(parseApiKey(v.key, v.prefix)).toEqual({
        prefix: v.prefix,
        environment: v.environment,
        secret: v.secret,
        checksum: v.checksum,
      });
    });
  }
});

describe("generateApiKey", () => {
  it("makes keys of the published shape with a 32-character base62 secret (≥ 190 bits)", () => {
    for (const environment of ["sandbox", "production"] as const) {
      const key = generateApiKey({ environment });
      const match = API_KEY_PATTERN.exec(key);
      expect(match?.[2]).toBe(environment === "production" ? "live" : "test");
      expect(match?.[3]).toHaveLength(32);
      expect(32 * Math.log2(62)).toBeGreaterThan(190);
    }
  });

  it("spreads characters uniformly enough (no modulo bias)", () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 2_000; i++)
      for (const c of (parseApiKey(generateApiKey({ environment: "sandbox" })) as { secret: string }).secret)
        counts.set(c, (counts.get(c) ?? 0) + 1);
    expect(counts.size).toBe(62);
    const expected = (2_000 * 32) / 62;
    for (const n of counts.values()) expect(Math.abs(n - expected) / expected).toBeLessThan(0.2);
  });

  it("refuses an invalid prefix", () => {
    expect(() => generateApiKey({ prefix: "K", environment: "sandbox" })).toThrow(RangeError);
  });
});

describe("parseApiKey (property tests)", () => {
  const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  const anyKey = fc
    .constantFrom("sandbox", "production")
    .map((environment) => generateApiKey({ environment: environment as "sandbox" | "production" }));

  it("round-trips every generated key", () => {
    fuzz(fc.property(anyKey, (key) => parseApiKey(key) !== null));
  });

  it("rejects any single-character substitution", () => {
    fuzz(
      fc.property(anyKey, fc.nat(), fc.constantFrom(...base62, "_", "-", " "), (key, position, replacement) => {
        const at = position % key.length;
        fc.pre(key[at] !== replacement);
        return parseApiKey(key.slice(0, at) + replacement + key.slice(at + 1)) === null;
      }),
    );
  });

  it("rejects any deletion, insertion or truncation", () => {
    fuzz(
      fc.property(anyKey, fc.nat(), fc.constantFrom(...base62), (key, position, inserted) => {
        const at = position % key.length;
        return (
          parseApiKey(key.slice(0, at) + key.slice(at + 1)) === null &&
          parseApiKey(key.slice(0, at) + inserted + key.slice(at)) === null &&
          parseApiKey(key.slice(0, at)) === null
        );
      }),
    );
  });

  it("rejects keys of another prefix, and arbitrary strings never throw", () => {
    const foreign = generateApiKey({ prefix: "other", environment: "sandbox" });
    expect(parseApiKey(foreign, "kw")).toBeNull();
    expect(parseApiKey(foreign, "other")).not.toBeNull();
    fuzz(fc.property(fc.string({ maxLength: 200 }), (text) => parseApiKey(text) === null || API_KEY_PATTERN.test(text)));
  });

  it("any string, of any characters and length, is refused without throwing unless it is a well-formed key", () => {
    const text = fc.oneof(
      fc.string({ unit: "grapheme", maxLength: 120 }),
      fc.string({ unit: "binary", maxLength: 120 }),
      fc.string({ maxLength: 5_000 }),
      fc.string({ unit: fc.constantFrom(...base62, "_"), minLength: 40, maxLength: 80 }).map((tail) => `kw_test_${tail}`),
    );
    fuzz(
      fc.property(text, fc.constantFrom("kw", "other", "a1"), (candidate, prefix) => {
        const parsed = parseApiKey(candidate, prefix);
        return parsed === null || (API_KEY_PATTERN.test(candidate) && candidate.startsWith(`${prefix}_`));
      }),
      { numRuns: 500 },
    );
  });
});
