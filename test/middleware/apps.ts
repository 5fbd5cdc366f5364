import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import express from "express";
import Fastify from "fastify";
import { Hono } from "hono";
import { keywardExpress } from "../../src/middleware/express.js";
import { keywardFastify } from "../../src/middleware/fastify.js";
import { keywardHono } from "../../src/middleware/hono.js";
import type { Verifier } from "../../src/middleware/http-edge.js";
import { createNodeGuard } from "../../src/middleware/node-http.js";

export interface RunningApp {
  url: string;
  close(): Promise<void>;
}

/** Held open by /slow until the test lets it go, to observe in-flight requests. */
export const SLOW_MS = 300;
const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const body = (key: { id: string; owner: { id: string } } | undefined) => ({ key: key?.id ?? null, owner: key?.owner.id ?? null });

const listenNode = async (server: Server): Promise<RunningApp> => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
};

export async function startFastifyApp(verifier: Verifier): Promise<RunningApp> {
  const app = Fastify();
  const auth = keywardFastify(app, verifier);
  app.get("/read", { preHandler: auth.require({ scopes: ["read"] }) }, async (request) => body(request.apiKey));
  app.get("/production", { preHandler: auth.require({ environment: "production" }) }, async (request) => body(request.apiKey));
  app.get("/optional", { preHandler: auth.require({ optional: true }) }, async (request) => body(request.apiKey));
  app.get("/slow", { preHandler: auth.require({ scopes: ["read"] }) }, async (request) => {
    await wait(SLOW_MS);
    return body(request.apiKey);
  });
  app.get("/boom", { preHandler: auth.require({ scopes: ["read"] }) }, async () => {
    throw new Error("handler failed");
  });
  await app.listen({ port: 0, host: "127.0.0.1" });
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
}

export async function startExpressApp(verifier: Verifier): Promise<RunningApp> {
  const app = express();
  const auth = keywardExpress(verifier);
  app.get("/read", auth.require({ scopes: ["read"] }), (req, res) => {
    res.json(body(req.apiKey));
  });
  app.get("/production", auth.require({ environment: "production" }), (req, res) => {
    res.json(body(req.apiKey));
  });
  app.get("/optional", auth.require({ optional: true }), (req, res) => {
    res.json(body(req.apiKey));
  });
  app.get("/slow", auth.require({ scopes: ["read"] }), async (req, res) => {
    await wait(SLOW_MS);
    res.json(body(req.apiKey));
  });
  app.get("/boom", auth.require({ scopes: ["read"] }), () => {
    throw new Error("handler failed");
  });
  return listenNode(createServer(app));
}

export async function startHonoApp(verifier: Verifier): Promise<RunningApp> {
  const app = new Hono();
  const auth = keywardHono(verifier);
  app.get("/read", auth.require({ scopes: ["read"] }), (c) => c.json(body(c.get("apiKey"))));
  app.get("/production", auth.require({ environment: "production" }), (c) => c.json(body(c.get("apiKey"))));
  app.get("/optional", auth.require({ optional: true }), (c) => c.json(body(c.get("apiKey"))));
  app.get("/slow", auth.require({ scopes: ["read"] }), async (c) => {
    await wait(SLOW_MS);
    return c.json(body(c.get("apiKey")));
  });
  app.get("/boom", auth.require({ scopes: ["read"] }), () => {
    throw new Error("handler failed");
  });
  const server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s as Server));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export async function startNodeApp(verifier: Verifier): Promise<RunningApp> {
  const guard = createNodeGuard(verifier);
  const routes: Record<string, Parameters<typeof guard>[2]> = {
    "/read": { scopes: ["read"] },
    "/production": { environment: "production" },
    "/optional": { optional: true },
    "/slow": { scopes: ["read"] },
    "/boom": { scopes: ["read"] },
  };
  const server = createServer(async (req, res) => {
    const path = (req.url ?? "/").split("?")[0] as string;
    const requirement = routes[path];
    if (!requirement) {
      res.statusCode = 404;
      res.end();
      return;
    }
    const auth = await guard(req, res, requirement);
    if (!auth.ok) return;
    if (path === "/slow") await wait(SLOW_MS);
    if (path === "/boom") {
      res.destroy();
      return;
    }
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(body(auth.key)));
  });
  return listenNode(server);
}
