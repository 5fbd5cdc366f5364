import { KeywardError } from "../core/errors.js";
import { type HashSecret, hashSecretFingerprint } from "../core/hashing.js";
import type { KeyStore } from "../ports/key-store.js";

/** Meta names: the versions first recorded (a latch), and one fingerprint per version ever used. */
const KEYED = "hash_secrets";
const versionName = (version: number) => `hash_secret_v${version}`;

const versionsOf = (secrets: readonly HashSecret[]) => secrets.map((s) => `v${s.version}`).join(", ");

const refuse = (message: string) =>
  new KeywardError(
    "HASH_SECRET_MISMATCH",
    `${message}. Every process on this store (server, workers, CLI) needs the same KEYWARD_HASH_SECRET`,
  );

/** The versions this store holds a fingerprint of (only read to explain a refusal). */
async function recordedVersions(store: KeyStore, upTo: number): Promise<string> {
  const found: string[] = [];
  for (let version = 1; version <= upTo; version++) if ((await store.getMeta(versionName(version))) !== null) found.push(`v${version}`);
  return found.join(", ") || "none";
}

/** The hash version of the newest key, or null on a store without keys. */
async function newestKeyHashVersion(store: KeyStore, now: number): Promise<number | null> {
  const page = await store.listKeys({ now }, 1, null);
  return page.keys[0]?.hashVersion ?? null;
}

/**
 * Refuses to run against a store whose keys were hashed under other secrets than this process's
 * `KEYWARD_HASH_SECRET` (docs/security.md): without this check a shell without the secret
 * creates keys the server calls unknown, and calls the server's keys unknown.
 *
 * The store records, once, the fingerprint (`hashSecretFingerprint`) of each secret version it
 * is used with. A process passes when none of its versions has a different fingerprint and, once
 * any is recorded, at least one of them matches; versions it adds (rotation: `v2:new,v1:old`
 * on a store of v1) are recorded then, so `v2:new` alone passes once v1 is retired. Before
 * anything is recorded (a new store, or one from before fingerprints), the newest key's hash
 * version must be one this process can verify.
 */
export async function checkHashSecrets(store: KeyStore, secrets: readonly HashSecret[], now: number): Promise<void> {
  const keyed = await store.getMeta(KEYED);
  if (secrets.length === 0) {
    if (keyed !== null)
      throw refuse(
        `KEYWARD_HASH_SECRET is not set in this process, but this store's keys are hashed with it (${await recordedVersions(store, 64)}): keys made here would be unknown to the server, and its keys unknown here`,
      );
    const newest = await newestKeyHashVersion(store, now);
    if (newest !== null && newest > 0)
      throw refuse(`KEYWARD_HASH_SECRET is not set in this process, but this store's newest key is hashed with its v${newest}`);
    return;
  }
  const fingerprints = secrets.map((secret) => ({ version: secret.version, fingerprint: hashSecretFingerprint(secret) }));
  let matched = false;
  for (const { version, fingerprint } of fingerprints) {
    const stored = await store.getMeta(versionName(version));
    if (stored !== null && stored !== fingerprint)
      throw refuse(
        `KEYWARD_HASH_SECRET v${version} in this process differs from the v${version} this store's keys are hashed with: use the same value as the server`,
      );
    if (stored !== null) matched = true;
  }
  const upTo = Math.max(64, ...secrets.map((s) => s.version));
  if (keyed !== null && !matched)
    throw refuse(
      `KEYWARD_HASH_SECRET in this process has ${versionsOf(secrets)}, but this store's keys are hashed with ${await recordedVersions(store, upTo)}: keep the store's version in the list while rotating (current first, e.g. v2:new,v1:old)`,
    );
  if (keyed === null) {
    const newest = await newestKeyHashVersion(store, now);
    if (newest === 0)
      throw refuse(
        "KEYWARD_HASH_SECRET is set in this process, but this store's keys are hashed without it (plain SHA-256): unset it here, or keep it unset everywhere",
      );
    if (newest !== null && !secrets.some((s) => s.version === newest))
      throw refuse(`KEYWARD_HASH_SECRET in this process has ${versionsOf(secrets)}, but this store's newest key is hashed with v${newest}`);
    await store.setMetaOnce(KEYED, versionsOf(secrets));
  }
  for (const { version, fingerprint } of fingerprints) {
    // Another process may record the same version at the same moment: what won must match.
    if (!(await store.setMetaOnce(versionName(version), fingerprint)) && (await store.getMeta(versionName(version))) !== fingerprint)
      throw refuse(
        `KEYWARD_HASH_SECRET v${version} in this process differs from the v${version} this store's keys are hashed with: use the same value as the server`,
      );
  }
}
