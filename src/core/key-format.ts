import { crc32 } from "node:zlib";
import { encodeBase62Fixed } from "./base62.js";
import { generateRandomBase62, type RandomBytes } from "./random.js";

export type Environment = "sandbox" | "production";
export type EnvironmentMarker = "live" | "test";

export const DEFAULT_KEY_PREFIX = "kw";
export const KEY_SECRET_LENGTH = 32;
export const KEY_CHECKSUM_LENGTH = 6;
/** Longest well-formed key: 16-char prefix + `_live_` + secret + checksum. Longer input is refused before any work. */
export const MAX_KEY_LENGTH = 16 + 6 + KEY_SECRET_LENGTH + KEY_CHECKSUM_LENGTH;

const PREFIX_PATTERN = /^[a-z][a-z0-9]{1,15}$/;

/**
 * The published pattern of every Keyward key, whatever the deployment prefix
 * (see docs/key-format.md). Group 1 prefix, 2 marker, 3 secret, 4 checksum.
 */
export const API_KEY_PATTERN = /^([a-z][a-z0-9]{1,15})_(live|test)_([0-9A-Za-z]{32})([0-9A-Za-z]{6})$/;

export function isValidKeyPrefix(prefix: string): boolean {
  return PREFIX_PATTERN.test(prefix);
}

export function environmentToMarker(environment: Environment): EnvironmentMarker {
  return environment === "production" ? "live" : "test";
}

export function markerToEnvironment(marker: EnvironmentMarker): Environment {
  return marker === "live" ? "production" : "sandbox";
}

/** CRC32 (IEEE, as zlib) of the UTF-8 bytes of `body`, as 6 base62 characters. */
export function computeKeyChecksum(body: string): string {
  return encodeBase62Fixed(crc32(body), KEY_CHECKSUM_LENGTH);
}

export interface GenerateApiKeyOptions {
  prefix?: string;
  environment: Environment;
  random?: RandomBytes;
}

/**
 * Creates a new plaintext key: `{prefix}_{marker}_{secret}{checksum}`.
 * @example generateApiKey({ environment: "sandbox" }) // "kw_test_…"
 */
export function generateApiKey(options: GenerateApiKeyOptions): string {
  const prefix = options.prefix ?? DEFAULT_KEY_PREFIX;
  if (!isValidKeyPrefix(prefix)) throw new RangeError(`invalid key prefix: ${prefix}`);
  const body = `${prefix}_${environmentToMarker(options.environment)}_${generateRandomBase62(KEY_SECRET_LENGTH, options.random)}`;
  return body + computeKeyChecksum(body);
}

export interface ParsedApiKey {
  prefix: string;
  environment: Environment;
  secret: string;
  checksum: string;
}

/**
 * Checks format, deployment prefix and checksum without touching storage. Returns null for
 * anything that is not a key of this deployment: a typo or a truncated key never costs a lookup.
 */
export function parseApiKey(key: string, expectedPrefix: string = DEFAULT_KEY_PREFIX): ParsedApiKey | null {
  if (key.length > MAX_KEY_LENGTH) return null;
  const match = API_KEY_PATTERN.exec(key);
  if (!match) return null;
  const [, prefix, marker, secret, checksum] = match as unknown as [string, string, EnvironmentMarker, string, string];
  if (prefix !== expectedPrefix) return null;
  if (computeKeyChecksum(key.slice(0, key.length - KEY_CHECKSUM_LENGTH)) !== checksum) return null;
  return { prefix, environment: markerToEnvironment(marker), secret, checksum };
}

/** What a person sees to recognise a key: `kw_live_…Ab3x` (prefix, marker, last four characters). */
export function formatKeyRef(key: string): string {
  const marker = key.indexOf("_", key.indexOf("_") + 1);
  return `${key.slice(0, marker + 1)}…${key.slice(-4)}`;
}
