import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import express from "express";
import Fastify from "fastify";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keywardExpress } from "../../src/middleware/express.js";
import { keywardFastify } from "../../src/middleware/fastify.js";
import { keywardHono } from "../../src/middleware/hono.js";
import type { Verifier } from "../../src/middleware/http-edge.js";
import { createNodeGuard } from "../../src/middleware/node-http.js";
import { rawRequest } from "../helpers/raw-http.js";
import { createFixture, type Fixture } from "./harness.js";

// A key in the path of a protected route is a key in the URL: 400 KEY_IN_URL from every adapter,
// percent-encoded or not (issue 19, item 8).

interface Running {
  url: string;
  close(): Promise<void>;
}

const listening = async (server: Server): Promise<Running> => {
  if (!server.listening) await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
};

/** Each adapter guarding `GET /items/:id` (scope `read`), answering the id it was given. */
const ADAPTERS: [string, (verifier: Verifier) => Promise<Running>][] = [
  [
    "fastify",
    async (verifier) => {
      const app = Fastify();
      const auth = keywardFastify(app, verifier);
      app.get<{ Params: { id: string } }>("/items/:id", { preHandler: auth.require({ scopes: ["read"] }) }, async (request) => ({
        id: request.params.id,
      }));
      await app.listen({ port: 0, host: "127.0.0.1" });
      return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
    },
  ],
  [
    "express",
    async (verifier) => {
      const app = express();
      app.get("/items/:id", keywardExpress(verifier).require({ scopes: ["read"] }), (req, res) => {
        res.json({ id: req.params.id });
      });
      return listening(createServer(app));
    },
  ],
  [
    "hono",
    async (verifier) => {
      const app = new Hono();
      app.get("/items/:id", keywardHono(verifier).require({ scopes: ["read"] }), (c) => c.json({ id: c.req.param("id") }));
      const server = await new Promise<Server>((resolve) => {
        const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s as Server));
      });
      return listening(server);
    },
  ],
  [
    "node:http",
    async (verifier) => {
      const guard = createNodeGuard(verifier);
      return listening(
        createServer(async (req, res) => {
          const auth = await guard(req, res, { scopes: ["read"] });
          if (!auth.ok) return;
          res.setHeader("content-type", "application/json");
          res.end(JSON.stringify({ id: (req.url ?? "").split("?")[0]?.split("/")[2] }));
        }),
      );
    },
  ],
];

let fixture: Fixture;
beforeAll(async () => {
  fixture = await createFixture();
});
afterAll(async () => fixture.close());

for (const [name, start] of ADAPTERS) {
  describe(name, () => {
    let app: Running;
    beforeAll(async () => {
      app = await start(fixture.keyward);
    });
    afterAll(async () => app.close());

    const headers = () => ({ "x-api-key": fixture.keys.plain as string });

    it("a plain id passes", async () => {
      const response = await rawRequest(app.url, { path: "/items/item-42?page=2", headers: headers() });
      expect(response.status).toBe(200);
      expect(JSON.parse(response.body)).toEqual({ id: "item-42" });
    });

    for (const [form, encode] of [
      ["as it is", (k: string) => k],
      ["underscores percent-encoded", (k: string) => k.replaceAll("_", "%5F")],
      ["after other text", (k: string) => `note%20${k}`],
    ] as const) {
      it(`a key in the path (${form}) is 400 KEY_IN_URL`, async () => {
        const key = fixture.keys.valid as string;
        const response = await rawRequest(app.url, { path: `/items/${encode(key)}`, headers: headers() });
        expect(response.status).toBe(400);
        expect(JSON.parse(response.body)).toMatchObject({ code: "KEY_IN_URL" });
        expect(response.body).not.toContain(key);
      });
    }
  });
}
