/** Base62 alphabet used everywhere in Keyward: digits, then upper case, then lower case. */
export const BASE62_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/**
 * Writes a non-negative integer in base62, most significant digit first, left-padded with `0`
 * to `width` characters.
 */
export function encodeBase62Fixed(value: number, width: number): string {
  let rest = value;
  let out = "";
  while (rest > 0) {
    out = BASE62_ALPHABET[rest % 62] + out;
    rest = Math.floor(rest / 62);
  }
  return out.padStart(width, "0");
}
