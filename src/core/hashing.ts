import { createHash, createHmac, hash as nodeHash } from "node:crypto";

/**
 * A server secret for keyed hashing, tagged with a version so it can be rotated: digests made
 * with an older version still verify while keys are re-issued.
 */
export interface HashSecret {
  version: number;
  secret: string;
}

/**
 * Keys carry ≥ 190 random bits, so a fast hash is the right tool (NIST SP 800-63B §5.1.2.2):
 * a slow password hash would add latency to every request and no security.
 * `crypto.hash` is a one-shot that is ~4× faster than `createHash` for short inputs.
 */
const sha256Base64url: (input: string) => string =
  typeof nodeHash === "function"
    ? (input) => nodeHash("sha256", input, "base64url")
    : (input) => createHash("sha256").update(input).digest("base64url");

/** Digest stored and looked up for a key: version 0 is plain SHA-256, version N ≥ 1 is HMAC-SHA-256 with secret N. */
export function hashApiKey(key: string, secret?: HashSecret): string {
  if (!secret) return sha256Base64url(key);
  return createHmac("sha256", secret.secret).update(key).digest("base64url");
}

/**
 * Parses `KEYWARD_HASH_SECRET`: either one secret (version 1) or a comma-separated list of
 * `vN:secret`, current first, e.g. `v2:newsecret,v1:oldsecret`.
 */
export function parseHashSecrets(value: string | undefined): HashSecret[] {
  if (!value) return [];
  const parts = value
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean);
  if (parts.length === 1 && !/^v\d+:/.test(parts[0] as string)) return [{ version: 1, secret: parts[0] as string }];
  return parts.map((part) => {
    const match = /^v(\d+):(.+)$/.exec(part);
    if (!match) throw new RangeError("KEYWARD_HASH_SECRET entries must look like vN:secret");
    const version = Number(match[1]);
    if (version < 1) throw new RangeError("KEYWARD_HASH_SECRET versions start at 1");
    return { version, secret: match[2] as string };
  });
}

/** What every hash-secret fingerprint is an HMAC of. */
const FINGERPRINT_LABEL = "keyward/hash-secret-fingerprint/1";

/**
 * What a store records of a hash secret (docs/security.md, "Hash secret fingerprint"):
 * HMAC-SHA-256 of a fixed label under the secret, cut to 128 bits. It tells two secrets apart
 * without revealing either; like any keyed hash it lets whoever holds the database test guesses
 * of the secret offline, so a secret must be long and random (32 random bytes), never a word.
 */
export function hashSecretFingerprint(secret: HashSecret): string {
  return `hmac-sha256:${createHmac("sha256", secret.secret).update(FINGERPRINT_LABEL).digest("base64url").slice(0, 22)}`;
}
