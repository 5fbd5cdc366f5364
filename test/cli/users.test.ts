import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runCliProcess, startServeProcess, waitForExit } from "../helpers/process.js";

let dir: string;
let env: Record<string, string>;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "keyward-users-"));
  env = { KEYWARD_DATABASE_URL: `sqlite:${join(dir, "keyward.db")}` };
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("first admin", () => {
  it("keyward serve prints a one-time setup link on a store with no users, and the link creates the admin", async () => {
    const serve = await startServeProcess(env);
    try {
      const match = /(http:\/\/127\.0\.0\.1:\d+)\/dashboard\/#\/setup\/([0-9A-Za-z]{32})/.exec(serve.stdout());
      expect(match).not.toBeNull();
      expect(serve.stdout()).toContain(`Dashboard: ${serve.url}/dashboard/`);
      const body = { token: match?.[2], email: "root@example.com", password: "a very long password" };
      const setup = await fetch(`${serve.url}/v1/setup`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      expect(setup.status).toBe(201);
      const reuse = await fetch(`${serve.url}/v1/setup`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      expect(reuse.status).toBe(403);
    } finally {
      serve.child.kill("SIGTERM");
      await waitForExit(serve.child);
    }
  });

  it("keyward users create --admin makes one from the command line, and serve then prints no setup link", async () => {
    const created = await runCliProcess(["users", "create", "--email", "Root@Example.com", "--admin", "--json"], env);
    expect(created.code).toBe(0);
    const user = JSON.parse(created.stdout) as { email: string; role: string; password: string };
    expect(user).toMatchObject({ email: "root@example.com", role: "admin" });
    expect(user.password).toMatch(/^[0-9A-Za-z]{20}$/);
    const serve = await startServeProcess(env);
    try {
      expect(serve.stdout()).not.toContain("/setup/");
      const signIn = await fetch(`${serve.url}/v1/session`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ email: "root@example.com", password: user.password }),
      });
      expect(signIn.status).toBe(201);
    } finally {
      serve.child.kill("SIGTERM");
      await waitForExit(serve.child);
    }
  });
});
