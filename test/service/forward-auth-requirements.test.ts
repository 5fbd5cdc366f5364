import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RawResponse, rawRequest } from "../helpers/raw-http.js";
import { createKeyOverHttp, startTestService, type TestService } from "../helpers/service.js";

// Forward auth's requirement comes from the proxy (the URL it calls) and from X-Keyward-* headers,
// which a proxy that does not strip them lets the client send. The client must never weaken the
// route: scopes add up, environments must agree, and an empty header is an error (issue 19, item 1).

let service: TestService;
let sandboxRead: string;
beforeAll(async () => {
  service = await startTestService();
  sandboxRead = (await createKeyOverHttp(service, { environment: "sandbox", scopes: ["read"] })).key;
});
afterAll(async () => service.close());

interface Problem {
  code: string;
  detail: string;
  errors?: { field: string; message: string }[];
  missing_scopes?: string[];
}

const problemOf = (response: RawResponse) => JSON.parse(response.body) as Problem;

/** `path` with the key and the given headers; without a query string it takes the fast lane. */
const authz = (path: string, key: string, headers: Record<string, string> = {}) =>
  rawRequest(service.url, { path, headers: { "x-api-key": key, ...headers } });

function expectRequirementRefused(response: RawResponse, field: string): void {
  expect(response.status).toBe(400);
  const problem = problemOf(response);
  expect(problem.code).toBe("VALIDATION_FAILED");
  expect(problem.errors?.map((e) => e.field)).toContain(field);
  expect(problem.detail).toContain(field);
  // A proxy's auth subrequest reads headers, not bodies.
  expect(response.headers["x-keyward-code"]).toBe("VALIDATION_FAILED");
  expect(JSON.parse(String(response.headers["x-keyward-problem"]))).toMatchObject({ code: "VALIDATION_FAILED" });
}

describe("forward auth: the client cannot weaken the route's requirement", () => {
  it("the issue's request (own scopes header, empty environment header) is never a 200 for a sandbox read key", async () => {
    const response = await authz("/v1/authz?scopes=orders:write&environment=production", sandboxRead, {
      "x-keyward-scopes": "read",
      "x-keyward-environment": "",
    });
    expect(response.status).not.toBe(200);
    expectRequirementRefused(response, "headers.x-keyward-environment");
  });

  it("a scopes header adds to the query's scopes, never replaces them", async () => {
    const denied = await authz("/v1/authz?scopes=orders:write", sandboxRead, { "x-keyward-scopes": "read" });
    expect(denied.status).toBe(403);
    expect(problemOf(denied)).toMatchObject({ code: "INSUFFICIENT_SCOPE", missing_scopes: ["orders:write"] });
    // The header's scopes count too: asking for more than the query can only deny more.
    const more = await authz("/v1/authz?scopes=read", sandboxRead, { "x-keyward-scopes": "admin" });
    expect(more.status).toBe(403);
    expect(problemOf(more).missing_scopes).toEqual(["admin"]);
    const both = (await createKeyOverHttp(service, { scopes: ["read", "orders:write"] })).key;
    const allowed = await authz("/v1/authz?scopes=orders:write", both, { "x-keyward-scopes": "read" });
    expect(allowed.status).toBe(200);
  });

  it("an environment header that disagrees with the query is a 400 naming the header", async () => {
    const response = await authz("/v1/authz?environment=production", sandboxRead, { "x-keyward-environment": "sandbox" });
    expectRequirementRefused(response, "headers.x-keyward-environment");
    expect(problemOf(response).detail).toMatch(/sandbox.*production/);
  });

  it("an environment header that agrees with the query is checked as usual", async () => {
    const agreed = await authz("/v1/authz?environment=sandbox", sandboxRead, { "x-keyward-environment": "sandbox" });
    expect(agreed.status).toBe(200);
    const production = await authz("/v1/authz?environment=production", sandboxRead, { "x-keyward-environment": "production" });
    expect(production.status).toBe(403);
    expect(problemOf(production).code).toBe("ENVIRONMENT_MISMATCH");
  });

  // The fast lane (no query string) and the Fastify route (a query string) both refuse.
  for (const path of ["/v1/authz", "/v1/authz?environment=sandbox"]) {
    for (const [name, value] of [
      ["empty", ""],
      ["whitespace-only", "   "],
      ["separators only", " , ,"],
    ] as const) {
      it(`${path}: an ${name} X-Keyward-Scopes header is a 400, not "no scopes required"`, async () => {
        expectRequirementRefused(await authz(path, sandboxRead, { "x-keyward-scopes": value }), "headers.x-keyward-scopes");
      });
    }
    for (const [name, value] of [
      ["empty", ""],
      ["whitespace-only", "  \t "],
    ] as const) {
      it(`${path}: an ${name} X-Keyward-Environment header is a 400, not "any environment"`, async () => {
        expectRequirementRefused(await authz(path, sandboxRead, { "x-keyward-environment": value }), "headers.x-keyward-environment");
      });
    }
  }

  it("an empty ?scopes= is a 400 too", async () => {
    expectRequirementRefused(await authz("/v1/authz?scopes=", sandboxRead), "querystring.scopes");
  });
});
