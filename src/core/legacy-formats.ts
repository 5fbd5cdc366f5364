import { createHash, createHmac, hash as nodeHash } from "node:crypto";
import { parseTimestamp } from "./timestamps.js";

/**
 * Legacy key formats (docs/migrating.md): keys issued by another system before Keyward, kept
 * working after an import. An operator declares each format (`KEYWARD_LEGACY_FORMATS`): which
 * presented strings are of it (a prefix or a regular expression) and how the old system digested
 * them (SHA-256, or HMAC-SHA-256 under a named secret). A presented string of a declared format
 * is looked up by that digest and verified like any other key.
 *
 * Stored digests of legacy keys live in their own namespace of the `digest` column:
 * `legacy:sha256:<base64url>` or `legacy:hmac_sha256:<secret name>:<base64url>`. A Keyward digest
 * is 43 base64url characters (never a `:`), so the two can never be equal, and a string shaped
 * like a Keyward key of the deployment is never matched against a legacy format at all.
 */

/** How an imported digest is written: the SHA-256 of the key as hex, base64 or base64url, or an HMAC-SHA-256 under a named secret. */
export const DIGEST_VARIANTS = ["sha256_hex", "sha256_base64", "sha256_base64url", "hmac_sha256"] as const;
export type DigestVariant = (typeof DIGEST_VARIANTS)[number];

/** What a format's keys were digested with: plain SHA-256 (whatever its encoding), or HMAC-SHA-256 under a named secret. */
export type LegacyDigestFunction = "sha256" | "hmac_sha256";

export interface LegacyFormat {
  /** `[a-z0-9][a-z0-9_-]{0,31}`: the API shows its keys as `format: "legacy:<name>"`. */
  name: string;
  /** Keys of the format start with this (and have at least one more character). */
  prefix: string | null;
  /** Or: keys of the format match this, whole. */
  pattern: RegExp | null;
  digest: LegacyDigestFunction;
  /** For `hmac_sha256`: the secret's name (in `KEYWARD_LEGACY_SECRETS`) and value. */
  secretName: string | null;
  secret: string | null;
  /** After this time (epoch ms) its keys answer LEGACY_KEY_RETIRED; null: never. */
  sunsetAt: number | null;
}

export const LEGACY_DIGEST_PREFIX = "legacy:";
/** Longer presented strings are never matched against a legacy format (nor hashed). */
export const LEGACY_MAX_KEY_LENGTH = 256;
/**
 * The characters of a legacy key: printable ASCII without spaces, what the HTTP carriers carry
 * (docs/api.md, Authentication). Anything else is never a key of any format.
 */
export const LEGACY_KEY_CHARS = /^[\x21-\x7e]+$/;
export const LEGACY_FORMAT_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const SECRET_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

const sha256 = (input: string): Buffer =>
  typeof nodeHash === "function" ? (nodeHash("sha256", input, "buffer") as Buffer) : createHash("sha256").update(input).digest();

function storedDigest(fn: LegacyDigestFunction, secretName: string | null, bytes: Buffer): string {
  const encoded = bytes.toString("base64url");
  return fn === "sha256" ? `${LEGACY_DIGEST_PREFIX}sha256:${encoded}` : `${LEGACY_DIGEST_PREFIX}hmac_sha256:${secretName}:${encoded}`;
}

/** The stored digest of a presented key of `format`: what the lookup asks the store for. */
export function legacyDigestOf(format: LegacyFormat, presented: string): string {
  const bytes =
    format.digest === "sha256"
      ? sha256(presented)
      : createHmac("sha256", format.secret as string)
          .update(presented)
          .digest();
  return storedDigest(format.digest, format.secretName, bytes);
}

const HEX_64 = /^[0-9a-fA-F]{64}$/;
const BASE64_32 = /^[A-Za-z0-9+/]{43}=?$/;
const BASE64URL_32 = /^[A-Za-z0-9_-]{43}=?$/;

