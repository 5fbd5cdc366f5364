import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TIMESTAMP_RULE } from "../../src/core/timestamps.js";
import { createMember, sessionHeaders, setupAdmin } from "../helpers/people.js";
import { createKeyOverHttp, jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

// Issue 19, item 4: every timestamp parameter goes through one parser; what it refuses is a
// 400 VALIDATION_FAILED naming the field, never a 500 and never a silently empty filter.

let service: TestService;
beforeAll(async () => {
  service = await startTestService();
});
afterAll(async () => {
  await service.close();
});

const LEAP = "2026-12-31T23:59:60Z";

type Problem = { code: string; status: number; detail: string; errors: { field: string; message: string }[] };

function expectFieldRefused(response: { status: number; json: () => unknown }, field: string): void {
  expect(response.status).toBe(400);
  const problem = response.json() as Problem;
  expect(problem.code).toBe("VALIDATION_FAILED");
  expect(problem.errors).toContainEqual({ field, message: TIMESTAMP_RULE });
  expect(problem.detail).toContain(field);
}

describe("timestamp parameters", () => {
  it("GET /v1/usage with a leap second is 400 naming the field, for an admin key and for a member's session", async () => {
    const get = (query: string, headers: Record<string, string>) => service.call(`/v1/usage?${query}`, { headers });
    expectFieldRefused(await get(`since=${LEAP}`, jsonHeaders(service.adminKey)), "querystring.since");
    expectFieldRefused(
      await get(`until=${encodeURIComponent("2026-06-30T23:59:60+00:00")}`, jsonHeaders(service.adminKey)),
      "querystring.until",
    );
    const admin = await setupAdmin(service);
    const member = await createMember(service, admin, "member@example.com");
    expectFieldRefused(await get(`since=${LEAP}`, sessionHeaders(service, member)), "querystring.since");
    // What stays accepted: an offset, a fraction, lower-case t and z.
    const ok = await get(
      `since=${encodeURIComponent("2026-01-01t00:00:00.5+01:00")}&until=2026-01-02T00:00:00z`,
      jsonHeaders(service.adminKey),
    );
    expect(ok.status).toBe(200);
    expect((ok.json() as { since: string }).since).toBe("2025-12-31T23:00:00.000Z");
  });

  it("audit filters refuse what they cannot read instead of matching nothing", async () => {
    await createKeyOverHttp(service);
    for (const path of ["/v1/audit-events", "/v1/audit-events/export"]) {
      expectFieldRefused(await service.call(`${path}?since=${LEAP}`, { headers: jsonHeaders(service.adminKey) }), "querystring.since");
      expectFieldRefused(await service.call(`${path}?until=${LEAP}`, { headers: jsonHeaders(service.adminKey) }), "querystring.until");
      expectFieldRefused(
        await service.call(`${path}?since=${encodeURIComponent("2026-01-01 00:00:00Z")}`, { headers: jsonHeaders(service.adminKey) }),
        "querystring.since",
      );
    }
    const listed = await service.call("/v1/audit-events?since=2000-01-01T00:00:00Z", { headers: jsonHeaders(service.adminKey) });
    expect((listed.json() as { data: unknown[] }).data.length).toBeGreaterThan(0);
  });

  it("expires_at on create and update goes through the same parser", async () => {
    const created = await createKeyOverHttp(service);
    const post = await service.call("/v1/keys", {
      method: "POST",
      headers: jsonHeaders(service.adminKey),
      body: JSON.stringify({
        owner: { type: "user", id: "alice" },
        name: "k",
        environment: "sandbox",
        scopes: [],
        expires_at: "2030-12-31T23:59:60Z",
      }),
    });
    expectFieldRefused(post, "body.expires_at");
    for (const expires of ["2030-02-30T00:00:00Z", "2030-01-01T00:00:00+24:00", "2030-01-01"]) {
      const patch = await service.call(`/v1/keys/${created.id}`, {
        method: "PATCH",
        headers: jsonHeaders(service.adminKey),
        body: JSON.stringify({ expires_at: expires }),
      });
      expectFieldRefused(patch, "body.expires_at");
    }
    const patched = await service.call(`/v1/keys/${created.id}`, {
      method: "PATCH",
      headers: jsonHeaders(service.adminKey),
      body: JSON.stringify({ expires_at: "2030-01-01T01:00:00+01:00" }),
    });
    expect(patched.status).toBe(200);
    expect((patched.json() as { expires_at: string }).expires_at).toBe("2030-01-01T00:00:00.000Z");
  });
});
