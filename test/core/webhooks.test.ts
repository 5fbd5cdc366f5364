import { describe, expect, it } from "vitest";
import { endpointWants, nextWebhookRetryDelayMs, webhookEventTypeForAction } from "../../src/core/webhook-events.js";
import { signWebhookPayload, verifyWebhookSignature } from "../../src/core/webhook-signature.js";

// Computed independently with Python's hmac module.
const VECTOR = {
  secret: "whsec_test_secret",
  body: '{"id":"evt_1","type":"key.revoked"}',
  t: 1795400000,
  hex: "b7394caabde6f0bdf0e7662cf942211650719c64078ce67a2e8eb21f57cf901e",
};

describe("webhook signatures", () => {
  it("match the published construction: HMAC-SHA-256 over `<t>.<body>`", () => {
    expect(signWebhookPayload(VECTOR.secret, VECTOR.body, VECTOR.t)).toBe(`t=${VECTOR.t},v1=${VECTOR.hex}`);
  });

  it("verify within the tolerance, with any one of several v1 values", () => {
    const now = VECTOR.t * 1000 + 60_000;
    expect(verifyWebhookSignature(VECTOR.body, `t=${VECTOR.t},v1=${VECTOR.hex}`, VECTOR.secret, { now })).toBe(true);
    expect(verifyWebhookSignature(VECTOR.body, `t=${VECTOR.t},v1=${"0".repeat(64)},v1=${VECTOR.hex}`, VECTOR.secret, { now })).toBe(true);
  });

  it("refuse replays, malformed headers and wrong secrets without throwing", () => {
    const header = `t=${VECTOR.t},v1=${VECTOR.hex}`;
    expect(verifyWebhookSignature(VECTOR.body, header, VECTOR.secret, { now: (VECTOR.t + 301) * 1000 })).toBe(false);
    expect(verifyWebhookSignature(VECTOR.body, header, VECTOR.secret, { now: (VECTOR.t - 301) * 1000 })).toBe(false);
    for (const bad of [undefined, "", "v1=abc", `t=${VECTOR.t}`, `t=x,v1=${VECTOR.hex}`, `t=${VECTOR.t},v1=${VECTOR.hex.slice(2)}`])
      expect(verifyWebhookSignature(VECTOR.body, bad, VECTOR.secret, { now: VECTOR.t * 1000 })).toBe(false);
    expect(verifyWebhookSignature(VECTOR.body, header, "", { now: VECTOR.t * 1000 })).toBe(false);
  });
});

describe("webhook events", () => {
  it("map audit actions to event types; approvals and rejections are one decided event", () => {
    expect(webhookEventTypeForAction("key.revoked")).toBe("key.revoked");
    expect(webhookEventTypeForAction("key_request.approved")).toBe("key_request.decided");
    expect(webhookEventTypeForAction("key_request.rejected")).toBe("key_request.decided");
    expect(webhookEventTypeForAction("webhook.created")).toBeNull();
    expect(webhookEventTypeForAction("dashboard.sign_in")).toBeNull();
    // Expiry notices come from the sweep, never from an audit action.
    expect(webhookEventTypeForAction("key.expiring")).toBeNull();
  });

  it("match subscriptions by type or *", () => {
    expect(endpointWants(["*"], "key.leaked")).toBe(true);
    expect(endpointWants(["key.revoked"], "key.leaked")).toBe(false);
  });

  it("back off 1, 3, 12, 60, 180, 360, 1080 times the base with at most 10% jitter, then give up", () => {
    const steps = [1, 3, 12, 60, 180, 360, 1080];
    for (const [i, step] of steps.entries()) {
      expect(nextWebhookRetryDelayMs(i + 1, 8, 1_000, () => 0)).toBe(step * 1_000);
      expect(nextWebhookRetryDelayMs(i + 1, 8, 1_000, () => 0.999)).toBeLessThanOrEqual(step * 1_100);
    }
    expect(nextWebhookRetryDelayMs(8, 8, 1_000, () => 0)).toBeNull();
    expect(nextWebhookRetryDelayMs(1, 1, 1_000, () => 0)).toBeNull();
  });
});
