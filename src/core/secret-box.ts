import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

/**
 * Secrets Keyward must keep readable (webhook signing secrets) are sealed at rest with
 * AES-256-GCM under `KEYWARD_SECRETS_KEY` (docs/configuration.md, docs/webhooks.md). A sealed
 * value is `v<version>:` + base64url(12-byte nonce ‖ ciphertext ‖ 16-byte tag); the version names
 * the key, so a new key can be added while values sealed under the old one are still read. The
 * caller's context (the row's id) is bound in as additional data: a sealed value copied into
 * another row does not open.
 */
export interface SecretsKey {
  version: number;
  key: Buffer;
}

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const SEALED = /^v(\d{1,6}):([A-Za-z0-9_-]+)$/;

/** Whether a stored value is sealed (`vN:…`) rather than plaintext. */
export function isSealed(stored: string): boolean {
  return SEALED.test(stored);
}

function decodeKey(text: string): Buffer | null {
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, "hex");
  if (!/^[A-Za-z0-9+/_-]{43}={0,1}$/.test(text)) return null;
  const key = Buffer.from(text, "base64");
  return key.length === 32 ? key : null;
}

/**
 * Parses `KEYWARD_SECRETS_KEY`: one 32-byte key (version 1), or `vN:key` entries, current first,
 * e.g. `v2:<new>,v1:<old>`. A key is 64 hex digits or 32 bytes in base64 (`openssl rand -base64 32`).
 */
export function parseSecretsKeys(value: string | undefined): SecretsKey[] {
  if (!value) return [];
  const parts = value
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean);
  const entries =
    parts.length === 1 && !/^v\d+:/.test(parts[0] as string)
      ? [{ version: 1, text: parts[0] as string }]
      : parts.map((part) => {
          const match = /^v(\d{1,6}):(.+)$/.exec(part);
          if (!match) throw new RangeError("KEYWARD_SECRETS_KEY entries must look like vN:key");
          return { version: Number(match[1]), text: match[2] as string };
        });
  const keys: SecretsKey[] = [];
  for (const { version, text } of entries) {
    if (version < 1) throw new RangeError("KEYWARD_SECRETS_KEY versions start at 1");
    if (keys.some((k) => k.version === version)) throw new RangeError(`KEYWARD_SECRETS_KEY names version ${version} twice`);
    const key = decodeKey(text);
    if (!key) throw new RangeError("KEYWARD_SECRETS_KEY keys must be 32 bytes: 64 hex digits or base64 (openssl rand -base64 32)");
    keys.push({ version, key });
  }
  return keys;
}

/** Seals with the first (current) key; opens with whichever key a value names. */
export class SecretBox {
  private readonly current: SecretsKey;
  private readonly byVersion: ReadonlyMap<number, Buffer>;

  constructor(keys: readonly SecretsKey[]) {
    const current = keys[0];
    if (!current) throw new RangeError("a SecretBox needs at least one key");
    this.current = current;
    this.byVersion = new Map(keys.map((k) => [k.version, k.key]));
  }

  get currentVersion(): number {
    return this.current.version;
  }

  seal(plaintext: string, context: string): string {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.current.key, nonce);
    cipher.setAAD(Buffer.from(context, "utf8"));
    const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
    return `v${this.current.version}:${Buffer.concat([nonce, body, cipher.getAuthTag()]).toString("base64url")}`;
  }

  /** The plaintext of a sealed value; throws if its key version is unknown or it was altered. */
  open(sealed: string, context: string): string {
    const match = SEALED.exec(sealed);
    if (!match) throw new RangeError("not a sealed value");
    const key = this.byVersion.get(Number(match[1]));
    if (!key) throw new RangeError(`sealed under key version ${match[1]}, which KEYWARD_SECRETS_KEY does not hold`);
    const raw = Buffer.from(match[2] as string, "base64url");
    if (raw.length < NONCE_BYTES + TAG_BYTES) throw new RangeError("sealed value too short");
    const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, NONCE_BYTES), { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(context, "utf8"));
    decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
    return Buffer.concat([decipher.update(raw.subarray(NONCE_BYTES, raw.length - TAG_BYTES)), decipher.final()]).toString("utf8");
  }

  /** Whether a stored value is sealed under the current key (nothing to rewrite). */
  isCurrent(stored: string): boolean {
    const match = SEALED.exec(stored);
    return match !== null && Number(match[1]) === this.current.version;
  }
}
