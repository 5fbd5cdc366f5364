import parsePrometheusTextFormat, { type ParsedFamily } from "parse-prometheus-text-format";
import { afterEach, beforeEach, expect, it } from "vitest";
import { OUTCOME_CODES } from "../../src/core/outcomes.js";
import { findLeaks } from "../helpers/canary.js";
import { createKeyOverHttp, jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

let service: TestService;
beforeEach(async () => {
  service = await startTestService();
});
afterEach(async () => {
  await service.close();
});

async function scrape(): Promise<{ text: string; families: Map<string, ParsedFamily> }> {
  const response = await service.call("/metrics");
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return { text: response.text, families: new Map(parsePrometheusTextFormat(response.text).map((f) => [f.name, f])) };
}

const sample = (family: ParsedFamily | undefined, labels: Record<string, string>) =>
  Number(family?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))?.value ?? 0);

/** Every label value the service may emit: fixed words and outcome codes, nothing that grows with keys, owners or clients. */
const BOUNDED_LABELS: Record<string, readonly string[]> = {
  outcome: [...OUTCOME_CODES, "delivered", "retry", "failed"],
  result: ["hit", "negative_hit", "miss"],
  kind: ["positive", "negative"],
  operation: ["lookup", "management", "webhooks"],
  decision: ["allowed", "rate_limited", "concurrency_limited", "quota_exceeded"],
};

it("/metrics parses as Prometheus text and counts verifications, latency, cache and store errors", async () => {
  const key = await createKeyOverHttp(service, { scopes: ["read"] });
  const verify = (presented: string) =>
    service.call("/v1/keys/verify", { method: "POST", headers: jsonHeaders(service.adminKey), body: JSON.stringify({ key: presented }) });
  await verify(key.key); // miss: read from the store
  await verify(key.key); // hit
  await verify("kw_test_not-a-key");
  // A management write that fails on the store counts as a store error.
  service.store.db.exec("CREATE TRIGGER fail_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'injected'); END;");
  expect(
    (await service.call(`/v1/keys/${key.id}`, { method: "PATCH", headers: jsonHeaders(service.adminKey), body: '{"name":"x"}' })).status,
  ).toBe(500);
  service.store.db.exec("DROP TRIGGER fail_audit");

  const { families } = await scrape();
  const verifications = families.get("keyward_verifications_total");
  expect(verifications?.type).toBe("COUNTER");
  expect(sample(verifications, { outcome: "VALID" })).toBeGreaterThanOrEqual(2);
  expect(sample(verifications, { outcome: "MALFORMED" })).toBe(1);
  const latency = families.get("keyward_verify_duration_seconds");
  expect(latency?.type).toBe("HISTOGRAM");
  expect(Number(latency?.metrics[0]?.count)).toBeGreaterThanOrEqual(3);
  expect(Object.keys(latency?.metrics[0]?.buckets ?? {})).toContain("+Inf");
  const lookups = families.get("keyward_cache_lookups_total");
  expect(sample(lookups, { result: "hit" })).toBeGreaterThanOrEqual(1);
  expect(sample(lookups, { result: "miss" })).toBeGreaterThanOrEqual(1);
  expect(sample(families.get("keyward_store_errors_total"), { operation: "management" })).toBe(1);
  for (const name of [
    "keyward_webhook_deliveries_total",
    "keyward_limiter_decisions_total",
    "keyward_limiter_degraded",
    "keyward_usage_buffer_events",
    "keyward_usage_dropped_events_total",
    "keyward_cache_entries",
  ])
    expect(families.has(name), name).toBe(true);
});

it("/metrics holds no key material and only bounded label values", async () => {
  const keys = [await createKeyOverHttp(service), await createKeyOverHttp(service, { environment: "production" })];
  for (const k of keys) {
    await service.call("/v1/introspect", { headers: { "x-api-key": k.key } });
    await service.call(`/v1/keys/${k.id}/revoke`, { method: "POST", headers: jsonHeaders(service.adminKey), body: "{}" });
    await service.call("/v1/introspect", { headers: { "x-api-key": k.key } });
  }
  const { text, families } = await scrape();
  expect(findLeaks(text, [service.adminKey, ...keys.map((k) => k.key)])).toEqual([]);
  for (const k of keys) {
    expect(text).not.toContain(k.id);
    expect(text).not.toContain(k.ref as string);
  }
  expect(text).not.toMatch(/127\.0\.0\.1|alice/);
  for (const family of families.values())
    for (const metric of family.metrics)
      for (const [label, value] of Object.entries(metric.labels ?? {})) {
        if (label === "le" || label === "quantile") continue;
        if (!family.name.startsWith("keyward_")) continue; // process and Node.js defaults are not registered
        expect(BOUNDED_LABELS[label], `${family.name}{${label}}`).toBeDefined();
        expect(BOUNDED_LABELS[label], `${family.name}{${label}="${value}"}`).toContain(value);
      }
});

interface LogLine {
  reqId?: string;
  msg?: string;
  req?: { headers?: unknown };
  [field: string]: unknown;
}

it("every log line written for a request carries its request id, and carriers are redacted", async () => {
  const key = await createKeyOverHttp(service);
  await service.call("/v1/introspect", { headers: { authorization: `Bearer ${key.key}`, "x-request-id": "trace-abc-123" } });
  await service.call("/v1/keys", { headers: { "x-api-key": "kw_test_broken", cookie: "session=secret-cookie" } });
  service.store.db.exec("CREATE TRIGGER fail_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'injected'); END;");
  await service.call(`/v1/keys/${key.id}`, { method: "PATCH", headers: jsonHeaders(service.adminKey), body: '{"name":"x"}' });
  service.store.db.exec("DROP TRIGGER fail_audit");
  service.app.log.child({ reqId: "nested-check" }).warn(
    {
      err: { message: "upstream said no", headers: { authorization: `Bearer ${key.key}`, cookie: "a=b" } },
      context: { headers: { "x-api-key": key.key, "set-cookie": "s=1" } },
      upstream: { response: { headers: { authorization: `ApiKey ${key.key}`, cookie: "deep-cookie" } } },
    },
    "nested carriers",
  );

  const lines = service.logs
    .join("")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as LogLine);
  const requestLines = lines.filter((line) => !/^Server listening/.test(line.msg ?? ""));
  expect(requestLines.length).toBeGreaterThan(5);
  for (const line of requestLines) expect(line.reqId, JSON.stringify(line)).toEqual(expect.any(String));
  expect(lines.some((line) => line.reqId === "trace-abc-123")).toBe(true);
  expect(lines.some((line) => line.msg === "unhandled error" && typeof line.reqId === "string")).toBe(true);
  const all = service.logs.join("");
  expect(findLeaks(all, [key.key, service.adminKey])).toEqual([]);
  expect(all).not.toContain("secret-cookie");
  expect(all).not.toContain("s=1");
  expect(all).not.toContain("deep-cookie");
});
