import { createHash } from "node:crypto";
import { Redis } from "ioredis";

/**
 * The Redis side of the limiter, as Lua scripts run atomically. Each reads Redis's own clock
 * (`TIME`), so instances whose clocks disagree still share one timeline. Numbers go back as
 * strings: Redis would truncate a Lua float reply to an integer.
 */
export interface RedisScript {
  lua: string;
  sha: string;
}

const script = (lua: string): RedisScript => ({ lua, sha: createHash("sha1").update(lua).digest("hex") });

const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** GCRA (see src/core/rate-limit.ts): KEYS[1] the TAT; ARGV interval ms, tolerance ms, cost → {allowed, ahead ms}. */
export const RATE_SCRIPT = script(`${NOW}
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local ahead = tat - now
local nextAhead = ahead + interval * cost
if nextAhead > tolerance + 0.000001 then return {0, tostring(ahead)} end
redis.call('SET', KEYS[1], tostring(now + nextAhead), 'PX', math.ceil(nextAhead) + 1000)
return {1, tostring(nextAhead)}`);

/** KEYS[1] the TAT → how far it runs ahead of now, in ms. */
export const PEEK_RATE_SCRIPT = script(`${NOW}
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then return '0' end
return tostring(tat - now)`);

/** Concurrency leases in a sorted set scored by expiry: KEYS[1]; ARGV max, lease ms, lease id → 1 taken, 0 full. */
export const ACQUIRE_SLOT_SCRIPT = script(`${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
local longest = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
redis.call('PEXPIRE', KEYS[1], math.ceil(longest - now) + 1000)
return 1`);

/** KEYS[1] → unexpired leases held. */
export const COUNT_SLOTS_SCRIPT = script(`${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])`);

/** Readiness: Redis answers scripts (KEYS[1] is not touched). */
export const PING_SCRIPT = script("return 1");

/**
 * The failed-attempt counter of one client address (src/core/failed-attempts.ts): KEYS[1];
 * ARGV window ms → {attempts in the window, ms until it ends}. The window starts at the first
 * attempt, as in memory.
 */
export const FAILED_ATTEMPT_SCRIPT = script(`local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}`);

/** The commands `runScript` needs. */
export type ScriptRedis = Pick<Redis, "evalsha" | "eval">;

/** Runs a script by its SHA, loading it with `EVAL` when Redis does not have it yet. */
export async function runScript(redis: ScriptRedis, script: RedisScript, key: string, args: (string | number)[]): Promise<unknown> {
  try {
    return await redis.evalsha(script.sha, 1, key, ...args);
  } catch (error) {
    if (!String((error as Error).message).includes("NOSCRIPT")) throw error;
    return redis.eval(script.lua, 1, key, ...args);
  }
}

/**
 * A client for limiter calls: each call has a short time limit, nothing is queued while
 * disconnected (the caller's fallback answers meanwhile), and it reconnects forever with a
 * capped back-off, so recovery needs no restart.
 */
export function connectLimiterRedis(url: string, timeoutMs: number): Redis {
  const client = new Redis(url, {
    commandTimeout: timeoutMs,
    connectTimeout: 1_000,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (attempt) => Math.min(attempt * 100, 2_000),
  });
  client.on("error", () => {});
  return client;
}
