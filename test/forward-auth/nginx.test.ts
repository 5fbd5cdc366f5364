import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../../src/service/app.js";
import { loadConfig } from "../../src/service/config.js";
import { createLogger } from "../../src/service/logger.js";
import { ServiceMetrics } from "../../src/service/metrics.js";
import { lacking, nginxPrerequisite } from "../helpers/prerequisites.js";
import { REPO_ROOT } from "../helpers/process.js";
import { createFixture, type Fixture } from "../middleware/harness.js";

const NGINX = "/usr/sbin/nginx";
const haveNginx = existsSync(NGINX);
if (!haveNginx && process.env.CI) throw new Error("nginx is required under CI (.ci/run installs nginx-light)");
if (!haveNginx) lacking(nginxPrerequisite);

const freePort = async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
};

/** GET /v1/authz behind a real nginx (auth_request), with the configuration we publish in deploy/. */
describe.skipIf(!haveNginx)("nginx auth_request → /v1/authz", () => {
  let dir: string;
  let fixture: Fixture;
  let keyward: FastifyInstance;
  let upstream: Server;
  let nginx: ChildProcess;
  let url: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "keyward-nginx-"));
    fixture = await createFixture();
    keyward = await buildApp({
      keyward: fixture.keyward,
      config: { ...loadConfig({}), port: 0 },
      logger: createLogger("silent"),
      metrics: new ServiceMetrics(),
    });
    await keyward.listen({ port: 0, host: "127.0.0.1" });
    upstream = createServer((req, res) => {
      res.setHeader("content-type", "application/json");
      res.end(
        JSON.stringify({
          path: req.url,
          keyId: req.headers["x-keyward-key-id"] ?? null,
          owner: req.headers["x-keyward-owner"] ?? null,
          scopes: req.headers["x-keyward-scopes"] ?? null,
          environment: req.headers["x-keyward-environment"] ?? null,
          lease: req.headers["x-keyward-lease"] ?? null,
          leaseExpires: req.headers["x-keyward-lease-expires"] ?? null,
          code: req.headers["x-keyward-code"] ?? null,
          problem: req.headers["x-keyward-problem"] ?? null,
          authorization: req.headers.authorization ?? null,
        }),
      );
    });
    await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    const site = readFileSync(join(REPO_ROOT, "deploy", "nginx-forward-auth.conf"), "utf8")
      .replaceAll("LISTEN", `127.0.0.1:${port}`)
      .replaceAll("KEYWARD", `127.0.0.1:${(keyward.server.address() as AddressInfo).port}`)
      .replaceAll("UPSTREAM", `127.0.0.1:${(upstream.address() as AddressInfo).port}`);
    for (const sub of ["body", "proxy", "fastcgi", "uwsgi", "scgi"]) mkdirSync(join(dir, sub));
    writeFileSync(
      join(dir, "nginx.conf"),
      `daemon off; master_process off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  ${site}
}`,
    );
    nginx = spawn(NGINX, ["-c", join(dir, "nginx.conf"), "-p", dir], { stdio: ["ignore", "ignore", "pipe"] });
    // Wait for nginx to answer (expect.poll is for tests only).
    for (let i = 0; i < 200 && ((await fetch(url).catch(() => null))?.status ?? 0) !== 401; i++)
      await new Promise((r) => setTimeout(r, 50));
  });

  afterAll(async () => {
    nginx?.kill("SIGTERM");
    await new Promise((resolve) => upstream.close(resolve));
    await keyward.close();
    await fixture.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("allowed requests reach the upstream with the X-Keyward-* identity and without the key", async () => {
    const response = await fetch(`${url}/approvals/not-complete`, { headers: { authorization: `Bearer ${fixture.keys.valid}` } });
    expect(response.status).toBe(200);
    const seen = (await response.json()) as Record<string, string | null>;
    expect(seen).toMatchObject({ path: "/approvals/not-complete", owner: "user:alice", scopes: "read", authorization: null });
    expect(seen.keyId).toMatch(/^key_/);
  });

  // Every X-Keyward-* header a client could send, forged: none may reach Keyward or the upstream.
  const forged = {
    "x-keyward-scopes": "other",
    "x-keyward-environment": "production",
    "x-keyward-key-id": "key_forged",
    "x-keyward-owner": "user:mallory",
    "x-keyward-lease": "lease_forged",
    "x-keyward-lease-expires": "2099-01-01T00:00:00.000Z",
    "x-keyward-code": "VALID",
    "x-keyward-problem": "forged",
  };

  it("a client's own X-Keyward-* headers neither change the requirement nor reach the upstream", async () => {
    const { rawRequest } = await import("../helpers/raw-http.js");
    // The location requires `read` of any environment: the client's `other` and `production` would deny.
    const response = await rawRequest(url, { path: "/approvals", headers: { ...forged, "x-api-key": fixture.keys.valid as string } });
    expect(response.status).toBe(200);
    const seen = JSON.parse(response.body) as Record<string, string | null>;
    expect(seen).toMatchObject({ owner: "user:alice", scopes: "read", environment: "sandbox", code: null, problem: null });
    expect(seen.keyId).toMatch(/^key_/);
    expect(seen.keyId).not.toBe(forged["x-keyward-key-id"]);
    // The lease is Keyward's (this key has a concurrency limit), not the client's.
    expect(seen.lease).toMatch(/^lease_/);
    expect(seen.lease).not.toBe(forged["x-keyward-lease"]);
    expect(seen.leaseExpires).not.toBe(forged["x-keyward-lease-expires"]);
  });

  it("a key without limits gets no lease: the client's X-Keyward-Lease is dropped, not passed on", async () => {
    const { rawRequest } = await import("../helpers/raw-http.js");
    const response = await rawRequest(url, { path: "/approvals", headers: { ...forged, "x-api-key": fixture.keys.plain as string } });
    expect(response.status).toBe(200);
    const seen = JSON.parse(response.body) as Record<string, string | null>;
    expect(seen).toMatchObject({ owner: "user:alice", environment: "sandbox", lease: null, leaseExpires: null, code: null, problem: null });
  });

  it.each([
    ["no key", {}, 401, "MISSING"],
    ["a revoked key", { "x-api-key": "revoked" }, 401, "REVOKED"],
    ["a key without the scope", { "x-api-key": "noScope" }, 403, "INSUFFICIENT_SCOPE"],
    ["a rate-limited key", { "x-api-key": "rate" }, 429, "RATE_LIMITED"],
    ["a repeated header", { "x-api-key": ["valid", "valid"] }, 400, "AMBIGUOUS_CREDENTIALS"],
  ] as [string, Record<string, string | string[]>, number, string][])(
    "%s gets %i with the problem body",
    async (_name, headers, status, code) => {
      const { rawRequest } = await import("../helpers/raw-http.js");
      const resolved = Object.fromEntries(
        Object.entries(headers).map(([k, v]) => [
          k,
          Array.isArray(v) ? v.map((n) => fixture.keys[n] as string) : (fixture.keys[v] as string),
        ]),
      );
      const response = await rawRequest(url, { path: "/approvals", headers: resolved });
      expect(response.status).toBe(status);
      expect(response.headers["content-type"]).toContain("application/problem+json");
      expect(JSON.parse(response.body)).toMatchObject({ code, status });
      if (status === 401) expect(response.headers["www-authenticate"]).toMatch(/^ApiKey realm="keyward"/);
      if (status === 429) expect(Number(response.headers["retry-after"])).toBeGreaterThan(0);
    },
  );
});