/** 32 bytes from a digest written in `encoding`, or null when it is not one. */
function decodeDigest(value: string, encoding: "hex" | "base64" | "base64url" | "any"): Buffer | null {
  if ((encoding === "hex" || encoding === "any") && HEX_64.test(value)) return Buffer.from(value, "hex");
  if ((encoding === "base64" || encoding === "any") && BASE64_32.test(value)) return Buffer.from(value, "base64");
  if ((encoding === "base64url" || encoding === "any") && BASE64URL_32.test(value)) return Buffer.from(value, "base64url");
  return null;
}

/**
 * The stored digest of an imported one: `digest` as written by the old system, in `variant`, for a
 * key of `format`. An error message when they do not fit together (a hex digest that is not 64 hex
 * characters, an HMAC digest for a SHA-256 format, another secret than the format's).
 */
export function importedLegacyDigest(
  format: LegacyFormat,
  variant: DigestVariant,
  digest: string,
  secretName: string | undefined,
): { digest: string } | { error: string } {
  if (variant === "hmac_sha256") {
    if (format.digest !== "hmac_sha256")
      return { error: `digest_variant hmac_sha256 does not fit format ${format.name}, whose keys are digested with SHA-256` };
    if (secretName !== undefined && secretName !== format.secretName)
      return { error: `hmac_secret ${secretName} is not the secret of format ${format.name} (${format.secretName})` };
    const bytes = decodeDigest(digest, "any");
    if (!bytes) return { error: "an HMAC-SHA-256 digest is 64 hex characters or 43 base64/base64url characters" };
    return { digest: storedDigest("hmac_sha256", format.secretName, bytes) };
  }
  if (format.digest !== "sha256")
    return { error: `digest_variant ${variant} does not fit format ${format.name}, whose keys are digested with HMAC-SHA-256` };
  const encoding = variant === "sha256_hex" ? "hex" : variant === "sha256_base64" ? "base64" : "base64url";
  const bytes = decodeDigest(digest, encoding);
  if (!bytes)
    return {
      error:
        variant === "sha256_hex"
          ? "a sha256_hex digest is 64 hexadecimal characters"
          : `a ${variant} digest is 43 ${encoding} characters (44 with its padding)`,
    };
  return { digest: storedDigest("sha256", null, bytes) };
}

/** What a person sees of a legacy key: the format's prefix, an ellipsis, and its last four characters when known. */
export function legacyRef(format: LegacyFormat, plaintext: string | null, last4: string | null): string {
  const tail = plaintext !== null ? plaintext.slice(-4) : (last4 ?? "");
  return `${format.prefix ?? `${format.name}:`}…${tail}`;
}

/** The API's name of a key's format. */
export function keyFormatLabel(legacyFormat: string | null): string {
  return legacyFormat === null ? "keyward" : `legacy:${legacyFormat}`;
}

/** Which strings are keys of a format: all a carrier or a remote client needs to know of it (no digest, no secret). */
export type LegacyKeyShape = Pick<LegacyFormat, "prefix" | "pattern">;

/**
 * Whether `presented` is a key of a format of this `shape`: at most LEGACY_MAX_KEY_LENGTH of
 * LEGACY_KEY_CHARS, never shaped like a Keyward key (`keywardStart`, `kw_`), and of the prefix
 * or the (anchored) pattern.
 */
export function fitsShape(shape: LegacyKeyShape, presented: string, keywardStart: string): boolean {
  if (presented.length > LEGACY_MAX_KEY_LENGTH || presented.startsWith(keywardStart) || !LEGACY_KEY_CHARS.test(presented)) return false;
  if (shape.prefix !== null) return presented.length > shape.prefix.length && presented.startsWith(shape.prefix);
  return (shape.pattern as RegExp).test(presented);
}

/**
 * The shapes of the declared formats alone, as `KEYWARD_LEGACY_FORMATS` declares them (`prefix` or
 * `pattern`; every other field is ignored, so no secret is needed): what `keyward/client` takes to
 * read a legacy key sent as `Authorization: Bearer` (docs/middleware.md). Throws a RangeError for an
 * entry with neither, or a pattern that is not a regular expression.
 */
export class LegacyKeyShapes {
  readonly list: readonly LegacyKeyShape[];
  private readonly keywardStart: string;

