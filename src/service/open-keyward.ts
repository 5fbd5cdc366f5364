import { Keyward } from "../engine/keyward.js";
import type { KeyStore } from "../ports/key-store.js";
import type { ServiceConfig } from "./config.js";
import type { ServiceMetrics } from "./metrics.js";
import { openStore, openWebhookStore } from "./store-factory.js";

/**
 * Opening the engine on the configured store, without the HTTP server: the CLI uses this so a
 * `keyward keys …` command never loads Fastify.
 */
export const BUILTIN_APPLICATION = { type: "application", id: "keyward" } as const;

/** Opens and migrates the configured store and builds the engine on it. */
export async function openKeyward(config: ServiceConfig, metrics?: ServiceMetrics): Promise<Keyward> {
  const store: KeyStore = await openStore(config.databaseUrl, { schema: config.databaseSchema });
  await store.migrate();
  await openWebhookStore(store)?.migrate();
  return new Keyward({
    store,
    prefix: config.prefix,
    hashSecrets: config.hashSecrets,
    cache: { maxAgeMs: config.cacheMaxAgeMs, staleWindowMs: config.staleWindowMs },
    ...(metrics ? { usage: metrics.usageRecorder(), observer: metrics.engineObserver() } : {}),
  });
}

/** Mints a key with the `admin` scope for the built-in `keyward` application. */
export async function createAdminKey(keyward: Keyward, name: string, actor: { type: "cli" | "system"; id: string }) {
  return keyward.createKey({ owner: BUILTIN_APPLICATION, name, environment: "production", scopes: ["admin"] }, { actor });
}

/**
 * First start on an empty store: one admin key, printed once. A latch in the store makes sure
 * it never happens again, even if every key is later deleted.
 */
export async function bootstrapAdminKey(keyward: Keyward): Promise<string | null> {
  if ((await keyward.store.countKeys()) > 0) return null;
  if (!(await keyward.store.setMetaOnce("bootstrap_admin_key", new Date(keyward.clock.now()).toISOString()))) return null;
  const created = await createAdminKey(keyward, "bootstrap admin key", { type: "system", id: "bootstrap" });
  return created.key;
}

/** The first-start banner: the only place the bootstrap key is ever shown. */
export function printBootstrapKey(print: (line: string) => void, key: string, url: string): void {
  print("");
  print("  Keyward is ready. This admin key is shown once; store it now:");
  print("");
  print(`    ${key}`);
  print("");
  print(`  API: ${url}   Docs: ${url}/docs`);
  print("");
}
