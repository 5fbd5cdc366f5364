import { createHash } from "node:crypto";

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