  constructor(declared: readonly { prefix?: string | null; pattern?: string | null }[], keywardPrefix: string) {
    this.keywardStart = `${keywardPrefix}_`;
    this.list = declared.map((entry, index) => {
      if (typeof entry.prefix === "string" && entry.prefix.length > 0) return { prefix: entry.prefix, pattern: null };
      if (typeof entry.pattern === "string" && entry.pattern.length > 0) {
        try {
          return { prefix: null, pattern: new RegExp(`^(?:${entry.pattern})$`) };
        } catch (error) {
          throw new RangeError(`legacyFormats[${index}].pattern is not a valid regular expression: ${(error as Error).message}`);
        }
      }
      throw new RangeError(`legacyFormats[${index}] needs either prefix or pattern`);
    });
  }

  /** The first shape `presented` fits, or null. */
  match(presented: string): LegacyKeyShape | null {
    for (const shape of this.list) if (fitsShape(shape, presented, this.keywardStart)) return shape;
    return null;
  }
}

/**
 * The declared formats of one deployment. `match` is on the verify path of strings that are not
 * Keyward keys: it never matches a string shaped like a key of `keywardPrefix` (`kw_…`), so a
 * Keyward key with a typo stays MALFORMED and is never looked up as a legacy digest.
 */
export class LegacyFormats {
  readonly list: readonly LegacyFormat[];
  private readonly byName: ReadonlyMap<string, LegacyFormat>;
  private readonly keywardStart: string;

  constructor(formats: readonly LegacyFormat[], keywardPrefix: string) {
    this.list = formats;
    this.byName = new Map(formats.map((format) => [format.name, format]));
    this.keywardStart = `${keywardPrefix}_`;
  }

  get size(): number {
    return this.list.length;
  }

  get(name: string): LegacyFormat | undefined {
    return this.byName.get(name);
  }

  /** Whether `presented` is a key of `format` (the length, character and Keyward-shape rules of `match` included). */
  fits(format: LegacyFormat, presented: string): boolean {
    return fitsShape(format, presented, this.keywardStart);
  }

  /** The first declared format `presented` is a key of, or null. */
  match(presented: string): LegacyFormat | null {
    if (this.list.length === 0) return null;
    for (const format of this.list) if (this.fits(format, presented)) return format;
    return null;
  }

