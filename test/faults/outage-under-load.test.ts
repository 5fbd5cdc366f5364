import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Keyward } from "../../src/engine/keyward.js";
import { startInProcessService } from "../helpers/in-process-service.js";
import { PrivatePostgres, privatePostgresAvailable } from "../helpers/private-postgres.js";
import { PrivateRedis, privateRedisAvailable } from "../helpers/private-redis.js";

// Private PostgreSQL and Redis servers: the machine's own are not used. Both are checked, so a skip names each missing one.
const available = [privateRedisAvailable(), privatePostgresAvailable()].every(Boolean);
if (!available && process.env.CI) throw new Error("redis-server and PostgreSQL server binaries are required under CI");

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Issue #9 "Faults": the outage behaviours of SECURITY.md while requests keep coming, on
 * private PostgreSQL and Redis servers stopped and started mid-load, with outcome counts checked.
 */
describe.runIf(available)("outages under load", () => {
  let db: PrivatePostgres;
  let redis: PrivateRedis;
  let keyward: Keyward;
  let url: string;
  let admin: string;
  let close: () => Promise<void>;

  beforeAll(async () => {
    [db, redis] = await Promise.all([PrivatePostgres.start(), PrivateRedis.start()]);
    ({
      keyward,
      url,
      adminKey: admin,
      close,
    } = await startInProcessService({
      KEYWARD_DATABASE_URL: db.url,
      KEYWARD_REDIS_URL: redis.url,
      KEYWARD_CACHE_MAX_AGE_MS: "100",
      KEYWARD_STALE_WINDOW_MS: "60000",
    }));
  }, 60_000);
  afterAll(async () => {
    await close?.();
    await Promise.all([db?.destroy(), redis?.stop()]);
  });

  const create = async (body: Record<string, unknown>) => {
    const response = await fetch(`${url}/v1/keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify({ owner: { type: "application", id: "load" }, name: "l", environment: "sandbox", scopes: ["read"], ...body }),
    });
    expect(response.status).toBe(201);
    return (await response.json()) as { id: string; key: string };
  };

  /** Requests in a loop until stopped, counting statuses. */
  function load(key: string) {
    const counts = new Map<number, number>();
    let running = true;
    const loop = (async () => {
      while (running) {
        const status = (await fetch(`${url}/v1/authz`, { headers: { "x-api-key": key } })).status;
        counts.set(status, (counts.get(status) ?? 0) + 1);
      }
    })();
    return {
      counts,
      stop: async () => {
        running = false;
        await loop;
      },
    };
  }

  it("Redis down and back mid-load: rate limits degrade to this instance (never unlimited) and recover", async () => {
    const limited = await create({ rate_limit: { requests: 20, per_seconds: 60 } });
    const traffic = load(limited.key);
    await sleep(300);
    await redis.stop();
    await sleep(600);
    await redis.start();
    await sleep(1_500);
    await traffic.stop();
    const admitted = traffic.counts.get(200) ?? 0;
    // One bucket per phase: shared before the outage, this instance's own during it, and a fresh
    // shared one after (this Redis keeps nothing on disk, so its restart forgot the bucket).
    // Never unlimited: at most three times the limit over one outage and one restart.
    expect(admitted).toBeGreaterThanOrEqual(20);
    expect(admitted).toBeLessThanOrEqual(60);
    expect(traffic.counts.get(429) ?? 0).toBeGreaterThan(0);
    expect([...traffic.counts.keys()].every((status) => status === 200 || status === 429)).toBe(true);
  }, 30_000);

  it("PostgreSQL down and back mid-load: cached keys keep working, quota spends wait (503), nothing over-spent", async () => {
    const plain = await create({});
    const quota = await create({ quota: { remaining: 30 } });
    const plainTraffic = load(plain.key);
    const quotaTraffic = load(quota.key);
    await sleep(200);
    await db.stop();
    await sleep(700);
    await db.start();
    await sleep(2_500);
    await Promise.all([plainTraffic.stop(), quotaTraffic.stop()]);
    // The verified key never saw an error: the stale window covers the outage.
    expect([...plainTraffic.counts.keys()]).toEqual([200]);
    const admitted = quotaTraffic.counts.get(200) ?? 0;
    expect(quotaTraffic.counts.get(503) ?? 0).toBeGreaterThan(0);
    expect(admitted).toBe(30);
    expect([...quotaTraffic.counts.keys()].every((status) => [200, 429, 503].includes(status))).toBe(true);
    const snapshot = await keyward.inspectLimits(await keyward.getKey(quota.id));
    expect(snapshot.quota).toMatchObject({ used: 30, remaining: 0 });
  }, 30_000);
});
