import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { generateApiKey } from "../../src/core/key-format.js";
import { createMember, sessionHeaders, setupAdmin } from "../helpers/people.js";
import { createKeyOverHttp, jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

let service: TestService;
beforeEach(async () => {
  service = await startTestService();
});
afterEach(async () => {
  await service.close();
});

const usage = async (query: string, key = service.adminKey) => service.call(`/v1/usage?${query}`, { headers: jsonHeaders(key) });

describe("GET /v1/usage", () => {
  it("counts verifications by key and outcome, per minute, and records the last use", async () => {
    const alice = await createKeyOverHttp(service, { rate_limit: { requests: 2, per_seconds: 60 } });
    for (let i = 0; i < 3; i++) await service.call("/v1/authz", { headers: { "x-api-key": alice.key } });
    await service.call("/v1/authz", { headers: { "x-api-key": alice.key, "x-keyward-scopes": "write" } });
    const response = await usage(`key_id=${alice.id}&bucket=minute`);
    expect(response.status).toBe(200);
    const body = response.json() as { bucket: string; data: { key_id: string; outcome: string; count: number; start: string }[] };
    expect(body.bucket).toBe("minute");
    const counts = Object.fromEntries(body.data.map((row) => [row.outcome, row.count]));
    expect(counts).toEqual({ VALID: 2, RATE_LIMITED: 1, INSUFFICIENT_SCOPE: 1 });
    expect(body.data.every((row) => row.key_id === alice.id && row.start.endsWith(":00.000Z"))).toBe(true);
    const key = (await service.call(`/v1/keys/${alice.id}`, { headers: jsonHeaders(service.adminKey) })).json() as Record<string, unknown>;
    expect(typeof key.last_used_at).toBe("string");
    expect(key.last_used_ip).toBe("127.0.0.1");
  });

  it("filters by owner and outcome, and counts requests no key was found for", async () => {
    const bob = await createKeyOverHttp(service, { owner: { type: "user", id: "bob" } });
    await service.call("/v1/authz", { headers: { "x-api-key": bob.key } });
    await service.call("/v1/authz", { headers: { "x-api-key": generateApiKey({ prefix: "kw", environment: "sandbox" }) } });
    await service.call("/v1/authz");
    const byOwner = (await usage("owner=user:bob&bucket=day")).json() as { data: { count: number; outcome: string }[] };
    expect(byOwner.data).toEqual([expect.objectContaining({ outcome: "VALID", count: 1 })]);
    const missing = (await usage("outcome=MISSING")).json() as { data: { key_id: string | null; count: number }[] };
    expect(missing.data).toEqual([expect.objectContaining({ key_id: null, count: 1 })]);
    const unknown = (await usage("outcome=NOT_FOUND")).json() as { data: { key_id: string | null; count: number }[] };
    expect(unknown.data).toEqual([expect.objectContaining({ key_id: null, count: 1 })]);
  });

  it("sums over keys with group_by=outcome and says when rows were cut short", async () => {
    // Carol's keys only: the admin key's own management calls are counted too, under its owner.
    const carol = { owner: { type: "user", id: "carol" } };
    const keys = [
      await createKeyOverHttp(service, carol),
      await createKeyOverHttp(service, carol),
      await createKeyOverHttp(service, carol),
    ];
    for (const key of keys) expect((await service.call("/v1/authz", { headers: { "x-api-key": key.key } })).status).toBe(200);
    await service.call("/v1/authz", { headers: { "x-api-key": keys[0]?.key ?? "", "x-keyward-scopes": "write" } });
    await service.call("/v1/authz");
    const byKey = (await usage("owner=user:carol&bucket=day")).json() as {
      group_by: string;
      has_more: boolean;
      data: { key_id?: string | null; outcome: string; count: number }[];
    };
    expect(byKey).toMatchObject({ group_by: "key", has_more: false });
    expect(byKey.data).toHaveLength(4);
    const cut = (await usage("owner=user:carol&bucket=day&limit=2")).json() as { has_more: boolean; data: unknown[] };
    expect(cut).toMatchObject({ has_more: true });
    expect(cut.data).toHaveLength(2);
    const grouped = (await usage("owner=user:carol&bucket=day&group_by=outcome")).json() as {
      group_by: string;
      has_more: boolean;
      data: Record<string, unknown>[];
    };
    expect(grouped).toMatchObject({ group_by: "outcome", has_more: false });
    expect(grouped.data.map(({ outcome, count }) => `${outcome} ${count}`).sort()).toEqual(["INSUFFICIENT_SCOPE 1", "VALID 3"]);
    expect(grouped.data.every((row) => !("key_id" in row))).toBe(true);
    const whole = (await usage("bucket=day&group_by=outcome")).json() as { data: { outcome: string; count: number }[] };
    expect(whole.data.find((row) => row.outcome === "MISSING")?.count).toBe(1);
    expect((await usage("group_by=owner")).status).toBe(400);
  });

  it("refuses bad filters with field errors, and callers without keys:read", async () => {
    expect((await usage("bucket=week")).status).toBe(400);
    expect((await usage("owner=alice")).status).toBe(400);
    expect((await usage("since=2026-11-23T10:00:00Z&until=2026-11-23T09:00:00Z")).status).toBe(400);
    expect((await usage("unknown=1")).status).toBe(400);
    const plain = await createKeyOverHttp(service);
    expect((await usage("", plain.key)).status).toBe(403);
  });
});

describe("GET /v1/usage from the dashboard", () => {
  it("a member sees the usage of their own keys only; another member's key is not there", async () => {
    const admin = await setupAdmin(service);
    const alice = await createMember(service, admin, "alice@example.com");
    const bob = await createMember(service, admin, "bob@example.com");
    const bobsKey = await createKeyOverHttp(service, { owner: { type: "user", id: bob.userId } });
    const alicesKey = await createKeyOverHttp(service, { owner: { type: "user", id: alice.userId } });
    // Both uses must be VALID ones: a refusal would look like lost usage below.
    expect((await service.call("/v1/authz", { headers: { "x-api-key": bobsKey.key } })).status).toBe(200);
    expect((await service.call("/v1/authz", { headers: { "x-api-key": alicesKey.key } })).status).toBe(200);
    const asAlice = (query: string) => service.call(`/v1/usage?${query}`, { headers: sessionHeaders(service, alice) });
    const own = (await asAlice("bucket=day")).json() as { data: { key_id: string }[] };
    // On a failure, what the service warned of (a failed usage flush is logged, not thrown).
    const warnings = service.logs.filter((line) => /"level":[456]0/.test(line)).join("");
    expect(
      own.data.map((row) => row.key_id),
      warnings,
    ).toEqual([alicesKey.id]);
    expect((await asAlice(`key_id=${bobsKey.id}`)).status).toBe(404);
    expect((await asAlice(`owner=user:${bob.userId}`)).status).toBe(404);
  });
});
