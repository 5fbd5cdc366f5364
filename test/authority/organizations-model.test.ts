import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fuzzAsync } from "../helpers/fuzz.js";
import { createMember, type SignedIn, sessionHeaders, setupAdmin } from "../helpers/people.js";
import { jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

// The authority invariant for organizations (docs/organizations.md, docs/authority.md), as a
// property over real HTTP: fast-check generates, per run, two organizations, four console members
// with random roles in each, and a sequence of actions by those members, by each organization's
// own key and by portal sessions bound to an organization. A small oracle written here from the
// contract (it imports nothing from src/) says which actions must be refused; the service must
// answer those 4xx and change nothing, and after the sequence its members and keys must be what
// the oracle holds. As in model.test.ts, "allow" is asserted only where the contract is clear-cut.

type Role = "owner" | "admin" | "developer" | "viewer";
type Verdict = "refuse" | "allow" | "may";

const ROLES: readonly Role[] = ["owner", "admin", "developer", "viewer"];
const MEMBER_KEY_SCOPES = ["read", "write"];
const SCOPE_POOL = ["read", "write", "payments:refund", "keys:write", "admin"];
const NUM_RUNS = 12;
const PEOPLE = 4;

interface ModelKey {
  id: string;
  org: number;
  /** The member who made the first key of its lineage, or null (made by an administrator, a key or a portal session). */
  person: number | null;
  scopes: string[];
  live: boolean;
}

interface Run {
  orgs: string[];
  people: SignedIn[];
  /** roles[org][person]: the member's role, or null. */
  roles: (Role | null)[][];
  keys: ModelKey[];
  /** Each organization's own key with `admin` scope, and a portal token bound to it (policy: read, sandbox). */
  orgKeys: string[];
  /** Each organization's own key in the model (it may be revoked or rotated by a member). */
  orgKeyModels: ModelKey[];
  portals: string[];
}

type Command =
  | { kind: "create"; person: number; org: number; env: "sandbox" | "production"; scopes: string[] }
  | { kind: "key"; person: number; key: number; action: "read" | "rotate" | "revoke" | "rename" }
  | { kind: "member"; person: number; org: number; target: number; role: Role | null }
  | { kind: "rename-org"; person: number; org: number }
  | { kind: "limits"; person: number; org: number }
  | { kind: "org-key"; org: number; key: number; action: "read" | "revoke" | "create-there" }
  | { kind: "portal"; org: number; key: number; action: "read" | "revoke" | "create-there" | "create-wide" };

const index = (n: number) => fc.integer({ min: 0, max: n - 1 });
const command: fc.Arbitrary<Command> = fc.oneof(
  fc.record({
    kind: fc.constant("create" as const),
    person: index(PEOPLE),
    org: index(2),
    env: fc.constantFrom("sandbox" as const, "production" as const),
    scopes: fc.subarray(SCOPE_POOL, { minLength: 1, maxLength: 3 }),
  }),
  fc.record({
    kind: fc.constant("key" as const),
    person: index(PEOPLE),
    key: fc.nat(),
    action: fc.constantFrom("read" as const, "rotate" as const, "revoke" as const, "rename" as const),
  }),
  fc.record({
    kind: fc.constant("member" as const),
    person: index(PEOPLE),
    org: index(2),
    target: index(PEOPLE),
    role: fc.option(fc.constantFrom(...ROLES), { nil: null }),
  }),
  fc.record({ kind: fc.constant("rename-org" as const), person: index(PEOPLE), org: index(2) }),
  fc.record({ kind: fc.constant("limits" as const), person: index(PEOPLE), org: index(2) }),
  fc.record({
    kind: fc.constant("org-key" as const),
    org: index(2),
    key: fc.nat(),
    action: fc.constantFrom("read" as const, "revoke" as const, "create-there" as const),
  }),
  fc.record({
    kind: fc.constant("portal" as const),
    org: index(2),
    key: fc.nat(),
    action: fc.constantFrom("read" as const, "revoke" as const, "create-there" as const, "create-wide" as const),
  }),
);

const initialRoles = fc.array(fc.array(fc.option(fc.constantFrom(...ROLES), { nil: null }), { minLength: PEOPLE, maxLength: PEOPLE }), {
  minLength: 2,
  maxLength: 2,
});

// ---------------------------------------------------------------- the oracle

const owners = (run: Run, org: number) => (run.roles[org] as (Role | null)[]).filter((r) => r === "owner").length;

/** Who manages whom (docs/organizations.md): an owner any role, an admin developers and viewers. */
const manages = (manager: Role | null, role: Role | null) =>
  role === null || manager === "owner" || (manager === "admin" && (role === "developer" || role === "viewer"));

function verdict(run: Run, c: Command): Verdict {
  switch (c.kind) {
    case "create": {
      const role = run.roles[c.org]?.[c.person] ?? null;
      // Nobody in an organization confers beyond the member policy: sandbox, the member scopes.
      if (role === null || role === "viewer" || c.env === "production" || c.scopes.some((s) => !MEMBER_KEY_SCOPES.includes(s)))
        return "refuse";
      return "allow";
    }
    case "key": {
      const key = run.keys[c.key % Math.max(1, run.keys.length)];
      if (!key) return "may";
      const role = run.roles[key.org]?.[c.person] ?? null;
      if (role === null) return "refuse";
      if (c.action === "read") return "allow";
      if (role === "viewer" || (role === "developer" && key.person !== c.person)) return "refuse";
      // Rotating hands over the key's rights: only those the member policy confers.
      if (c.action === "rotate" && key.scopes.some((s) => !MEMBER_KEY_SCOPES.includes(s))) return "refuse";
      return key.live && c.action !== "rotate" ? "allow" : "may";
    }
    case "member": {
      const actor = run.roles[c.org]?.[c.person] ?? null;
      const before = run.roles[c.org]?.[c.target] ?? null;
      if (before === null && c.role === null) return "may";
      const leaving = c.role === null && c.person === c.target;
      if (!leaving && (actor === null || actor === "viewer" || actor === "developer")) return "refuse";
      if (!leaving && !(manages(actor, before) && manages(actor, c.role))) return "refuse";
      // The last owner stays.
      if (before === "owner" && c.role !== "owner" && owners(run, c.org) === 1) return "refuse";
      return "may";
    }
    case "rename-org": {
      const role = run.roles[c.org]?.[c.person] ?? null;
      return role === "owner" || role === "admin" ? "allow" : "refuse";
    }
    case "limits":
      // Shared limits are set by administrators only; no member is one here.
      return "refuse";
    case "org-key":
    case "portal": {
      // A revoked or rotated organization key is no caller at all: whatever it asks is refused.
      if (c.kind === "org-key" && !run.orgKeyModels[c.org]?.live) return "refuse";
      if (c.action === "create-there") return "allow";
      if (c.action === "create-wide") return "refuse";
      const key = run.keys[c.key % Math.max(1, run.keys.length)];
      if (!key) return "may";
      // An organization's key and its portal sessions reach that organization's keys only.
      if (key.org !== c.org) return "refuse";
      return "may";
    }
  }
}

// ---------------------------------------------------------------- the service

let service: TestService;
let admin: SignedIn;
let runCount = 0;

beforeAll(async () => {
  service = await startTestService({
    env: {
      KEYWARD_MEMBER_KEY_SCOPES: MEMBER_KEY_SCOPES.join(","),
      KEYWARD_MEMBER_KEY_CREATES_PER_HOUR: "10000",
      KEYWARD_FAILED_ATTEMPTS_LIMIT: "0",
    },
  });
  admin = await setupAdmin(service);
}, 60_000);
afterAll(async () => {
  await service?.close();
});

const session =
  (who: SignedIn) =>
  async (path: string, method = "GET", body?: unknown) => {
    const headers = sessionHeaders(service, who);
    if (body === undefined) delete headers["content-type"];
    return service.call(path, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  };
const withKey =
  (key: string) =>
  async (path: string, method = "GET", body?: unknown) =>
    service.call(path, { method, headers: jsonHeaders(key), ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
const withPortal =
  (token: string) =>
  async (path: string, method = "GET", body?: unknown) =>
    service.call(path, {
      method,
      headers: { authorization: `Portal ${token}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

const keyBody = (org: string, env: string, scopes: string[]) => ({
  owner: { type: "organization", id: org },
  name: "k",
  environment: env,
  scopes,
  expires_at: new Date(Date.now() + 86_400_000).toISOString(),
});

async function setUp(roles: (Role | null)[][]): Promise<Run> {
  const n = ++runCount;
  const root = withKey(service.adminKey);
  const orgs = [`run${n}-a`, `run${n}-b`];
  const people: SignedIn[] = [];
  for (let p = 0; p < PEOPLE; p++) people.push(await createMember(service, admin, `p${p}-run${n}@example.com`));
  const run: Run = { orgs, people, roles: roles.map((r) => [...r]), keys: [], orgKeys: [], orgKeyModels: [], portals: [] };
  for (const [o, org] of orgs.entries()) {
    expect((await root("/v1/organizations", "POST", { id: org, name: org })).status).toBe(201);
    for (const [p, role] of (roles[o] as (Role | null)[]).entries()) {
      if (role === null) continue;
      const added = await root(`/v1/organizations/${org}/members`, "POST", { user_id: people[p]?.userId, role });
      expect(added.status, added.text).toBe(201);
    }
    const own = await root("/v1/keys", "POST", { ...keyBody(org, "sandbox", ["read"]), scopes: ["admin"] });
    run.orgKeys.push((own.json() as { key: string }).key);
    const ownModel: ModelKey = { id: (own.json() as { id: string }).id, org: o, person: null, scopes: ["admin"], live: true };
    run.keys.push(ownModel);
    run.orgKeyModels.push(ownModel);
    const seeded = await root("/v1/keys", "POST", keyBody(org, "sandbox", ["read"]));
    run.keys.push({ id: (seeded.json() as { id: string }).id, org: o, person: null, scopes: ["read"], live: true });
    const portal = await root("/v1/portal-sessions", "POST", {
      owner: { type: "organization", id: org },
      actor: { id: `host-${n}-${o}` },
      policy: { scopes: ["read"], environments: ["sandbox"] },
    });
    expect(portal.status, portal.text).toBe(201);
    run.portals.push((portal.json() as { token: string }).token);
  }
  return run;
}

/** Sends one command; records what the service did in the model when it did it. */
async function send(run: Run, c: Command): Promise<{ status: number; text: string }> {
  const org = (o: number) => run.orgs[o] as string;
  const pickKey = (k: number) => run.keys[k % Math.max(1, run.keys.length)];
  switch (c.kind) {
    case "create": {
      const reply = await session(run.people[c.person] as SignedIn)("/v1/keys", "POST", keyBody(org(c.org), c.env, c.scopes));
      if (reply.status === 201)
        run.keys.push({ id: (reply.json() as { id: string }).id, org: c.org, person: c.person, scopes: c.scopes, live: true });
      return reply;
    }
    case "key": {
      const key = pickKey(c.key);
      if (!key) return { status: 404, text: "no key" };
      const call = session(run.people[c.person] as SignedIn);
      const reply =
        c.action === "read"
          ? await call(`/v1/keys/${key.id}`)
          : c.action === "rename"
            ? await call(`/v1/keys/${key.id}`, "PATCH", { name: "renamed" })
            : await call(`/v1/keys/${key.id}/${c.action}`, "POST", {});
      if (c.action === "revoke" && reply.status === 200) key.live = false;
      if (c.action === "rotate" && reply.status === 201) {
        key.live = false;
        run.keys.push({ id: (reply.json() as { id: string }).id, org: key.org, person: key.person, scopes: key.scopes, live: true });
      }
      return reply;
    }
    case "member": {
      const call = session(run.people[c.person] as SignedIn);
      const target = run.people[c.target] as SignedIn;
      const before = run.roles[c.org]?.[c.target] ?? null;
      const path = `/v1/organizations/${org(c.org)}/members`;
      const reply =
        c.role === null
          ? await call(`${path}/${target.userId}`, "DELETE")
          : before === null
            ? await call(path, "POST", { user_id: target.userId, role: c.role })
            : await call(`${path}/${target.userId}`, "PATCH", { role: c.role });
      if (reply.status < 300) (run.roles[c.org] as (Role | null)[])[c.target] = c.role;
      return reply;
    }
    case "rename-org":
      return session(run.people[c.person] as SignedIn)(`/v1/organizations/${org(c.org)}`, "PATCH", { name: "renamed" });
    case "limits":
      return session(run.people[c.person] as SignedIn)(`/v1/organizations/${org(c.org)}`, "PATCH", { quota: { remaining: 1_000_000 } });
    case "org-key":
    case "portal": {
      const call = c.kind === "org-key" ? withKey(run.orgKeys[c.org] as string) : withPortal(run.portals[c.org] as string);
      if (c.action === "create-there" || c.action === "create-wide") {
        const target = c.action === "create-wide" ? org(1 - c.org) : org(c.org);
        const reply = await call("/v1/keys", "POST", keyBody(target, "sandbox", ["read"]));
        if (reply.status === 201) {
          const created = reply.json() as { id: string; owner: { id: string } };
          run.keys.push({ id: created.id, org: run.orgs.indexOf(created.owner.id), person: null, scopes: ["read"], live: true });
        }
        return reply;
      }
      const key = pickKey(c.key);
      if (!key) return { status: 404, text: "no key" };
      const reply = c.action === "read" ? await call(`/v1/keys/${key.id}`) : await call(`/v1/keys/${key.id}/revoke`, "POST", {});
      if (c.action === "revoke" && reply.status === 200) key.live = false;
      return reply;
    }
  }
}

/** After a sequence: the service holds exactly the members and organization keys the model holds. */
async function compare(run: Run): Promise<void> {
  const root = withKey(service.adminKey);
  for (const [o, org] of run.orgs.entries()) {
    const members = (await root(`/v1/organizations/${org}/members`)).json() as { data: { user_id: string; role: Role }[] };
    const expected = run.people
      .map((p, i) => [p.userId, run.roles[o]?.[i] ?? null] as const)
      .filter(([, role]) => role !== null)
      .sort();
    expect(members.data.map((m) => [m.user_id, m.role]).sort(), `members of ${org}`).toEqual(expected);
    const keys = (await root(`/v1/keys?owner_type=organization&owner_id=${org}&limit=200`)).json() as {
      data: { id: string; environment: string; scopes: string[] }[];
    };
    expect(keys.data.map((k) => k.id).sort(), `keys of ${org}`).toEqual(
      run.keys
        .filter((k) => k.org === o)
        .map((k) => k.id)
        .sort(),
    );
  }
}

describe("organizations: no member, organization key or portal session acts beyond its role, its organization and its policy", () => {
  it("holds over generated roles and sequences (SQLite, real HTTP)", async () => {
    await fuzzAsync(
      fc.asyncProperty(initialRoles, fc.array(command, { minLength: 4, maxLength: 14 }), async (roles, commands) => {
        const run = await setUp(roles);
        const steps: string[] = [];
        for (const c of commands) {
          const expected = verdict(run, c);
          const reply = await send(run, c);
          steps.push(`${JSON.stringify(c)} → ${reply.status} (oracle: ${expected})`);
          const where = `\n${steps.join("\n")}\n${reply.text.slice(0, 300)}`;
          if (expected === "refuse")
            expect(reply.status >= 400 && reply.status < 500, `refused action answered ${reply.status}${where}`).toBe(true);
          if (expected === "allow") expect(reply.status < 300, `allowed action answered ${reply.status}${where}`).toBe(true);
          expect(reply.status, `server error${where}`).toBeLessThan(500);
        }
        await compare(run);
      }),
      { numRuns: NUM_RUNS, endOnFailure: true },
    );
  }, 240_000);
});
