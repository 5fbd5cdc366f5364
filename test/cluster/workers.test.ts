import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { childPids, runCliProcess, startWorkers, waitForExit } from "../helpers/process.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "keyward-workers-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

it("serve --workers 2 shares one SQLite store and applies a revocation on every worker", async () => {
  // Both workers report; the primary printed the one bootstrap key.
  const server = await startWorkers({ KEYWARD_DATABASE_URL: `sqlite:${join(dir, "k.db")}`, KEYWARD_LOG_LEVEL: "warn" }, 2);
  try {
    const keys = server.stdout().match(/kw_live_[0-9A-Za-z]{38}/g) ?? [];
    expect(keys).toHaveLength(1);
    const headers = { authorization: `Bearer ${keys[0]}`, "content-type": "application/json" };
    const created = (await (
      await fetch(`${server.url}/v1/keys`, {
        method: "POST",
        headers,
        body: JSON.stringify({ owner: { type: "user", id: "w" }, name: "w", environment: "sandbox", scopes: ["read"] }),
      })
    ).json()) as { id: string; key: string };
    // Warm both workers' caches (connections are spread across workers).
    for (let i = 0; i < 10; i++) {
      const response = await fetch(`${server.url}/v1/introspect`, { headers: { "x-api-key": created.key, connection: "close" } });
      expect(response.status).toBe(200);
    }
    const revoke = await fetch(`${server.url}/v1/keys/${created.id}/revoke`, { method: "POST", headers, body: "{}" });
    expect(revoke.status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 50));
    for (let i = 0; i < 10; i++) {
      const response = await fetch(`${server.url}/v1/introspect`, { headers: { "x-api-key": created.key, connection: "close" } });
      expect(response.status).toBe(401);
    }
  } finally {
    server.child.kill("SIGTERM");
    await waitForExit(server.child);
  }
});

it("serve --workers 2 without Redis: the workers share one limiter, so limits hold for the machine", async () => {
  const server = await startWorkers({ KEYWARD_DATABASE_URL: `sqlite:${join(dir, "k.db")}`, KEYWARD_LOG_LEVEL: "warn" }, 2);
  const admin = server.adminKey;
  try {
    const create = async (body: Record<string, unknown>) =>
      (await (
        await fetch(`${server.url}/v1/keys`, {
          method: "POST",
          headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
          body: JSON.stringify({ owner: { type: "user", id: "w" }, name: "w", environment: "sandbox", scopes: ["read"], ...body }),
        })
      ).json()) as { key: string };
    const hammer = async (key: string, count: number) => {
      // New connections each time, so the requests are spread over both workers.
      const responses = await Promise.all(
        Array.from({ length: count }, () => fetch(`${server.url}/v1/authz`, { headers: { "x-api-key": key, connection: "close" } })),
      );
      return responses.filter((r) => r.status === 200).length;
    };
    expect(await hammer((await create({ rate_limit: { requests: 5, per_seconds: 60 } })).key, 16)).toBe(5);
    expect(await hammer((await create({ quota: { remaining: 4 } })).key, 12)).toBe(4);
  } finally {
    server.child.kill("SIGTERM");
    await waitForExit(server.child);
  }
});

it("serve --workers 4: the member key cap is exact across worker processes (one conditional insert)", async () => {
  const env = { KEYWARD_DATABASE_URL: `sqlite:${join(dir, "k.db")}`, KEYWARD_LOG_LEVEL: "warn", KEYWARD_MEMBER_KEY_CREATES_PER_HOUR: "20" };
  const member = JSON.parse((await runCliProcess(["users", "create", "--email", "cap@example.com", "--json"], env)).stdout) as {
    id: string;
    password: string;
  };
  const server = await startWorkers(env, 4);
  try {
    const signedIn = await fetch(`${server.url}/v1/session`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: server.url },
      body: JSON.stringify({ email: "cap@example.com", password: member.password }),
    });
    const cookie = /kw_session=[^;]+/.exec(signedIn.headers.get("set-cookie") ?? "")?.[0] ?? "";
    const { csrf_token: csrf } = (await signedIn.json()) as { csrf_token: string };
    // Separate connections, so the creates land on different workers at once.
    const statuses = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const response = await fetch(`${server.url}/v1/keys`, {
          method: "POST",
          headers: { cookie, "x-csrf-token": csrf, origin: server.url, "content-type": "application/json", connection: "close" },
          body: JSON.stringify({ owner: { type: "user", id: member.id }, name: `k${i}`, environment: "sandbox", scopes: ["read"] }),
        });
        return response.status;
      }),
    );
    expect(statuses.filter((status) => status === 201)).toHaveLength(20);
    expect(statuses.filter((status) => status !== 201 && status !== 429)).toEqual([]);
  } finally {
    server.child.kill("SIGTERM");
    await waitForExit(server.child);
  }
});

it("serve --workers 2: the primary outlives workers killed while it relays invalidations and limiter calls, and replaces them", async () => {
  // Port 0, resolved once by the primary: replacements listen where the first workers did, even
  // after every worker died (they used to get a new port).
  const server = await startWorkers({ KEYWARD_DATABASE_URL: `sqlite:${join(dir, "k.db")}`, KEYWARD_LOG_LEVEL: "warn" }, 2);
  const admin = server.adminKey;
  try {
    const headers = { authorization: `Bearer ${admin}`, "content-type": "application/json", connection: "close" };
    const signal = () => AbortSignal.timeout(3_000);
    const primary = server.child.pid as number;
    let churning = true;
    // Invalidations (create + revoke) and limiter calls (a rate-limited key) on both workers, all the time.
    const churn = (async () => {
      while (churning) {
        try {
          const created = (await (
            await fetch(`${server.url}/v1/keys`, {
              method: "POST",
              headers,
              signal: signal(),
              body: JSON.stringify({
                owner: { type: "application", id: "churn" },
                name: "c",
                environment: "sandbox",
                scopes: ["read"],
                rate_limit: { requests: 100, per_seconds: 1 },
              }),
            })
          ).json()) as { id?: string; key?: string };
          if (created.key)
            await fetch(`${server.url}/v1/authz`, { headers: { "x-api-key": created.key, connection: "close" }, signal: signal() });
          if (created.id)
            await fetch(`${server.url}/v1/keys/${created.id}/revoke`, { method: "POST", headers, body: "{}", signal: signal() });
        } catch {
          // A connection to the killed worker fails; the next one goes to a live worker.
        }
      }
    })();
    for (let round = 0; round < 8; round++) {
      await expect.poll(() => childPids(primary).length, { timeout: 30_000 }).toBe(2);
      const victim = childPids(primary)[round % 2];
      if (victim) process.kill(victim, "SIGKILL");
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    churning = false;
    await churn;
    expect(server.child.exitCode).toBeNull();
    expect(server.child.signalCode).toBeNull();
    await expect.poll(() => childPids(primary).length, { timeout: 30_000 }).toBe(2);
    const health = async () => {
      try {
        return (await fetch(`${server.url}/healthz`, { headers: { connection: "close" } })).status;
      } catch (error) {
        return String(error);
      }
    };
    await expect.poll(health, { timeout: 30_000 }).toBe(200);
  } catch (error) {
    console.log(server.stdout().slice(-3000));
    throw error;
  } finally {
    server.child.kill("SIGTERM");
    await waitForExit(server.child);
  }
}, 240_000);
