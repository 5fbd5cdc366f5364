import { randomBytes } from "node:crypto";
import { BASE62_ALPHABET } from "./base62.js";

/** A source of random bytes; injected so tests can make keys deterministic. */
export type RandomBytes = (size: number) => Uint8Array;

export const cryptoRandomBytes: RandomBytes = (size) => randomBytes(size);

/**
 * Draws `length` base62 characters from a CSPRNG by rejection sampling (bytes >= 248 are
 * discarded), so every character is uniform: 62 × 4 = 248 and modulo bias never appears.
 */
export function generateRandomBase62(length: number, random: RandomBytes = cryptoRandomBytes): string {
  let out = "";
  while (out.length < length) {
    const bytes = random(length * 2);
    for (const byte of bytes) {
      if (byte >= 248) continue;
      out += BASE62_ALPHABET[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

/** Public identifiers: `key_…`, `evt_…`. 20 base62 characters ≈ 119 bits. */
export function generateId(kind: string, random: RandomBytes = cryptoRandomBytes): string {
  return `${kind}_${generateRandomBase62(20, random)}`;
}
