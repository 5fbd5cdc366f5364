import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMember, type SignedIn, sessionHeaders, setupAdmin } from "../helpers/people.js";
import { createKeyOverHttp, startTestService, type TestService } from "../helpers/service.js";

let service: TestService;
let admin: SignedIn;
let member: SignedIn;
let other: SignedIn;
const created: Record<string, { id: string; key: string; ref: string }> = {};

type Page = { data: { id: string; name: string; owner: { id: string } }[]; next_cursor: string | null; has_more: boolean; total?: number };

beforeAll(async () => {
  service = await startTestService();
  admin = await setupAdmin(service);
  member = await createMember(service, admin, "mia@example.com");
  other = await createMember(service, admin, "otto@example.com");
  const make = async (name: string, body: Record<string, unknown> = {}) => {
    created[name] = (await createKeyOverHttp(service, { name, ...body })) as { id: string; key: string; ref: string };
  };
  await make("Billing worker", { owner: { type: "application", id: "billing" }, environment: "production" });
  await make("billing backup", { expires_at: new Date(Date.now() + 3 * 86_400_000).toISOString() });
  await make("search indexer", { expires_at: new Date(Date.now() + 60 * 86_400_000).toISOString() });
  await make("mia's billing", { owner: { type: "user", id: member.userId } });
  await make("otto's billing", { owner: { type: "user", id: other.userId } });
});
afterAll(async () => {
  await service.close();
});

const asAdmin = async (query: string): Promise<{ status: number; body: Page & { code?: string } }> => {
  const response = await service.call(`/v1/keys${query}`, { headers: { authorization: `Bearer ${service.adminKey}` } });
  return { status: response.status, body: response.json() as Page & { code?: string } };
};
const namesOf = (page: Page) => page.data.map((k) => k.name);

describe("GET /v1/keys: search, filters and counts", () => {
  it("finds keys by name, id, ref and last four characters", async () => {
    expect(namesOf((await asAdmin("?q=BILLING")).body)).toEqual(["otto's billing", "mia's billing", "billing backup", "Billing worker"]);
    expect(namesOf((await asAdmin(`?q=${created["search indexer"]?.id}`)).body)).toEqual(["search indexer"]);
    const ref = created["Billing worker"]?.ref as string;
    expect(namesOf((await asAdmin(`?q=${encodeURIComponent(ref)}`)).body)).toEqual(["Billing worker"]);
    expect(namesOf((await asAdmin(`?q=${encodeURIComponent(`…${ref.slice(-4)}`)}`)).body)).toContain("Billing worker");
  });

  it("pages a search with has_more and next_cursor, and counts it only when asked", async () => {
    const first = (await asAdmin("?q=billing&limit=3")).body;
    expect(first.data).toHaveLength(3);
    expect(first.has_more).toBe(true);
    expect(first).not.toHaveProperty("total");
    const second = (await asAdmin(`?q=billing&limit=3&cursor=${first.next_cursor}&include_total=true`)).body;
    expect(namesOf(second)).toEqual(["Billing worker"]);
    expect(second).toMatchObject({ has_more: false, next_cursor: null, total: 4 });
    expect((await asAdmin("?include_total=true&environment=production")).body.total).toBe(2);
  });

  it("lists keys expiring within a number of seconds, with the other filters", async () => {
    expect(namesOf((await asAdmin(`?expiring_within=${7 * 86_400}`)).body)).toEqual(["billing backup"]);
    expect(namesOf((await asAdmin(`?expiring_within=${90 * 86_400}&status=active`)).body)).toEqual(["search indexer", "billing backup"]);
    expect(namesOf((await asAdmin(`?expiring_within=${90 * 86_400}&q=indexer`)).body)).toEqual(["search indexer"]);
  });

  it("lists one user's keys with the owner filter", async () => {
    const page = (await asAdmin(`?owner_type=user&owner_id=${member.userId}&include_total=true`)).body;
    expect(namesOf(page)).toEqual(["mia's billing"]);
    expect(page.total).toBe(1);
    expect(namesOf((await asAdmin(`?owner_id=${member.userId}`)).body)).toEqual(["mia's billing"]);
  });

  it("keeps a member's search to their own keys, counts included", async () => {
    const response = await service.call("/v1/keys?q=billing&include_total=true", { headers: sessionHeaders(service, member) });
    const page = response.json() as Page;
    expect(namesOf(page)).toEqual(["mia's billing"]);
    expect(page.total).toBe(1);
    const otto = await service.call(`/v1/keys?q=billing&owner_id=${other.userId}&include_total=true`, {
      headers: sessionHeaders(service, member),
    });
    expect((otto.json() as Page).data.map((k) => k.owner.id)).toEqual([member.userId]);
  });

  it("refuses bad parameters, and a key in the search box", async () => {
    for (const query of ["?q=", "?expiring_within=0", "?expiring_within=7d", "?include_total=maybe", `?q=${"x".repeat(101)}`]) {
      const response = await asAdmin(query);
      expect(response.status, query).toBe(400);
      expect(response.body.code, query).toBe("VALIDATION_FAILED");
    }
    const key = await asAdmin(`?q=${created["Billing worker"]?.key}`);
    expect(key.status).toBe(400);
    expect(key.body.code).toBe("KEY_IN_URL");
  });
});
