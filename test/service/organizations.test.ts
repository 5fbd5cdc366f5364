import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createMember, type SignedIn, sessionHeaders, setupAdmin } from "../helpers/people.js";
import { jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

// Organizations (docs/organizations.md): a third owner type whose members manage its keys by role,
// and limits all its keys share.

let service: TestService;
let admin: SignedIn;

beforeEach(async () => {
  service = await startTestService();
  admin = await setupAdmin(service);
});
afterEach(async () => {
  await service.close();
});

const as =
  (who: SignedIn) =>
  (path: string, method = "GET", body?: unknown) => {
    const headers = sessionHeaders(service, who);
    if (body === undefined) delete headers["content-type"];
    return service.call(path, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  };

const asKey =
  (key: string) =>
  (path: string, method = "GET", body?: unknown) =>
    service.call(path, { method, headers: jsonHeaders(key), ...(body === undefined ? {} : { body: JSON.stringify(body) }) });

const sandboxKey = (org: string, name = "k") => ({
  owner: { type: "organization", id: org },
  name,
  environment: "sandbox",
  scopes: ["read"],
});

async function orgWithMembers(roles: Record<string, "owner" | "admin" | "developer" | "viewer">) {
  const created = await as(admin)("/v1/organizations", "POST", { id: "acme", name: "Acme Inc." });
  expect(created.status).toBe(201);
  const people: Record<string, SignedIn> = {};
  for (const [name, role] of Object.entries(roles)) {
    people[name] = await createMember(service, admin, `${name}@acme.test`);
    const added = await as(admin)("/v1/organizations/acme/members", "POST", { email: `${name}@acme.test`, role });
    expect(added.status, added.text).toBe(201);
  }
  return people;
}

describe("organizations", () => {
  it("are created by administrators only, and listed to each member as their own", async () => {
    const people = await orgWithMembers({ olga: "owner", vic: "viewer" });
    const outsider = await createMember(service, admin, "out@else.test");
    // A member (even an organization's owner) creates no organization.
    expect((await as(people.olga as SignedIn)("/v1/organizations", "POST", { name: "Mine" })).status).toBe(403);
    expect((await as(admin)("/v1/organizations", "POST", { id: "acme", name: "again" })).status).toBe(409);
    const listed = (await as(people.vic as SignedIn)("/v1/organizations")).json() as { data: { id: string; role: string }[] };
    expect(listed.data.map((o) => [o.id, o.role])).toEqual([["acme", "viewer"]]);
    expect(((await as(outsider)("/v1/organizations")).json() as { data: unknown[] }).data).toEqual([]);
    // An outsider is told it does not exist.
    expect((await as(outsider)("/v1/organizations/acme")).status).toBe(404);
    expect((await as(outsider)("/v1/organizations/acme/members")).status).toBe(404);
  });

  it("members act on the organization's keys by role: viewers read, developers write their own, admins all", async () => {
    const people = await orgWithMembers({ ada: "admin", dev: "developer", dan: "developer", vic: "viewer" });
    const [ada, dev, dan, vic] = [people.ada, people.dev, people.dan, people.vic] as [SignedIn, SignedIn, SignedIn, SignedIn];
    const devKey = await as(dev)("/v1/keys", "POST", sandboxKey("acme", "dev's"));
    expect(devKey.status, devKey.text).toBe(201);
    const devKeyId = (devKey.json() as { id: string }).id;
    // The viewer reads the organization's keys and its usage, and writes nothing.
    const seen = (await as(vic)("/v1/keys?owner_type=organization&owner_id=acme")).json() as { data: { id: string }[] };
    expect(seen.data.map((k) => k.id)).toEqual([devKeyId]);
    expect((await as(vic)(`/v1/keys/${devKeyId}`)).status).toBe(200);
    expect((await as(vic)("/v1/usage?owner=organization:acme&group_by=outcome")).status).toBe(200);
    expect((await as(vic)("/v1/keys", "POST", sandboxKey("acme"))).status).toBe(403);
    expect((await as(vic)(`/v1/keys/${devKeyId}/revoke`, "POST", {})).status).toBe(403);
    // Another developer reads dev's key but may not rotate or revoke it.
    expect((await as(dan)(`/v1/keys/${devKeyId}`)).status).toBe(200);
    expect((await as(dan)(`/v1/keys/${devKeyId}/rotate`, "POST", {})).status).toBe(403);
    expect((await as(dan)(`/v1/keys/${devKeyId}/revoke`, "POST", {})).status).toBe(403);
    // The developer rotates their own; the admin revokes anyone's.
    const rotated = await as(dev)(`/v1/keys/${devKeyId}/rotate`, "POST", {});
    expect(rotated.status, rotated.text).toBe(201);
    const successor = (rotated.json() as { id: string }).id;
    // A key of the lineage dev started stays dev's after rotation.
    const again = await as(dev)(`/v1/keys/${successor}/rotate`, "POST", {});
    expect(again.status).toBe(201);
    expect((await as(dan)(`/v1/keys/${(again.json() as { id: string }).id}/revoke`, "POST", {})).status).toBe(403);
    expect((await as(ada)(`/v1/keys/${(again.json() as { id: string }).id}/revoke`, "POST", {})).status).toBe(200);
    // No role confers beyond the member policy: no production key, no management scope.
    expect((await as(ada)("/v1/keys", "POST", { ...sandboxKey("acme"), environment: "production" })).status).toBe(403);
    expect((await as(ada)("/v1/keys", "POST", { ...sandboxKey("acme"), scopes: ["keys:write"] })).status).toBe(403);
  });

  it("no role is handed more by rotating or re-enabling: the organization's admin key stays out of reach", async () => {
    const people = await orgWithMembers({ olga: "owner" });
    const olga = people.olga as SignedIn;
    const api = asKey(service.adminKey);
    const automation = (await api("/v1/keys", "POST", { ...sandboxKey("acme", "automation"), scopes: ["admin"] })).json() as { id: string };
    const rotated = await as(olga)(`/v1/keys/${automation.id}/rotate`, "POST", {});
    expect(rotated.status).toBe(403);
    expect(rotated.text).not.toMatch(/_(live|test)_/);
    // The owner may disable the organization, but only an administrator enables it again.
    expect((await as(olga)("/v1/organizations/acme", "PATCH", { disabled: true })).status).toBe(200);
    expect((await as(olga)("/v1/organizations/acme", "PATCH", { disabled: false })).status).toBe(403);
    expect((await as(admin)("/v1/organizations/acme", "PATCH", { disabled: false })).status).toBe(200);
  });

  it("a developer asks for a production key for the organization; an administrator approves; the developer picks it up once", async () => {
    const people = await orgWithMembers({ dev: "developer", vic: "viewer" });
    const [dev, vic] = [people.dev, people.vic] as [SignedIn, SignedIn];
    const sandbox = (await as(dev)("/v1/keys", "POST", sandboxKey("acme"))).json() as { id: string };
    expect((await as(vic)("/v1/key-requests", "POST", { key_id: sandbox.id })).status).toBe(403);
    const asked = await as(dev)("/v1/key-requests", "POST", { key_id: sandbox.id, reason: "go live" });
    expect(asked.status, asked.text).toBe(201);
    const requestId = (asked.json() as { id: string }).id;
    // The viewer sees the organization's requests; approving is for administrators.
    const listed = (await as(vic)("/v1/key-requests?owner_type=organization&owner_id=acme")).json() as { data: { id: string }[] };
    expect(listed.data.map((r) => r.id)).toEqual([requestId]);
    expect((await as(dev)(`/v1/key-requests/${requestId}/approve`, "POST", {})).status).toBe(403);
    expect((await as(admin)(`/v1/key-requests/${requestId}/approve`, "POST", {})).status).toBe(200);
    expect((await as(vic)(`/v1/key-requests/${requestId}/claim`, "POST", {})).status).toBe(403);
    const claimed = await as(dev)(`/v1/key-requests/${requestId}/claim`, "POST", {});
    expect(claimed.status, claimed.text).toBe(201);
    expect(claimed.json()).toMatchObject({ environment: "production", owner: { type: "organization", id: "acme" } });
    expect((await as(dev)(`/v1/key-requests/${requestId}/claim`, "POST", {})).status).toBe(409);
  });

  it("a member removed loses access at once; the organization keeps its keys", async () => {
    const people = await orgWithMembers({ olga: "owner", dev: "developer" });
    const dev = people.dev as SignedIn;
    const keyId = ((await as(dev)("/v1/keys", "POST", sandboxKey("acme"))).json() as { id: string }).id;
    expect((await as(people.olga as SignedIn)(`/v1/organizations/acme/members/${dev.userId}`, "DELETE")).status).toBe(204);
    expect((await as(dev)(`/v1/keys/${keyId}`)).status).toBe(404);
    expect((await as(dev)("/v1/organizations/acme")).status).toBe(404);
    const key = (await as(admin)(`/v1/keys/${keyId}`)).json() as { owner: { type: string; id: string }; status: string };
    expect(key.owner).toEqual({ type: "organization", id: "acme" });
    expect(key.status).toBe("active");
  });

  it("members are managed by owners (any role) and admins (developers and viewers), and the last owner stays", async () => {
    const people = await orgWithMembers({ olga: "owner", ada: "admin", vic: "viewer" });
    const [olga, ada, vic] = [people.olga, people.ada, people.vic] as [SignedIn, SignedIn, SignedIn];
    const newcomer = await createMember(service, admin, "new@acme.test");
    // An admin adds a developer but neither an admin nor an owner; a viewer adds nobody.
    expect((await as(ada)("/v1/organizations/acme/members", "POST", { email: "new@acme.test", role: "admin" })).status).toBe(403);
    expect((await as(vic)("/v1/organizations/acme/members", "POST", { email: "new@acme.test", role: "viewer" })).status).toBe(403);
    expect((await as(ada)("/v1/organizations/acme/members", "POST", { email: "new@acme.test", role: "developer" })).status).toBe(201);
    // An admin may not promote, nor touch the owner.
    expect((await as(ada)(`/v1/organizations/acme/members/${newcomer.userId}`, "PATCH", { role: "owner" })).status).toBe(403);
    expect((await as(ada)(`/v1/organizations/acme/members/${olga.userId}`, "DELETE")).status).toBe(403);
    expect((await as(ada)(`/v1/organizations/acme/members/${ada.userId}`, "PATCH", { role: "owner" })).status).toBe(403);
    // The only owner can neither leave nor step down.
    expect((await as(olga)(`/v1/organizations/acme/members/${olga.userId}`, "DELETE")).status).toBe(409);
    expect((await as(olga)(`/v1/organizations/acme/members/${olga.userId}`, "PATCH", { role: "admin" })).status).toBe(409);
    // Once someone else is owner, they can; a viewer may always leave.
    expect((await as(olga)(`/v1/organizations/acme/members/${ada.userId}`, "PATCH", { role: "owner" })).status).toBe(200);
    expect((await as(olga)(`/v1/organizations/acme/members/${olga.userId}`, "DELETE")).status).toBe(204);
    expect((await as(vic)(`/v1/organizations/acme/members/${vic.userId}`, "DELETE")).status).toBe(204);
    const members = (await as(admin)("/v1/organizations/acme/members")).json() as { data: { email: string; role: string }[] };
    expect(members.data.map((m) => [m.email, m.role])).toEqual([
      ["ada@acme.test", "owner"],
      ["new@acme.test", "developer"],
    ]);
  });

  it("an organization's name is changed by its owners and admins; its shared limits by administrators only", async () => {
    const people = await orgWithMembers({ ada: "admin", dev: "developer" });
    expect((await as(people.ada as SignedIn)("/v1/organizations/acme", "PATCH", { name: "Acme Corp" })).status).toBe(200);
    expect((await as(people.dev as SignedIn)("/v1/organizations/acme", "PATCH", { name: "Mine" })).status).toBe(403);
    const loosen = await as(people.ada as SignedIn)("/v1/organizations/acme", "PATCH", { rate_limit: null, name: "x" });
    expect(loosen.status).toBe(403);
    // A partly refused change changes nothing.
    expect(((await as(admin)("/v1/organizations/acme")).json() as { name: string }).name).toBe("Acme Corp");
    const limited = await as(admin)("/v1/organizations/acme", "PATCH", { quota: { remaining: 5 } });
    expect(limited.status).toBe(200);
    expect((limited.json() as { shared_limits: unknown }).shared_limits).toEqual({
      rate_limit: null,
      concurrency: null,
      quota: { remaining: 5 },
    });
  });

  it("shared limits: every key of the organization draws from them together, the tighter limit wins, and a refused request spends nothing", async () => {
    await as(admin)("/v1/organizations", "POST", { id: "acme", name: "Acme", quota: { remaining: 5 } });
    const api = asKey(service.adminKey);
    const keys: string[] = [];
    for (const name of ["a", "b"])
      keys.push(((await api("/v1/keys", "POST", { ...sandboxKey("acme", name) })).json() as { key: string }).key);
    const tight = (await api("/v1/keys", "POST", { ...sandboxKey("acme", "tight"), quota: { remaining: 1 } })).json() as {
      key: string;
      id: string;
    };
    const use = (key: string) => service.call("/v1/authz", { headers: { "x-api-key": key } });
    // The key's own quota (1) is tighter than the organization's (5).
    expect((await use(tight.key)).status).toBe(200);
    expect((await use(tight.key)).status).toBe(429);
    // Four left for the organization, shared between the other keys.
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await use(keys[i % 2] as string)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
    const introspected = (await service.call("/v1/introspect", { headers: { "x-api-key": keys[0] as string } })).json() as {
      limits: { owner?: { quota?: { used: number; remaining: number } } };
    };
    expect(introspected.limits.owner?.quota).toMatchObject({ used: 5, remaining: 0 });
    // Raising the organization's quota holds at once (the verify cache follows the owner's change).
    await as(admin)("/v1/organizations/acme", "PATCH", { quota: { remaining: 6 } });
    expect((await use(keys[0] as string)).status).toBe(200);
    expect((await use(keys[1] as string)).status).toBe(429);
  });

  it("a key refused by the organization's quota gives back what it spent of its own", async () => {
    await as(admin)("/v1/organizations", "POST", { id: "acme", name: "Acme", quota: { remaining: 1 } });
    const api = asKey(service.adminKey);
    const own = (await api("/v1/keys", "POST", { ...sandboxKey("acme", "own"), quota: { remaining: 3 } })).json() as { key: string };
    const other = (await api("/v1/keys", "POST", sandboxKey("acme", "other"))).json() as { key: string };
    expect((await service.call("/v1/authz", { headers: { "x-api-key": other.key } })).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await service.call("/v1/authz", { headers: { "x-api-key": own.key } })).status).toBe(429);
    const introspected = (await service.call("/v1/introspect", { headers: { "x-api-key": own.key } })).json() as {
      limits: { quota: { used: number } };
    };
    expect(introspected.limits.quota.used).toBe(0);
  });

  it("a key owned by an organization manages that organization's keys only, whatever its scopes", async () => {
    await as(admin)("/v1/organizations", "POST", { id: "acme", name: "Acme" });
    await as(admin)("/v1/organizations", "POST", { id: "globex", name: "Globex" });
    const api = asKey(service.adminKey);
    const acmeAdmin = (await api("/v1/keys", "POST", { ...sandboxKey("acme", "automation"), scopes: ["admin"] })).json() as { key: string };
    const globexKey = (await api("/v1/keys", "POST", sandboxKey("globex"))).json() as { id: string };
    const acme = asKey(acmeAdmin.key);
    expect((await acme("/v1/keys", "POST", sandboxKey("acme"))).status).toBe(201);
    expect((await acme("/v1/keys", "POST", sandboxKey("globex"))).status).toBe(403);
    expect((await acme(`/v1/keys/${globexKey.id}`)).status).toBe(404);
    expect((await acme("/v1/users")).status).toBe(403);
    expect((await acme("/v1/organizations", "POST", { name: "x" })).status).toBe(403);
    expect(((await acme("/v1/organizations")).json() as { data: { id: string }[] }).data.map((o) => o.id)).toEqual(["acme"]);
  });
});
