import { afterEach, beforeEach, expect, it } from "vitest";
import { generateApiKey } from "../../src/core/key-format.js";
import { createKeyOverHttp, jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

let service: TestService;
beforeEach(async () => {
  service = await startTestService();
});
afterEach(async () => {
  await service.close();
});

it("a leak report revokes each known key at once, audits it, and reports the rest by position", async () => {
  const leaked = await createKeyOverHttp(service, { scopes: ["read"] });
  const alreadyRevoked = await createKeyOverHttp(service);
  await service.call(`/v1/keys/${alreadyRevoked.id}/revoke`, { method: "POST", headers: jsonHeaders(service.adminKey), body: "{}" });
  expect((await service.call("/v1/introspect", { headers: { "x-api-key": leaked.key } })).status).toBe(200);

  const unknown = generateApiKey({ environment: "sandbox" });
  const response = await service.call("/v1/leaks", {
    method: "POST",
    headers: jsonHeaders(service.adminKey),
    body: JSON.stringify({ keys: [leaked.key, "not a key", alreadyRevoked.key, unknown], source: "github secret scanning" }),
  });
  expect(response.status).toBe(200);
  expect(response.json()).toEqual({
    revoked: 1,
    results: [
      { index: 0, outcome: "revoked", id: leaked.id, ref: leaked.ref },
      { index: 1, outcome: "malformed" },
      { index: 2, outcome: "already_revoked", id: alreadyRevoked.id, ref: alreadyRevoked.ref },
      { index: 3, outcome: "unknown" },
    ],
  });

  const next = await service.call("/v1/introspect", { headers: { "x-api-key": leaked.key } });
  expect((next.json() as { code: string }).code).toBe("REVOKED");
  const audit = (
    await service.call(`/v1/audit-events?key_id=${leaked.id}&action=key.leaked`, { headers: jsonHeaders(service.adminKey) })
  ).json() as {
    data: { details: { reason: string } }[];
  };
  expect(audit.data).toHaveLength(1);
  expect(audit.data[0]?.details.reason).toBe("leaked: github secret scanning");
});

it("needs keys:write", async () => {
  const reader = await createKeyOverHttp(service, { scopes: ["keys:read"], owner: { type: "application", id: "ro" } });
  const response = await service.call("/v1/leaks", {
    method: "POST",
    headers: jsonHeaders(reader.key),
    body: JSON.stringify({ keys: [reader.key] }),
  });
  expect(response.status).toBe(403);
  expect((await service.call("/v1/introspect", { headers: { "x-api-key": reader.key } })).status).toBe(200);
});
