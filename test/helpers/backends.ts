import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import pg from "pg";
import { backendsPrerequisite, lacking } from "./prerequisites.js";

export const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/**
 * Whether PostgreSQL and Redis answer. Under CI they must: a suite that needs them fails there
 * instead of skipping. Elsewhere the suites skip, and the end of the run lists them (lacking()).
 */
export async function backendsAvailable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 2_000 });
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2_000, retryStrategy: () => null });
  redis.on("error", () => {});
  try {
    await client.connect();
    await client.query("SELECT 1");
    await redis.connect();
    await redis.ping();
    return true;
  } catch (error) {
    if (process.env.CI)
      throw new Error(`PostgreSQL (${DATABASE_URL}) and Redis (${REDIS_URL}) must be reachable under CI: ${(error as Error).message}`);
    lacking(backendsPrerequisite(DATABASE_URL, REDIS_URL, (error as Error).message));
    return false;
  } finally {
    await client.end().catch(() => {});
    redis.disconnect();
  }
}

/**
 * pg_trgm in `public`, once per database. Left to the store's start (ensureNameSearchIndex), it
 * would be created in the first test's schema, and dropping that schema would take it (and every
 * other test schema's name index) away in the middle of their tests.
 */
async function ensureTrigramInPublic(client: pg.Client): Promise<void> {
  try {
    await client.query("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public");
  } catch {
    // Created by a test starting at the same time, or not available: the store copes with either.
  }
}

/** A fresh PostgreSQL schema for one test; dropped by the returned function. */
export async function createTestSchema(): Promise<{ schema: string; drop: () => Promise<void> }> {
  const schema = `kw_test_${randomBytes(6).toString("hex")}`;
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  await ensureTrigramInPublic(client);
  await client.query(`CREATE SCHEMA ${schema}`);
  await client.end();
  return {
    schema,
    drop: async () => {
      const c = new pg.Client({ connectionString: DATABASE_URL });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await c.end();
    },
  };
}

export const uniqueRedisPrefix = (): string => `keyward-test:${randomBytes(6).toString("hex")}:`;
