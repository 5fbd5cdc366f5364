import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Accounts } from "../../src/engine/accounts.js";
import { Keyward } from "../../src/engine/keyward.js";
import { ManualClock } from "../../src/ports/clock.js";
import { SqliteAccountStore } from "../../src/stores/sqlite/sqlite-account-store.js";
import { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";

const MINUTE = 60_000;
const context = { actor: { type: "cli" as const, id: "test" } };
let store: SqliteKeyStore;
let clock: ManualClock;
let accounts: Accounts;

beforeEach(async () => {
  store = new SqliteKeyStore({ filename: ":memory:" });
  await store.migrate();
  const accountStore = new SqliteAccountStore(store.db);
  await accountStore.migrate();
  clock = new ManualClock();
  accounts = new Accounts(new Keyward({ store, clock }), accountStore, { sessionIdleMs: 30 * MINUTE, sessionMaxMs: 12 * 60 * MINUTE });
  await accounts.createUser({ email: "a@example.com", password: "a long password", role: "member" }, context);
});
afterEach(async () => {
  await store.close();
});

describe("sessions", () => {
  it("end after the idle timeout", async () => {
    const { token } = await accounts.signIn("a@example.com", "a long password", {});
    clock.advance(29 * MINUTE);
    expect(await accounts.resolveSession(token)).not.toBeNull();
    clock.advance(31 * MINUTE);
    expect(await accounts.resolveSession(token)).toBeNull();
  });

  it("end at the absolute timeout however active", async () => {
    const { token } = await accounts.signIn("a@example.com", "a long password", {});
    for (let i = 0; i < 25; i++) {
      clock.advance(29 * MINUTE);
      await accounts.resolveSession(token);
    }
    expect(await accounts.resolveSession(token)).toBeNull();
  });

  it("are stored by digest only: the token is nowhere in the database", async () => {
    const { token } = await accounts.signIn("a@example.com", "a long password", {});
    const rows = JSON.stringify(store.db.prepare("SELECT * FROM sessions").all());
    expect(rows).not.toContain(token);
  });
});

describe("passwords", () => {
  it("are stored as scrypt hashes", async () => {
    const row = store.db.prepare("SELECT password_hash FROM users").get() as { password_hash: string };
    expect(row.password_hash).toMatch(/^scrypt\$32768\$8\$1\$/);
    expect(row.password_hash).not.toContain("a long password");
  });

  it("must be at least 12 characters", async () => {
    await expect(accounts.createUser({ email: "b@example.com", password: "short", role: "member" }, context)).rejects.toMatchObject({
      code: "VALIDATION_FAILED",
    });
  });
});
