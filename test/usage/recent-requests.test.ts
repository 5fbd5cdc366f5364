import { describe, expect, it } from "vitest";
import { recentRequestRoute } from "../../src/core/request-route.js";
import type { UsageEvent } from "../../src/ports/usage-recorder.js";
import { MemoryKeyStore } from "../../src/stores/memory/memory-key-store.js";
import { MemoryUsageStore } from "../../src/stores/memory/memory-usage-store.js";
import { BufferedUsageRecorder } from "../../src/usage/buffered-usage-recorder.js";

const AT = Date.UTC(2026, 0, 1);
const event = (keyId: string | null, at: number, code: UsageEvent["code"] = "VALID", extra: Partial<UsageEvent> = {}): UsageEvent => ({
  keyId,
  code,
  at,
  ip: "203.0.113.1",
  ...extra,
});

function recorder(options: { recentRequests?: number; recentRequestsPerFlush?: number; recentRequestsPerKey?: number } = {}) {
  const store = new MemoryUsageStore(new MemoryKeyStore());
  const usage = new BufferedUsageRecorder({ store, flushIntervalMs: 60_000, ...options });
  const read = (keyId: string, limit = 1000) => store.listRecentRequests(keyId, usage.recentRequestsKept, limit, null);
  return { store, usage, read };
}

describe("the recent-requests log of the usage recorder", () => {
  it("keeps each key's newest entries, none for unknown keys, and builds routes when it writes", async () => {
    const { usage, read } = recorder({ recentRequests: 3 });
    for (let i = 0; i < 5; i++) usage.record(event("key_a", AT + i, "VALID", { method: "GET", route: `/items/${i}?secret=1` }));
    usage.record(event("key_b", AT + 10, "INSUFFICIENT_SCOPE", { route: "verify", missingScopes: ["write"] }));
    usage.record(event(null, AT + 11, "NOT_FOUND"));
    await usage.flushRecentRequests();
    expect((await read("key_a")).map((r) => r.route)).toEqual(["GET /items/4", "GET /items/3", "GET /items/2"]);
    expect(await read("key_b")).toEqual([
      expect.objectContaining({ code: "INSUFFICIENT_SCOPE", route: "verify", missingScopes: ["write"], ip: "203.0.113.1" }),
    ]);
    expect(await read("")).toEqual([]);
    await usage.close();
  });

  it("writes at most the per-flush bound of allowed and of denied requests, keeping the newest, and counts the rest", async () => {
    const { usage, read } = recorder({ recentRequests: 100, recentRequestsPerFlush: 3 });
    for (let i = 0; i < 10; i++) usage.record(event(`key_${i}`, AT + i));
    for (let i = 0; i < 4; i++) usage.record(event("key_x", AT + 100 + i, "RATE_LIMITED"));
    await usage.flushRecentRequests();
    expect(usage.stats.recentRequestsDropped).toBe(7 + 1);
    for (let i = 0; i < 7; i++) expect(await read(`key_${i}`)).toEqual([]);
    for (let i = 7; i < 10; i++) expect(await read(`key_${i}`)).toHaveLength(1);
    expect((await read("key_x")).map((r) => r.at)).toEqual([AT + 103, AT + 102, AT + 101]);
    await usage.close();
  });

  it("takes the first few requests of a key and outcome per flush interval, so a busy key leaves room for the others", async () => {
    const { usage, read } = recorder({ recentRequests: 100, recentRequestsPerFlush: 20, recentRequestsPerKey: 3 });
    for (let i = 0; i < 50; i++) usage.record(event("key_busy", AT + i));
    for (let i = 0; i < 5; i++) usage.record(event("key_busy", AT + 60 + i, "RATE_LIMITED"));
    usage.record(event("key_quiet", AT + 70));
    await usage.flushRecentRequests();
    expect((await read("key_busy")).map((r) => [r.at - AT, r.code])).toEqual([
      [62, "RATE_LIMITED"],
      [61, "RATE_LIMITED"],
      [60, "RATE_LIMITED"],
      [2, "VALID"],
      [1, "VALID"],
      [0, "VALID"],
    ]);
    expect(await read("key_quiet")).toHaveLength(1);
    await usage.close();
  });

  it("is off with recentRequests 0, and with a store that keeps no log", async () => {
    const off = recorder({ recentRequests: 0 });
    expect(off.usage.recentRequestsKept).toBe(0);
    off.usage.record(event("key_a", AT));
    await off.usage.flushRecentRequests();
    expect(await off.store.listRecentRequests("key_a", 100, 10, null)).toEqual([]);
    await off.usage.close();
    const plain = new MemoryUsageStore(new MemoryKeyStore());
    const bare = new BufferedUsageRecorder({
      store: {
        writeUsage: plain.writeUsage.bind(plain),
        queryUsage: plain.queryUsage.bind(plain),
        pruneUsage: plain.pruneUsage.bind(plain),
      },
    });
    expect(bare.recentRequestsKept).toBe(0);
    await bare.close();
  });

  it("reports a key's unwritten last use, VALID uses only", async () => {
    const { usage } = recorder();
    usage.record(event("key_a", AT, "VALID", { ip: "198.51.100.4" }));
    usage.record(event("key_a", AT + 5, "REVOKED"));
    expect(usage.pendingLastUse("key_a")).toEqual({ keyId: "key_a", at: AT, ip: "198.51.100.4" });
    expect(usage.pendingLastUse("key_b")).toBeNull();
    await usage.flush();
    expect(usage.pendingLastUse("key_a")).toBeNull();
    await usage.close();
  });
});

describe("recentRequestRoute", () => {
  it("keeps the path and never the query string, fragment, scheme or host", () => {
    expect(recentRequestRoute("GET", "/orders/7?api_key=x#top")).toBe("GET /orders/7");
    expect(recentRequestRoute("POST", "https://api.example.com/orders?x=1")).toBe("POST /orders");
    expect(recentRequestRoute("GET", "https://api.example.com")).toBe("GET /");
    expect(recentRequestRoute(undefined, "verify")).toBe("verify");
    expect(recentRequestRoute(undefined, "/proxied?secret=1")).toBe("/proxied");
    expect(recentRequestRoute("GET", undefined)).toBe("GET");
    expect(recentRequestRoute(undefined, undefined)).toBeNull();
  });

  it("redacts key-shaped text (escaped too), drops control characters, and bounds the length", () => {
    expect(recentRequestRoute("GET", "/k/kw_test_0123456789abcdefghij/x")).toBe("GET /k/[REDACTED]/x");
    expect(recentRequestRoute("GET", "/k/kw%5Ftest%5F0123456789abcdefghij")).toBe("GET /k/[REDACTED]");
    expect(recentRequestRoute("GET", "/a\r\nb\u2028c")).toBe("GET /abc");
    expect(recentRequestRoute("not a method", "/a")).toBe("/a");
    const long = recentRequestRoute("GET", `/${"a".repeat(500)}`) as string;
    expect(long).toHaveLength(200);
    expect(long.endsWith("…")).toBe(true);
  });
});
