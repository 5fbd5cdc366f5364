import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyAuditChain } from "../../src/core/audit-chain.js";
import { createKeyOverHttp, jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

interface AuditJson {
  id: string;
  actor: { type: string; id: string };
  action: string;
  target: { type: string; id: string };
  ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  changes: Record<string, { from: unknown; to: unknown }> | null;
  details: Record<string, unknown> | null;
}

let service: TestService;
let adminId: string;
beforeAll(async () => {
  service = await startTestService();
  const self = await service.call("/v1/introspect", { headers: { "x-api-key": service.adminKey } });
  adminId = (self.json() as { id: string }).id;
});
afterAll(async () => {
  await service.close();
});

let sequence = 0;
/** A management call with its own request id and user agent, so its audit event can be told apart. */
async function act(method: string, path: string, body?: unknown) {
  sequence++;
  const requestId = `audit-test-${sequence}`;
  const userAgent = `audit-trail-test/${sequence}`;
  const response = await service.call(path, {
    method,
    headers: {
      ...(body === undefined ? { authorization: `Bearer ${service.adminKey}` } : jsonHeaders(service.adminKey)),
      "x-request-id": requestId,
      "user-agent": userAgent,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { response, requestId, userAgent };
}

async function allEvents(): Promise<AuditJson[]> {
  const exported = await service.call("/v1/audit-events/export", { headers: jsonHeaders(service.adminKey) });
  expect(exported.status).toBe(200);
  return exported.text
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as AuditJson);
}

/** Runs `change` and returns the audit events it added. */
async function eventsAddedBy(change: () => Promise<unknown>): Promise<AuditJson[]> {
  const before = new Set((await allEvents()).map((e) => e.id));
  await change();
  return (await allEvents()).filter((e) => !before.has(e.id));
}

type Case = {
  name: string;
  /** Makes what the action needs; returns the target id. */
  prepare: () => Promise<string>;
  run: (target: string) => [method: string, path: string, body?: unknown];
  status: number;
  action: string;
  targetType: string;
  changes?: Record<string, unknown> | null;
  details?: Record<string, unknown>;
};

const key = async (extra: Record<string, unknown> = {}) => (await createKeyOverHttp(service, extra)).id;

const CASES: Case[] = [
  {
    name: "create a key",
    prepare: async () => "",
    run: () => ["POST", "/v1/keys", { owner: { type: "user", id: "carol" }, name: "created", environment: "sandbox", scopes: ["read"] }],
    status: 201,
    action: "key.created",
    targetType: "key",
    changes: null,
    details: { owner: { type: "user", id: "carol" }, environment: "sandbox", scopes: ["read"] },
  },
  {
    name: "rename a key",
    prepare: () => key({ name: "old" }),
    run: (id) => ["PATCH", `/v1/keys/${id}`, { name: "new" }],
    status: 200,
    action: "key.updated",
    targetType: "key",
    changes: { name: { from: "old", to: "new" } },
  },
  {
    name: "change scopes and expiry",
    prepare: () => key({ scopes: ["read"] }),
    run: (id) => ["PATCH", `/v1/keys/${id}`, { scopes: ["read", "write"], expires_at: "2099-01-01T00:00:00.000Z" }],
    status: 200,
    action: "key.updated",
    targetType: "key",
    changes: { scopes: { from: ["read"], to: ["read", "write"] }, expires_at: { from: null, to: Date.parse("2099-01-01T00:00:00.000Z") } },
  },
  {
    name: "disable a key",
    prepare: () => key(),
    run: (id) => ["PATCH", `/v1/keys/${id}`, { enabled: false }],
    status: 200,
    action: "key.disabled",
    targetType: "key",
    changes: { enabled: { from: true, to: false } },
  },
  {
    name: "rotate a key",
    prepare: () => key(),
    run: (id) => ["POST", `/v1/keys/${id}/rotate`, { grace_seconds: 60 }],
    status: 201,
    action: "key.rotated",
    targetType: "key",
    details: { grace_seconds: 60 },
  },
  {
    name: "revoke a key",
    prepare: () => key(),
    run: (id) => ["POST", `/v1/keys/${id}/revoke`, { reason: "no longer needed" }],
    status: 200,
    action: "key.revoked",
    targetType: "key",
    details: { reason: "no longer needed" },
  },
  {
    name: "disable an owner",
    prepare: async () => {
      await key({ owner: { type: "user", id: "dave" } });
      return "user:dave";
    },
    run: () => ["PATCH", "/v1/owners/user/dave", { disabled: true }],
    status: 200,
    action: "owner.disabled",
    targetType: "owner",
    changes: { disabled: { from: false, to: true } },
  },
  {
    name: "enable an owner",
    prepare: async () => {
      await key({ owner: { type: "user", id: "erin" } });
      await service.call("/v1/owners/user/erin", { method: "PATCH", headers: jsonHeaders(service.adminKey), body: '{"disabled":true}' });
      return "user:erin";
    },
    run: () => ["PATCH", "/v1/owners/user/erin", { disabled: false }],
    status: 200,
    action: "owner.enabled",
    targetType: "owner",
    changes: { disabled: { from: true, to: false } },
  },
  {
    name: "report a leaked key",
    prepare: async () => {
      const created = await createKeyOverHttp(service);
      leakedPlaintext = created.key;
      return created.id;
    },
    run: () => ["POST", "/v1/leaks", { keys: [leakedPlaintext], source: "pastebin" }],
    status: 200,
    action: "key.leaked",
    targetType: "key",
    details: { reason: "leaked: pastebin" },
  },
  {
    name: "add a webhook endpoint",
    prepare: async () => "",
    run: () => ["POST", "/v1/webhooks", { url: "https://hooks.example.test/keyward?token=secret-in-url" }],
    status: 201,
    action: "webhook.created",
    targetType: "webhook",
    details: { origin: "https://hooks.example.test" },
  },
];
let leakedPlaintext = "";

describe("every management action leaves exactly one audit event", () => {
  it.each(CASES)("$name", async (c) => {
    let target = await c.prepare();
    const exchanges: Awaited<ReturnType<typeof act>>[] = [];
    const added = await eventsAddedBy(async () => {
      const [method, path, body] = c.run(target);
      exchanges.push(await act(method, path, body));
    });
    const exchange = exchanges[0] as Awaited<ReturnType<typeof act>>;
    expect(exchange.response.status, exchange.response.text).toBe(c.status);
    if (!target) target = (exchange.response.json() as { id: string }).id;
    expect(added).toHaveLength(1);
    const event = added[0] as AuditJson;
    expect(event).toMatchObject({
      actor: { type: "admin_key", id: adminId },
      action: c.action,
      target: { type: c.targetType, id: target },
      ip: "127.0.0.1",
      user_agent: exchange.userAgent,
      request_id: exchange.requestId,
    });
    if (c.changes !== undefined) {
      if (c.changes === null) expect(event.changes).toBeNull();
      else expect(event.changes).toMatchObject(c.changes);
    }
    if (c.details) expect(event.details).toMatchObject(c.details);
    // Never a secret: no plaintext, no digest, no webhook secret, no URL query.
    const text = JSON.stringify(event);
    expect(text).not.toContain(service.adminKey);
    expect(text).not.toMatch(/digest|whsec_|secret-in-url/);
    if (leakedPlaintext) expect(text).not.toContain(leakedPlaintext);
  });

  it("deleting a webhook endpoint is one event", async () => {
    const created = (await act("POST", "/v1/webhooks", { url: "https://hooks.example.test/x" })).response.json() as { id: string };
    const added = await eventsAddedBy(() => act("DELETE", `/v1/webhooks/${created.id}`));
    expect(added.map((e) => [e.action, e.target.id])).toEqual([["webhook.deleted", created.id]]);
  });

  it("the trail written by all of the above verifies", async () => {
    const report = await verifyAuditChain((after, limit) => service.store.readAuditChain(after, limit));
    expect(report.ok).toBe(true);
  });
});

describe("a change that fails leaves no event", () => {
  const FAILING: {
    name: string;
    run: (id: string) => [string, string, unknown?];
    status: number;
    setup?: (id: string) => Promise<void>;
  }[] = [
    {
      name: "a second rotation",
      setup: (id) => act("POST", `/v1/keys/${id}/rotate`, { grace_seconds: 0 }).then(() => {}),
      run: (id) => ["POST", `/v1/keys/${id}/rotate`, { grace_seconds: 0 }],
      status: 409,
    },
    {
      name: "revoking a revoked key",
      setup: (id) => act("POST", `/v1/keys/${id}/revoke`, {}).then(() => {}),
      run: (id) => ["POST", `/v1/keys/${id}/revoke`, {}],
      status: 409,
    },
    {
      name: "changing a revoked key",
      setup: (id) => act("POST", `/v1/keys/${id}/revoke`, {}).then(() => {}),
      run: (id) => ["PATCH", `/v1/keys/${id}`, { name: "x" }],
      status: 409,
    },
    { name: "a validation error", run: (id) => ["PATCH", `/v1/keys/${id}`, { name: "", scopes: "read" }], status: 400 },
    { name: "an unknown field", run: (id) => ["PATCH", `/v1/keys/${id}`, { owner: "mallory" }], status: 400 },
    { name: "an unknown key", run: () => ["POST", "/v1/keys/key_0000000000000000000/revoke", {}], status: 404 },
    {
      name: "a create with a bad scope",
      run: () => ["POST", "/v1/keys", { owner: { type: "user", id: "a" }, name: "n", environment: "sandbox", scopes: ["Bad Scope"] }],
      status: 400,
    },
    { name: "a leak report of unknown strings", run: () => ["POST", "/v1/leaks", { keys: ["not-a-key", "kw_test_nope"] }], status: 200 },
    { name: "a webhook to a private address", run: () => ["POST", "/v1/webhooks", { url: "http://10.0.0.1/hook" }], status: 400 },
  ];

  it.each(FAILING)("$name", async (c) => {
    const id = await key();
    await c.setup?.(id);
    let status = 0;
    const added = await eventsAddedBy(async () => {
      const [method, path, body] = c.run(id);
      status = (await act(method, path, body)).response.status;
    });
    expect(status).toBe(c.status);
    expect(added).toEqual([]);
  });
});

describe("a change whose audit write fails halfway is not applied", () => {
  // A real fault inside the real transaction: the audit insert aborts after the key row changed.
  const breakAuditWrites = () =>
    service.store.db.exec("CREATE TRIGGER fail_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'injected fault'); END;");
  const repairAuditWrites = () => service.store.db.exec("DROP TRIGGER fail_audit");

  it("an update rolls back with its event", async () => {
    const id = await key({ name: "kept" });
    breakAuditWrites();
    try {
      const { response } = await act("PATCH", `/v1/keys/${id}`, { name: "lost" });
      expect(response.status).toBe(500);
      expect(response.text).not.toContain("injected");
    } finally {
      repairAuditWrites();
    }
    const shown = await service.call(`/v1/keys/${id}`, { headers: jsonHeaders(service.adminKey) });
    expect((shown.json() as { name: string }).name).toBe("kept");
    expect((await allEvents()).filter((e) => e.target.id === id).map((e) => e.action)).toEqual(["key.created"]);
  });

  it("a create leaves no key behind", async () => {
    const before = (await service.call("/v1/keys?owner_id=frank", { headers: jsonHeaders(service.adminKey) })).json() as {
      data: unknown[];
    };
    breakAuditWrites();
    try {
      const { response } = await act("POST", "/v1/keys", {
        owner: { type: "user", id: "frank" },
        name: "n",
        environment: "sandbox",
        scopes: ["read"],
      });
      expect(response.status).toBe(500);
    } finally {
      repairAuditWrites();
    }
    const after = (await service.call("/v1/keys?owner_id=frank", { headers: jsonHeaders(service.adminKey) })).json() as { data: unknown[] };
    expect(after.data).toHaveLength(before.data.length);
  });

  it("a rotation leaves the old key unrotated and no successor", async () => {
    const created = await createKeyOverHttp(service);
    breakAuditWrites();
    try {
      expect((await act("POST", `/v1/keys/${created.id}/rotate`, { grace_seconds: 0 })).response.status).toBe(500);
    } finally {
      repairAuditWrites();
    }
    const shown = (await service.call(`/v1/keys/${created.id}`, { headers: jsonHeaders(service.adminKey) })).json() as {
      replaced_by: string | null;
      status: string;
    };
    expect(shown).toMatchObject({ replaced_by: null, status: "active" });
    expect((await service.call("/v1/introspect", { headers: { "x-api-key": created.key } })).status).toBe(200);
  });

  it("a revocation is not applied, so the key is not silently dead without a record", async () => {
    const created = await createKeyOverHttp(service);
    breakAuditWrites();
    try {
      expect((await act("POST", `/v1/keys/${created.id}/revoke`, {})).response.status).toBe(500);
    } finally {
      repairAuditWrites();
    }
    expect((await service.call("/v1/introspect", { headers: { "x-api-key": created.key } })).status).toBe(200);
  });
});

describe("GET /v1/audit-events", () => {
  it("filters by actor, key, action and time range, and pages with a cursor", async () => {
    const id = await key();
    for (const name of ["a", "b", "c"]) await act("PATCH", `/v1/keys/${id}`, { name });
    const get = async (query: string) =>
      (await service.call(`/v1/audit-events?${query}`, { headers: jsonHeaders(service.adminKey) })).json() as {
        data: AuditJson[];
        next_cursor: string | null;
      };
    const byKey = await get(`key_id=${id}`);
    expect(byKey.data.map((e) => e.action)).toEqual(["key.updated", "key.updated", "key.updated", "key.created"]);
    expect((await get(`key_id=${id}&action=key.created`)).data).toHaveLength(1);
    expect((await get(`actor_id=${adminId}&key_id=${id}`)).data).toHaveLength(4);
    expect((await get(`actor_id=someone-else&key_id=${id}`)).data).toHaveLength(0);
    expect((await get(`key_id=${id}&since=2999-01-01T00:00:00Z`)).data).toHaveLength(0);
    expect((await get(`key_id=${id}&until=2000-01-01T00:00:00Z`)).data).toHaveLength(0);
    const first = await get(`key_id=${id}&limit=3`);
    expect(first.data).toHaveLength(3);
    const rest = await get(`key_id=${id}&limit=3&cursor=${first.next_cursor}`);
    expect(rest.data.map((e) => e.action)).toEqual(["key.created"]);
    expect(rest.next_cursor).toBeNull();
  });

  it("exports the same filtered events as JSON lines", async () => {
    const id = await key();
    await act("POST", `/v1/keys/${id}/revoke`, {});
    const response = await service.call(`/v1/audit-events/export?key_id=${id}`, { headers: jsonHeaders(service.adminKey) });
    expect(response.headers.get("content-type")).toMatch(/^application\/x-ndjson/);
    const lines = response.text
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as AuditJson);
    expect(lines.map((e) => e.action)).toEqual(["key.revoked", "key.created"]);
  });

  it("refuses bad filters and needs audit:read", async () => {
    expect((await service.call("/v1/audit-events?since=yesterday", { headers: jsonHeaders(service.adminKey) })).status).toBe(400);
    expect((await service.call("/v1/audit-events?cursor=abc", { headers: jsonHeaders(service.adminKey) })).status).toBe(400);
    expect((await service.call("/v1/audit-events/export?limit=5", { headers: jsonHeaders(service.adminKey) })).status).toBe(400);
    const reader = await createKeyOverHttp(service, { scopes: ["keys:read"], owner: { type: "application", id: "reader" } });
    expect((await service.call("/v1/audit-events/export", { headers: jsonHeaders(reader.key) })).status).toBe(403);
  });
});
