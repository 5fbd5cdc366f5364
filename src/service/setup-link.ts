import { Accounts } from "../engine/accounts.js";
import type { Keyward } from "../engine/keyward.js";
import { accountStoreFor } from "./account-store-factory.js";
import type { ServiceConfig } from "./config.js";

/**
 * First start with no dashboard users: a one-time setup link, printed to the terminal once and
 * never logged. The token sits in the URL fragment, which browsers never send to a server.
 */
export async function printSetupLink(keyward: Keyward, config: ServiceConfig, url: string, print: (line: string) => void): Promise<void> {
  const store = accountStoreFor(keyward.store);
  // With passwords off (docs/sso.md) there is no setup link: the first admin signs in through SSO.
  if (!store || !config.dashboard.enabled || !config.sso.passwordSignIn) return;
  await store.migrate();
  const token = await new Accounts(keyward, store).issueSetupToken();
  if (token) print(`  Create the first dashboard admin (link works once, for 24 hours): ${url}/dashboard/#/setup/${token}\n`);
}