  /** Whether keys of the format named `name` are past its sunset at `now`. */
  retired(name: string, now: number): boolean {
    const sunset = this.byName.get(name)?.sunsetAt ?? null;
    return sunset !== null && sunset <= now;
  }
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * Parses `KEYWARD_LEGACY_FORMATS` (a JSON list) with the secrets of `KEYWARD_LEGACY_SECRETS` (a
 * JSON object, name → secret). Throws a RangeError naming the entry at fault.
 *
 * @example
 * parseLegacyFormats('[{"name":"acme","prefix":"acme_","digest":"sha256_hex","sunset":"2027-01-01T00:00:00Z"}]', undefined, "kw")
 */
export function parseLegacyFormats(
  formatsJson: string | undefined,
  secretsJson: string | undefined,
  keywardPrefix: string,
): LegacyFormat[] {
  let secrets: Record<string, unknown> = {};
  if (secretsJson) {
    try {
      secrets = JSON.parse(secretsJson);
    } catch {
      throw new RangeError('KEYWARD_LEGACY_SECRETS must be a JSON object of secret names and values: {"name": "secret"}');
    }
    if (!isObject(secrets))
      throw new RangeError('KEYWARD_LEGACY_SECRETS must be a JSON object of secret names and values: {"name": "secret"}');
    for (const [name, value] of Object.entries(secrets)) {
      if (!SECRET_NAME.test(name)) throw new RangeError(`KEYWARD_LEGACY_SECRETS: secret names are 1 to 64 of A-Z a-z 0-9 _ . - (${name})`);
      if (typeof value !== "string" || value.length === 0)
        throw new RangeError(`KEYWARD_LEGACY_SECRETS: the secret ${name} must be a non-empty string`);
    }
  }
  if (!formatsJson) return [];
  let raw: unknown;
  try {
    raw = JSON.parse(formatsJson);
  } catch {
    throw new RangeError("KEYWARD_LEGACY_FORMATS must be a JSON list of formats (docs/migrating.md)");
  }
  if (!Array.isArray(raw)) throw new RangeError("KEYWARD_LEGACY_FORMATS must be a JSON list of formats (docs/migrating.md)");
  const formats: LegacyFormat[] = [];
  for (const [index, entry] of raw.entries()) {
    const where = `KEYWARD_LEGACY_FORMATS[${index}]`;
    if (!isObject(entry)) throw new RangeError(`${where} must be an object`);
    const unknown = Object.keys(entry).filter((field) => !["name", "prefix", "pattern", "digest", "secret", "sunset"].includes(field));
    if (unknown.length > 0) throw new RangeError(`${where}: unknown field ${unknown.join(", ")}`);
    const { name, prefix, pattern, digest, secret, sunset } = entry;
    if (typeof name !== "string" || !LEGACY_FORMAT_NAME.test(name))
      throw new RangeError(`${where}.name must match [a-z0-9][a-z0-9_-]{0,31}`);
    if (formats.some((format) => format.name === name)) throw new RangeError(`${where}: the name ${name} is declared twice`);
    if ((prefix === undefined) === (pattern === undefined)) throw new RangeError(`${where} needs either prefix or pattern`);
    let compiled: RegExp | null = null;
    if (prefix !== undefined) {
      if (typeof prefix !== "string" || prefix.length === 0 || prefix.length > 64 || !/^[\x21-\x7e]+$/.test(prefix))
        throw new RangeError(`${where}.prefix must be 1 to 64 printable ASCII characters`);
      // Strings shaped like Keyward keys are never legacy keys (LegacyFormats.fits): such a format could match nothing.
      if (prefix.startsWith(`${keywardPrefix}_`))
        throw new RangeError(`${where}.prefix ${prefix} overlaps Keyward's own keys (${keywardPrefix}_…): change KEYWARD_KEY_PREFIX`);
    } else {
      if (typeof pattern !== "string" || pattern.length === 0 || pattern.length > 512)
        throw new RangeError(`${where}.pattern must be a regular expression of 1 to 512 characters`);
      try {
        // Anchored: a key of the format matches whole, never a part of it.
        compiled = new RegExp(`^(?:${pattern})$`);
      } catch (error) {
        throw new RangeError(`${where}.pattern is not a valid regular expression: ${(error as Error).message}`);
      }
    }
    let fn: LegacyDigestFunction;
    if (digest === "sha256" || digest === "sha256_hex" || digest === "sha256_base64" || digest === "sha256_base64url") fn = "sha256";
    else if (digest === "hmac_sha256") fn = "hmac_sha256";
    else throw new RangeError(`${where}.digest must be sha256_hex, sha256_base64, sha256_base64url (or sha256) or hmac_sha256`);
    let secretValue: string | null = null;
    if (fn === "hmac_sha256") {
      if (typeof secret !== "string" || !SECRET_NAME.test(secret))
        throw new RangeError(`${where}.secret must name a secret of KEYWARD_LEGACY_SECRETS (hmac_sha256 needs one)`);
      if (typeof secrets[secret] !== "string") throw new RangeError(`${where}.secret: KEYWARD_LEGACY_SECRETS has no secret ${secret}`);
      secretValue = secrets[secret] as string;
    } else if (secret !== undefined) throw new RangeError(`${where}.secret is for hmac_sha256 formats only`);
    let sunsetAt: number | null = null;
    if (sunset !== undefined && sunset !== null) {
      sunsetAt = typeof sunset === "string" ? parseTimestamp(sunset) : null;
      if (sunsetAt === null) throw new RangeError(`${where}.sunset must be an RFC 3339 date-time such as 2027-01-01T00:00:00Z`);
    }
    formats.push({
      name,
      prefix: prefix === undefined ? null : (prefix as string),
      pattern: compiled,
      digest: fn,
      secretName: fn === "hmac_sha256" ? (secret as string) : null,
      secret: secretValue,
      sunsetAt,
    });
  }
  return formats;
}
