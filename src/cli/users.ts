import { KeywardError } from "../core/errors.js";
import type { RequestContext } from "../core/model.js";
import { generateRandomBase62 } from "../core/random.js";
import { Accounts } from "../engine/accounts.js";
import type { Keyward } from "../engine/keyward.js";
import { accountStoreFor } from "../service/account-store-factory.js";

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
}

/** `keyward users create`: a user written straight into the store, with its audit event. */
export async function createUserFromCli(
  keyward: Keyward,
  options: { email: string; admin?: boolean; passwordStdin?: boolean; context: RequestContext },
): Promise<{ id: string; email: string; role: string; password?: string }> {
  const store = accountStoreFor(keyward.store);
  if (!store) throw new KeywardError("INVALID_CONFIGURATION", "this store keeps no users");
  await store.migrate();
  const accounts = new Accounts(keyward, store);
  const generated = options.passwordStdin ? null : generateRandomBase62(20);
  const password = generated ?? (await readStdin());
  const user = await accounts.createUser({ email: options.email, password, role: options.admin ? "admin" : "member" }, options.context);
  return { id: user.id, email: user.email, role: user.role, ...(generated ? { password: generated } : {}) };
}
