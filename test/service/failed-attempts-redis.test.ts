import { afterEach, describe, expect, it } from "vitest";
import { generateApiKey } from "../../src/core/key-format.js";
import type { RedisAttemptCounter } from "../../src/limits/redis-attempt-counter.js";
import { backendsAvailable, REDIS_URL, uniqueRedisPrefix } from "../helpers/backends.js";
import { PrivateRedis, privateRedisAvailable } from "../helpers/private-redis.js";
import { type RawResponse, rawRequest } from "../helpers/raw-http.js";
import { startTestService, type TestService } from "../helpers/service.js";

// SECURITY.md 7 across instances: the count of failed attempts is shared through Redis, and
// each instance keeps counting on its own when Redis fails (the throttle degrades, never turns off).

const haveBackends = await backendsAvailable();
// The outage is a private redis-server's, stopped under the instance.
const haveRedisServer = privateRedisAvailable();

const services: TestService[] = [];
afterEach(async () => {
  for (const service of services.splice(0)) await service.close();
});

async function instance(redisUrl: string, prefix: string, limit: number): Promise<TestService> {
  const service = await startTestService({
    env: { KEYWARD_REDIS_URL: redisUrl, KEYWARD_REDIS_PREFIX: prefix, KEYWARD_FAILED_ATTEMPTS_LIMIT: String(limit) },
  });
  services.push(service);
  return service;
}

/** The instance's shared counter, once connected. */
async function untilConnected(service: TestService, connected = true): Promise<void> {
  const counter = service.keyward.failedAttempts?.shared as RedisAttemptCounter | undefined;
  if (!counter) throw new Error("no shared attempt counter");
  for (let i = 0; i < 200 && counter.connected !== connected; i++) await new Promise((resolve) => setTimeout(resolve, 25));
  expect(counter.connected).toBe(connected);
}

const guess = (service: TestService): Promise<RawResponse> =>
  rawRequest(service.url, { path: "/v1/authz", headers: { "x-api-key": generateApiKey({ environment: "sandbox" }) } });
const code = (response: RawResponse) => (JSON.parse(response.body) as { code: string }).code;

describe.runIf(haveBackends)("failed-attempt throttle shared through Redis", () => {
  it("two instances share one count per address", async () => {
    const prefix = uniqueRedisPrefix();
    const a = await instance(REDIS_URL, prefix, 6);
    const b = await instance(REDIS_URL, prefix, 6);
    await untilConnected(a);
    await untilConnected(b);
    for (let i = 0; i < 3; i++) expect(code(await guess(a))).toBe("NOT_FOUND");
    for (let i = 0; i < 3; i++) expect(code(await guess(b))).toBe("NOT_FOUND");
    // B has seen only three of its own, but the shared count is six: the address is blocked there.
    const refused = await guess(b);
    expect([refused.status, code(refused)]).toEqual([429, "TOO_MANY_FAILED_ATTEMPTS"]);
    // A learns the shared count with its next failure (at most one more lookup per instance).
    const next = [code(await guess(a)), code(await guess(a))];
    expect(next[1]).toBe("TOO_MANY_FAILED_ATTEMPTS");
    expect(next.filter((c) => c === "NOT_FOUND").length).toBeLessThanOrEqual(1);
  });

  it("another address has its own count on every instance", async () => {
    const prefix = uniqueRedisPrefix();
    const a = await instance(REDIS_URL, prefix, 3);
    const b = await instance(REDIS_URL, prefix, 3);
    await untilConnected(a);
    await untilConnected(b);
    for (let i = 0; i < 4; i++) await guess(a);
    // B learns the shared count with its first failure for the address.
    expect([code(await guess(b)), code(await guess(b))]).toEqual(["NOT_FOUND", "TOO_MANY_FAILED_ATTEMPTS"]);
    const other = await rawRequest(b.url, {
      path: "/v1/authz",
      headers: { "x-api-key": generateApiKey({ environment: "sandbox" }) },
      localAddress: "127.0.0.2",
    });
    expect(code(other)).toBe("NOT_FOUND");
  });

  it.runIf(haveRedisServer)("with Redis down, each instance counts on its own: still throttled, never unlimited", async () => {
    const redis = await PrivateRedis.start();
    try {
      const a = await instance(redis.url, uniqueRedisPrefix(), 3);
      await untilConnected(a);
      await redis.stop();
      await untilConnected(a, false);
      const answers: string[] = [];
      for (let i = 0; i < 5; i++) answers.push(code(await guess(a)));
      expect(answers).toEqual(["NOT_FOUND", "NOT_FOUND", "NOT_FOUND", "TOO_MANY_FAILED_ATTEMPTS", "TOO_MANY_FAILED_ATTEMPTS"]);
      expect(a.logs.join("")).toContain("failed-attempt throttle: Redis unreachable, counting per instance");
    } finally {
      await redis.stop();
    }
  });
});
