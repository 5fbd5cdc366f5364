import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AUTHORIZATION_MATRIX } from "../../src/service/authorization-matrix.js";
import { listRoutes } from "../../src/service/route-list.js";
import { startTestService, type TestService } from "../helpers/service.js";

let service: TestService;
beforeAll(async () => {
  service = await startTestService();
});
afterAll(async () => {
  await service.close();
});

describe("authorization matrix", () => {
  it("has an entry for every registered route", () => {
    const missing = listRoutes(service.app)
      .map((route) => `${route.method} ${route.url}`)
      .filter((route) => !(route in AUTHORIZATION_MATRIX));
    expect(missing).toEqual([]);
  });

  it("has no entry for a route that does not exist", () => {
    const registered = new Set(listRoutes(service.app).map((route) => `${route.method} ${route.url}`));
    expect(Object.keys(AUTHORIZATION_MATRIX).filter((entry) => !registered.has(entry))).toEqual([]);
  });

  it("refuses every non-public route without credentials (never 2xx)", async () => {
    const guarded = Object.entries(AUTHORIZATION_MATRIX).filter(([, entry]) => entry.access !== "public");
    for (const [route] of guarded) {
      const [method, path] = route.split(" ") as [string, string];
      const url = path
        .replace(
          ":id",
          route.includes("key-requests")
            ? "kreq_AAAAAAAAAAAAAAAAAAAA"
            : route.includes("users")
              ? "usr_AAAAAAAAAAAAAAAAAAAA"
              : "key_AAAAAAAAAAAAAAAAAAAA",
        )
        .replace(":type", "user");
      const response = await fetch(service.url + url, {
        method,
        ...(method === "GET" || method === "OPTIONS" || method === "DELETE"
          ? {}
          : { headers: { "content-type": "application/json" }, body: "{}" }),
      });
      // Body validation runs before authentication, so a bad body may answer 400 first: either way nothing happens.
      expect([400, 401, 403], route).toContain(response.status);
    }
  });

  it("is documented in docs/authorization-matrix.md", () => {
    const doc = readFileSync("docs/authorization-matrix.md", "utf8");
    for (const route of Object.keys(AUTHORIZATION_MATRIX)) expect(doc, route).toContain(`\`${route}\``);
  });
});
