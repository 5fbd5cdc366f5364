import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createMember, sessionHeaders, setupAdmin } from "../helpers/people.js";
import { createKeyOverHttp, jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

let service: TestService;
beforeEach(async () => {
  service = await startTestService();
});
afterEach(async () => {
  await service.close();
});

const post = (path: string, key: string, body?: unknown) =>
  service.call(path, {
    method: "POST",
    headers: body === undefined ? { authorization: `Bearer ${key}` } : jsonHeaders(key),
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
const authz = async (key: string) => {
  const response = await service.call("/v1/authz", { headers: { "x-api-key": key } });
  return { status: response.status, code: response.status === 200 ? "VALID" : (response.json() as { code: string }).code };
};

/** A production key rotated with an hour of grace: both keys work. */
async function rotatedPair(owner = { type: "application", id: "billing" }) {
  const old = await createKeyOverHttp(service, { owner, environment: "production", scopes: ["read"] });
  const rotated = await post(`/v1/keys/${old.id}/rotate`, service.adminKey, { grace_seconds: 3600 });
  expect(rotated.status).toBe(201);
  const successor = rotated.json() as { id: string; key: string };
  expect(await authz(old.key)).toEqual({ status: 200, code: "VALID" });
  expect(await authz(successor.key)).toEqual({ status: 200, code: "VALID" });
  return { old, successor };
}

describe("POST /v1/keys/{id}/end-grace", () => {
  it("on the successor: the predecessor is denied on the very next request, the successor works on, and it is audited", async () => {
    const { old, successor } = await rotatedPair();
    const ended = await post(`/v1/keys/${successor.id}/end-grace`, service.adminKey);
    expect(ended.status).toBe(200);
    const body = ended.json() as { id: string; status: string; ended_grace: string[] };
    expect(body).toMatchObject({ id: successor.id, status: "active", ended_grace: [old.id] });
    expect(await authz(old.key)).toEqual({ status: 401, code: "REVOKED" });
    expect(await authz(successor.key)).toEqual({ status: 200, code: "VALID" });

    const shown = (await service.call(`/v1/keys/${old.id}`, { headers: { authorization: `Bearer ${service.adminKey}` } })).json() as {
      status: string;
      grace_ends_at: string;
    };
    expect(shown.status).toBe("revoked");
    expect(Date.parse(shown.grace_ends_at)).toBeLessThanOrEqual(Date.now());
    const audit = (
      await service.call(`/v1/audit-events?key_id=${old.id}&action=key.grace_ended`, {
        headers: { authorization: `Bearer ${service.adminKey}` },
      })
    ).json() as { data: { actor: { type: string }; details: { ended_grace: string[] }; changes: Record<string, unknown> }[] };
    expect(audit.data).toHaveLength(1);
    expect(audit.data[0]?.details.ended_grace).toEqual([old.id]);
    expect(audit.data[0]?.changes).toHaveProperty("grace_ends_at");

    // Nothing is left to end: 409.
    const again = await post(`/v1/keys/${successor.id}/end-grace`, service.adminKey, {});
    expect(again.status).toBe(409);
    expect((again.json() as { code: string }).code).toBe("NO_GRACE_PERIOD");
  });

  it("on the predecessor itself, the same; a key never rotated has no grace to end", async () => {
    const { old, successor } = await rotatedPair();
    const fields = await post(`/v1/keys/${old.id}/end-grace`, service.adminKey, { reason: "no such field" });
    expect(fields.status).toBe(400);
    expect((fields.json() as { code: string }).code).toBe("VALIDATION_FAILED");
    const ended = await post(`/v1/keys/${old.id}/end-grace`, service.adminKey, {});
    expect(ended.status).toBe(200);
    expect(ended.json()).toMatchObject({ id: old.id, status: "revoked", ended_grace: [old.id] });
    expect(await authz(old.key)).toEqual({ status: 401, code: "REVOKED" });
    expect(await authz(successor.key)).toEqual({ status: 200, code: "VALID" });
    const fresh = await createKeyOverHttp(service);
    const none = await post(`/v1/keys/${fresh.id}/end-grace`, service.adminKey);
    expect(none.status).toBe(409);
    expect((none.json() as { code: string }).code).toBe("NO_GRACE_PERIOD");
    expect((await post("/v1/keys/key_AAAAAAAAAAAAAAAAAAAA/end-grace", service.adminKey)).status).toBe(404);
  });

  it("refuses an actor who could not revoke the predecessor (403), and a member another member's key (404)", async () => {
    const { old, successor } = await rotatedPair();
    // A delegate: keys:write, sandbox and read only. It cannot revoke a production key, so it cannot end its grace.
    const delegate = await createKeyOverHttp(service, {
      owner: { type: "application", id: "provisioning" },
      environment: "sandbox",
      scopes: ["keys:read", "keys:write", "read"],
    });
    const revoke = await post(`/v1/keys/${old.id}/revoke`, delegate.key, {});
    expect(revoke.status).toBe(403);
    for (const id of [successor.id, old.id]) {
      const refused = await post(`/v1/keys/${id}/end-grace`, delegate.key);
      expect(refused.status, id).toBe(403);
      expect((refused.json() as { code: string }).code).toBe("FORBIDDEN");
    }
    expect(await authz(old.key)).toEqual({ status: 200, code: "VALID" });

    const admin = await setupAdmin(service);
    const mia = await createMember(service, admin, "mia@example.com");
    const otto = await createMember(service, admin, "otto@example.com");
    const mine = await rotatedPair({ type: "user", id: mia.userId });
    const hidden = await service.call(`/v1/keys/${mine.successor.id}/end-grace`, {
      method: "POST",
      headers: sessionHeaders(service, otto),
      body: "{}",
    });
    expect(hidden.status).toBe(404);
    expect(await authz(mine.old.key)).toEqual({ status: 200, code: "VALID" });
    const own = await service.call(`/v1/keys/${mine.successor.id}/end-grace`, {
      method: "POST",
      headers: sessionHeaders(service, mia),
      body: "{}",
    });
    expect(own.status).toBe(200);
    expect(await authz(mine.old.key)).toEqual({ status: 401, code: "REVOKED" });
  });
});
