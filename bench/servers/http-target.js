// One HTTP bench target per process: `node bench/servers/http-target.js <target>`.
// Every target answers GET / with a small JSON body; the keyward-* ones protect it with the
// adapter for their framework (scope `read`) over the SQLite store in BENCH_DB, with every
// default on (cache, negative cache, single flight, carriers, problem responses) and usage
// tracking as docs/usage.md wires it.
// Prints `READY <port>` once listening on 127.0.0.1.
import { hash } from "node:crypto";
import { createServer } from "node:http";
import { serve } from "@hono/node-server";
import express from "express";
import Fastify from "fastify";
import { Hono } from "hono";
import { Keyward } from "../../dist/engine/keyward.js";
import { keywardExpress } from "../../dist/middleware/express.js";
import { keywardFastify } from "../../dist/middleware/fastify.js";
import { keywardHono } from "../../dist/middleware/hono.js";
import { createNodeGuard } from "../../dist/middleware/node-http.js";
import { SqliteKeyStore } from "../../dist/stores/sqlite/sqlite-key-store.js";
import { SqliteUsageStore } from "../../dist/stores/sqlite/sqlite-usage-store.js";
import { BufferedUsageRecorder } from "../../dist/usage/buffered-usage-recorder.js";

const target = process.argv[2];
const BODY = { id: "key_0000000000000000000000" };
const ready = (port) => process.stdout.write(`READY ${port}\n`);

/**
 * The engine as docs/usage.md wires it in process: the SQLite store, with usage tracking on.
 * The failed-attempt throttle is off, so that the invalid-key runs measure what they say, a
 * store lookup per unknown key (a flood from many addresses); with it, wrk's one address would
 * be answered 429 after its first 100 misses (`serve /v1/authz, throttled` measures that).
 * Valid keys never reach the throttle once cached. `BENCH_USAGE=off` leaves usage out, to see
 * what it costs when profiling; the suite never sets it.
 */
function openKeyward() {
  const file = process.env.BENCH_DB;
  if (!file) throw new Error("BENCH_DB must name the seeded SQLite file");
  const store = new SqliteKeyStore({ filename: file });
  if (process.env.BENCH_USAGE === "off") return new Keyward({ store, failedAttempts: false });
  const usageStore = new SqliteUsageStore(store.db);
  return new Keyward({ store, usage: new BufferedUsageRecorder({ store: usageStore }), usageStore, failedAttempts: false });
}

const targets = {
  "bare-node": async () => {
    const server = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
      res.end(JSON.stringify(BODY));
    });
    server.listen(0, "127.0.0.1", () => ready(server.address().port));
  },
  "keyward-node": async () => {
    const guard = createNodeGuard(openKeyward());
    const server = createServer(async (req, res) => {
      const auth = await guard(req, res, { scopes: ["read"] });
      if (!auth.ok) return;
      res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
      res.end(JSON.stringify({ id: auth.key.id }));
    });
    server.listen(0, "127.0.0.1", () => ready(server.address().port));
  },
  "bare-fastify": async () => {
    const app = Fastify({ logger: false });
    app.get("/", async () => BODY);
    await app.listen({ port: 0, host: "127.0.0.1" });
    ready(app.server.address().port);
  },
  // The reference point, the floor any Fastify authentication stands on: a hand-written
  // preHandler that hashes the header with the one-shot `crypto.hash` (Node ≥ 20.12) and looks it
  // up in a Map, as a callback hook (no promise per request), the cheapest form Fastify offers.
  "floor-fastify": async () => {
    const keyward = openKeyward();
    const byDigest = new Map();
    for (const row of keyward.store.db.prepare("SELECT id, digest FROM keys").all()) byDigest.set(row.digest, row.id);
    const app = Fastify({ logger: false });
    app.get(
      "/",
      {
        preHandler: (request, reply, done) => {
          const key = request.headers["x-api-key"];
          const id = typeof key === "string" ? byDigest.get(hash("sha256", key, "base64url")) : undefined;
          if (!id) {
            reply.code(401).send({ code: "NOT_FOUND" });
            return;
          }
          request.keyId = id;
          done();
        },
      },
      async (request) => ({ id: request.keyId }),
    );
    await app.listen({ port: 0, host: "127.0.0.1" });
    ready(app.server.address().port);
  },
  "keyward-fastify": async () => {
    const app = Fastify({ logger: false });
    const auth = keywardFastify(app, openKeyward());
    app.get("/", { preHandler: auth.require({ scopes: ["read"] }) }, async (request) => ({ id: request.apiKey.id }));
    await app.listen({ port: 0, host: "127.0.0.1" });
    ready(app.server.address().port);
  },
  "bare-express": async () => {
    const app = express();
    app.get("/", (_req, res) => res.json(BODY));
    const server = app.listen(0, "127.0.0.1", () => ready(server.address().port));
  },
  "keyward-express": async () => {
    const app = express();
    const auth = keywardExpress(openKeyward());
    app.get("/", auth.require({ scopes: ["read"] }), (req, res) => res.json({ id: req.apiKey.id }));
    const server = app.listen(0, "127.0.0.1", () => ready(server.address().port));
  },
  "bare-hono": async () => {
    const app = new Hono();
    app.get("/", (c) => c.json(BODY));
    serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info) => ready(info.port));
  },
  "keyward-hono": async () => {
    const app = new Hono();
    const auth = keywardHono(openKeyward());
    app.get("/", auth.require({ scopes: ["read"] }), (c) => c.json({ id: c.get("apiKey").id }));
    serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info) => ready(info.port));
  },
};

const start = targets[target];
if (!start) {
  process.stderr.write(`unknown target ${target}; one of ${Object.keys(targets).join(", ")}\n`);
  process.exit(2);
}
process.on("SIGTERM", () => process.exit(0));
await start();
