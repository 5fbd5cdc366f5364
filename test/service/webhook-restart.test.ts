import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { verifyWebhookSignature } from "../../src/core/webhook-signature.js";
import { runCliProcess, startServeProcess, waitForExit } from "../helpers/process.js";
import { startWebhookReceiver, type WebhookReceiver } from "../helpers/webhook-receiver.js";

let dir: string;
let receiver: WebhookReceiver;
let env: Record<string, string>;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "keyward-webhook-restart-"));
  receiver = await startWebhookReceiver();
  env = {
    KEYWARD_DATABASE_URL: `sqlite:${join(dir, "keyward.db")}`,
    KEYWARD_LOG_LEVEL: "warn",
    KEYWARD_WEBHOOK_ALLOW_PRIVATE: "true",
    KEYWARD_WEBHOOK_POLL_MS: "50",
    KEYWARD_WEBHOOK_RETRY_BASE_MS: "300",
    // A short timeout keeps the lease short: an attempt cut off by the kill is due again soon.
    KEYWARD_WEBHOOK_TIMEOUT_MS: "500",
  };
});
afterEach(async () => {
  await receiver.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * The audit trail is the outbox: a delivery still owed when the process is killed is sent by
 * the next one, and a change made with no server running (the CLI) is delivered when one starts.
 */
it("deliveries survive kill -9, and changes made while no server ran are delivered after start", async () => {
  const first = await startServeProcess(env);
  const admin = /(kw_live_[0-9A-Za-z]{38})/.exec(first.stdout())?.[1] as string;
  const headers = { authorization: `Bearer ${admin}`, "content-type": "application/json" };
  const endpoint = (await (
    await fetch(`${first.url}/v1/webhooks`, {
      method: "POST",
      headers,
      body: JSON.stringify({ url: receiver.url, events: ["key.created"] }),
    })
  ).json()) as { id: string; secret: string };

  receiver.respond = () => 503;
  const created = await fetch(`${first.url}/v1/keys`, {
    method: "POST",
    headers,
    body: JSON.stringify({ owner: { type: "user", id: "alice" }, name: "k", environment: "sandbox", scopes: ["read"] }),
  });
  expect(created.status).toBe(201);
  const [failed] = await receiver.waitFor(1);
  first.child.kill("SIGKILL");
  await waitForExit(first.child);

  // With no server running, the CLI makes a change straight in the database.
  const cli = await runCliProcess(["keys", "create", "--owner", "user:bob", "--name", "offline", "--scopes", "read", "--json"], env);
  expect(cli.code).toBe(0);
  const offlineId = (JSON.parse(cli.stdout) as { id: string }).id;

  receiver.respond = () => 204;
  const second = await startServeProcess(env);
  try {
    // Sent again by the new process: as attempt 2, or again as attempt 1 when the kill came
    // before the first answer was stored (at least once, never lost).
    const retried = await receiver.waitFor(1, (r) => r.headers["keyward-event-id"] === failed?.headers["keyward-event-id"] && r !== failed);
    expect(retried[0]?.headers["keyward-delivery-id"]).toBe(failed?.headers["keyward-delivery-id"]);
    const [offline] = await receiver.waitFor(
      1,
      (r) => (JSON.parse(r.body) as { data: { target: { id: string } } }).data.target.id === offlineId,
    );
    expect(verifyWebhookSignature(offline?.body as string, offline?.headers["keyward-signature"] as string, endpoint.secret)).toBe(true);
    expect(JSON.parse(offline?.body as string)).toMatchObject({ type: "key.created", data: { actor: { type: "cli" } } });
  } finally {
    second.child.kill("SIGTERM");
    await waitForExit(second.child);
  }
});
