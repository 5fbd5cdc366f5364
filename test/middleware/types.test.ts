import express from "express";
import Fastify from "fastify";
import { Hono } from "hono";
import { expectTypeOf, it } from "vitest";
import type { VerifiedKey } from "../../src/core/key-view.js";
import type { Keyward } from "../../src/engine/keyward.js";
import { keywardExpress } from "../../src/middleware/express.js";
import { keywardFastify } from "../../src/middleware/fastify.js";
import { keywardHono } from "../../src/middleware/hono.js";
import { createNodeGuard } from "../../src/middleware/node-http.js";

// Compile-time checks (tsc --noEmit runs over tests in `npm test`): each framework hands the
// handler a typed verified key.
const keyward = { prefix: "kw", verify: async () => ({ valid: false, code: "MISSING" }) } as unknown as Keyward;

it("types the verified key in every framework", () => {
  const fastify = Fastify();
  const fastifyAuth = keywardFastify(fastify, keyward);
  fastify.get("/", { preHandler: fastifyAuth.require({ scopes: ["read"] }) }, async (request) => {
    expectTypeOf(request.apiKey).toEqualTypeOf<VerifiedKey | undefined>();
    expectTypeOf(request.apiKey?.owner.type).toEqualTypeOf<"user" | "application" | "organization" | undefined>();
  });

  const app = express();
  app.get("/", keywardExpress(keyward).require({ environment: "production" }), (req) => {
    expectTypeOf(req.apiKey).toEqualTypeOf<VerifiedKey | undefined>();
  });

  const hono = new Hono();
  hono.get("/", keywardHono(keyward).require({ optional: true }), (c) => {
    expectTypeOf(c.get("apiKey")).toEqualTypeOf<VerifiedKey | undefined>();
    return c.text("ok");
  });

  const guard = createNodeGuard(keyward);
  expectTypeOf(guard).returns.resolves.toEqualTypeOf<{ ok: true; key: VerifiedKey | undefined } | { ok: false }>();
  // @ts-expect-error a requirement's environment is sandbox or production only
  keywardExpress(keyward).require({ environment: "staging" });
});
