import { readdirSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ACTION_TYPES } from "../../src/authority/model.js";
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

  it("names the authority decisions of every management route (an empty list: a lookup that confers nothing)", () => {
    const management = Object.entries(AUTHORIZATION_MATRIX).filter(([, entry]) =>
      ["key", "key-or-session", "holder-or-session"].includes(entry.access),
    );
    expect(management.filter(([, entry]) => entry.actions === undefined).map(([route]) => route)).toEqual([]);
  });

  it("names every action the authority module decides, and each named action is asked for by the routes", () => {
    const named = new Set(Object.values(AUTHORIZATION_MATRIX).flatMap((entry) => entry.actions ?? []));
    expect(ACTION_TYPES.filter((action) => !named.has(action))).toEqual([]);
    const routeSources = [
      ...readdirSync("src/service/routes").map((file) => `src/service/routes/${file}`),
      "src/service/sessions.ts",
      "src/service/authority-gate.ts",
    ]
      .map((file) => readFileSync(file, "utf8"))
      .join("\n");
    expect([...named].filter((action) => !routeSources.includes(`type: "${action}"`))).toEqual([]);
  });

  it("is documented in docs/authorization-matrix.md", () => {
    const doc = readFileSync("docs/authorization-matrix.md", "utf8");
    for (const route of Object.keys(AUTHORIZATION_MATRIX)) expect(doc, route).toContain(`\`${route}\``);
  });
});
