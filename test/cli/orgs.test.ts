import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runCliProcess } from "../helpers/process.js";

// keyward orgs … (docs/organizations.md): organizations and their members from the command line,
// straight on the store, each change audited with the actor cli. One process per command: a few
// seconds each on a loaded machine, hence the long timeouts.

let dir: string;
let env: Record<string, string>;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "keyward-orgs-"));
  env = { KEYWARD_DATABASE_URL: `sqlite:${join(dir, "keyward.db")}` };
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function ok(args: string[]): Promise<string> {
  const run = await runCliProcess(args, env);
  expect(run.code, `${args.join(" ")}: ${run.stderr}`).toBe(0);
  return run.stdout;
}

const json = <T>(stdout: string) => JSON.parse(stdout) as T;

describe("keyward orgs", () => {
  it("creates an organization with shared limits, manages its members and limits, and audits each change as the CLI", async () => {
    await ok(["users", "create", "--email", "olga@acme.test", "--json"]);
    await ok(["users", "create", "--email", "dev@acme.test", "--json"]);

    const created = json<{ id: string; name: string; shared_limits: unknown }>(
      await ok(["orgs", "create", "--id", "acme", "--name", "Acme Inc.", "--rate-limit", "100/m", "--quota", "1000/day", "--json"]),
    );
    expect(created).toMatchObject({
      id: "acme",
      name: "Acme Inc.",
      disabled: false,
      shared_limits: { rate_limit: { requests: 100, per_seconds: 60 }, concurrency: null, quota: { limit: 1000, period: "day" } },
    });
    // Without --id the id is generated.
    const generated = json<{ id: string; shared_limits: unknown }>(await ok(["orgs", "create", "--name", "Globex", "--json"]));
    expect(generated.id).toMatch(/^org_/);
    expect(generated.shared_limits).toBeNull();

    const listed = json<{ data: { id: string }[] }>(await ok(["orgs", "list", "--json"]));
    expect(listed.data.map((o) => o.id).sort()).toEqual(["acme", generated.id].sort());
    expect(json<{ data: { id: string }[] }>(await ok(["orgs", "list", "--q", "acme", "--json"])).data.map((o) => o.id)).toEqual(["acme"]);
    expect(await ok(["orgs", "list"])).toContain("Acme Inc.");

    const added = json<{ email: string; role: string; added_by: string }>(
      await ok(["orgs", "members", "add", "acme", "--email", "Olga@Acme.test", "--role", "owner", "--json"]),
    );
    expect(added).toMatchObject({ email: "olga@acme.test", role: "owner" });
    expect(added.added_by).toMatch(/^cli:/);
    await ok(["orgs", "members", "add", "acme", "--email", "dev@acme.test", "--role", "developer"]);
    // Already a member: refused, exit 2.
    const again = await runCliProcess(["orgs", "members", "add", "acme", "--email", "dev@acme.test", "--role", "viewer"], env);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain("CONFLICT");
    await ok(["orgs", "members", "role", "acme", "--email", "dev@acme.test", "--role", "admin"]);
    const members = json<{ data: { email: string; role: string }[] }>(await ok(["orgs", "members", "list", "acme", "--json"]));
    expect(members.data.map((m) => [m.email, m.role])).toEqual([
      ["olga@acme.test", "owner"],
      ["dev@acme.test", "admin"],
    ]);

    // The last owner stays (exit 2); another member leaves.
    const lastOwner = await runCliProcess(["orgs", "members", "remove", "acme", "--email", "olga@acme.test"], env);
    expect(lastOwner.code).toBe(2);
    expect(lastOwner.stderr).toContain("at least one owner");
    expect(await ok(["orgs", "members", "remove", "acme", "--email", "dev@acme.test"])).toContain("dev@acme.test removed from acme");

    // Each limit flag replaces that limit; the others stay; none removes one.
    const limits = json<{ shared_limits: unknown }>(
      await ok(["orgs", "limits", "acme", "--concurrency", "4", "--quota", "none", "--json"]),
    );
    expect(limits.shared_limits).toEqual({ rate_limit: { requests: 100, per_seconds: 60 }, concurrency: 4, quota: null });
    const shown = json<{ name: string; shared_limits: unknown; members: { email: string }[] }>(
      await ok(["orgs", "show", "acme", "--json"]),
    );
    expect(shown.shared_limits).toEqual(limits.shared_limits);
    expect(shown.members.map((m) => m.email)).toEqual(["olga@acme.test"]);
    const text = await ok(["orgs", "show", "acme"]);
    expect(text).toContain("concurrency    4, shared");
    expect(text).toContain("olga@acme.test");

    // A key owned by the organization.
    const key = json<{ owner: unknown }>(await ok(["keys", "create", "--owner", "organization:acme", "--name", "ci", "--json"]));
    expect(key.owner).toEqual({ type: "organization", id: "acme" });

    const db = new Database(join(dir, "keyward.db"), { readonly: true });
    try {
      const events = db.prepare("SELECT action, actor_type FROM audit_events WHERE target_id = 'organization:acme' ORDER BY seq").all() as {
        action: string;
        actor_type: string;
      }[];
      expect(events.map((e) => e.action)).toEqual([
        "owner.created",
        "organization.member_added",
        "organization.member_added",
        "organization.member_role_changed",
        "organization.member_removed",
        "owner.updated",
      ]);
      expect(new Set(events.map((e) => e.actor_type))).toEqual(new Set(["cli"]));
    } finally {
      db.close();
    }
  }, 180_000);

  it("refuses bad input with exit 2 before touching the store, and names what is missing", async () => {
    const badRate = await runCliProcess(["orgs", "create", "--name", "x", "--rate-limit", "fast"], env);
    expect(badRate.code).toBe(2);
    expect(badRate.stderr).toContain("--rate-limit");
    const badRole = await runCliProcess(["orgs", "members", "add", "acme", "--email", "a@b.test", "--role", "boss"], env);
    expect(badRole.code).toBe(2);
    expect(badRole.stderr).toContain("owner, admin, developer, viewer");
    const burst = await runCliProcess(["orgs", "create", "--name", "x", "--burst", "5"], env);
    expect(burst.code).toBe(2);
    expect(burst.stderr).toContain("--burst needs --rate-limit");
    const missing = await runCliProcess(["orgs", "show", "nope"], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("no organization nope");
    await ok(["orgs", "create", "--id", "acme", "--name", "Acme"]);
    const noUser = await runCliProcess(["orgs", "members", "add", "acme", "--email", "ghost@acme.test", "--role", "viewer"], env);
    expect(noUser.code).toBe(2);
    expect(noUser.stderr).toContain("keyward users create");
    const duplicate = await runCliProcess(["orgs", "create", "--id", "acme", "--name", "Again"], env);
    expect(duplicate.code).toBe(2);
    expect(duplicate.stderr).toContain("CONFLICT");
  }, 120_000);
});
