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

// Each decision is one Lua function, the same text in the script of its own (a call alone) and
// in BATCH_SCRIPT (calls that arrived together), so a decision is the same check-and-update
// whichever carries it. `now` is the script's one reading of Redis's clock.

/** GCRA (see src/core/rate-limit.ts): the TAT; interval ms, tolerance ms, cost → {allowed, ahead ms}. */
const RATE = `local function rate(key, interval, tolerance, cost)
  interval = tonumber(interval)
  tolerance = tonumber(tolerance)
  cost = tonumber(cost)
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local ahead = tat - now
  local nextAhead = ahead + interval * cost
  if nextAhead > tolerance + 0.000001 then return {0, tostring(ahead)} end
  redis.call('SET', key, tostring(now + nextAhead), 'PX', math.ceil(nextAhead) + 1000)
  return {1, tostring(nextAhead)}
end`;

/** The TAT → how far it runs ahead of now, in ms. */
const PEEK = `local function peek(key)
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then return '0' end
  return tostring(tat - now)
end`;

/** Concurrency leases in a sorted set scored by expiry; max, lease ms, lease id → 1 taken, 0 full. */
const ACQUIRE = `local function acquire(key, max, leaseMs, leaseId)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= tonumber(max) then return 0 end
  redis.call('ZADD', key, now + tonumber(leaseMs), leaseId)
  local longest = tonumber(redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2])
  redis.call('PEXPIRE', key, math.ceil(longest - now) + 1000)
  return 1
end`;

/** Leases → unexpired leases held. */
const COUNT = `local function count(key)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  return redis.call('ZCARD', key)
end`;

/** KEYS[1] the TAT; ARGV interval ms, tolerance ms, cost → {allowed, ahead ms}. */
export const RATE_SCRIPT = script(`${NOW}
${RATE}
return rate(KEYS[1], ARGV[1], ARGV[2], ARGV[3])`);

/** KEYS[1] the TAT → how far it runs ahead of now, in ms. */
export const PEEK_RATE_SCRIPT = script(`${NOW}
${PEEK}
return peek(KEYS[1])`);

/** KEYS[1] the leases; ARGV max, lease ms, lease id → 1 taken, 0 full. */
export const ACQUIRE_SLOT_SCRIPT = script(`${NOW}
${ACQUIRE}
return acquire(KEYS[1], ARGV[1], ARGV[2], ARGV[3])`);

/** KEYS[1] → unexpired leases held. */
export const COUNT_SLOTS_SCRIPT = script(`${NOW}
${COUNT}
return count(KEYS[1])`);

/** Readiness: Redis answers scripts (KEYS[1] is not touched). */
export const PING_SCRIPT = script("return 1");

/**
 * Decisions that arrived together, in one call (docs/limits.md, "Batching in Redis"): KEYS[i]
 * is the key of entry i; ARGV holds, entry after entry, its operation and that operation's
 * arguments: `r` rate, `p` peek, `a` acquire, `c` count (the functions above) and `n` ping.
 * Entries run one after another in order, inside one atomic script and at one reading of the
 * clock, and an entry sees what the entries before it wrote (the same key twice is decided
 * twice). The reply has one element per entry; an entry whose command fails answers an error
 * of its own, and the entries before and after it keep their answers (as separate calls would).
 */
export const BATCH_SCRIPT = script(`${NOW}
${RATE}
${PEEK}
${ACQUIRE}
${COUNT}
local function ping() return 1 end
local ops = {r = {rate, 3}, p = {peek, 0}, a = {acquire, 3}, c = {count, 0}, n = {ping, 0}}
local out = {}
local at = 1
for i = 1, #KEYS do
  local op = ops[ARGV[at]]
  local ok, reply = pcall(op[1], KEYS[i], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3])
  at = at + 1 + op[2]
  if ok then
    out[i] = reply
  else
    out[i] = {err = tostring(type(reply) == 'table' and reply.err or reply)}
  end
end
return out`);

/** The script of each operation alone: a batch of one goes as the call it would be unbatched. */
const SINGLE = {
  r: RATE_SCRIPT,
  p: PEEK_RATE_SCRIPT,
  a: ACQUIRE_SLOT_SCRIPT,
  c: COUNT_SLOTS_SCRIPT,
  n: PING_SCRIPT,
} as const;

/** One entry of a batch: an operation of BATCH_SCRIPT, its key, its arguments. */
export type BatchEntry =
  | { op: "r"; key: string; args: [intervalMs: number, toleranceMs: number, cost: number] }
  | { op: "a"; key: string; args: [max: number, leaseMs: number, leaseId: string] }
  | { op: "p" | "c" | "n"; key: string; args: [] };

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
export async function runScript(
  redis: ScriptRedis,
  script: RedisScript,
  key: string,
  args: (string | number)[],
  live?: () => boolean,
): Promise<unknown> {
  return runScriptKeys(redis, script, [key], args, live);
}

/**
 * EVALSHA, then EVAL when Redis does not have the script. `live`: whether the caller still waits
 * (withDeadline); a NOSCRIPT that comes back after the caller gave up sends nothing more, so a
 * call already answered from the fallback is not run in Redis a second time.
 */
async function runScriptKeys(
  redis: ScriptRedis,
  script: RedisScript,
  keys: string[],
  args: (string | number)[],
  live?: () => boolean,
): Promise<unknown> {
  try {
    return await redis.evalsha(script.sha, keys.length, ...keys, ...args);
  } catch (error) {
    if (!String((error as Error).message).includes("NOSCRIPT") || (live && !live())) throw error;
    return redis.eval(script.lua, keys.length, ...keys, ...args);
  }
}

/**
 * Runs entries in one BATCH_SCRIPT call (one entry alone: in its script of its own): one reply
 * per entry, in order, each the entry's answer or an `Error` when its command failed. Throws
 * when the call itself fails or is not answered in time; its entries may then still run later,
 * or may not.
 */
export async function runBatch(redis: ScriptRedis, entries: readonly BatchEntry[], live?: () => boolean): Promise<unknown[]> {
  const [only] = entries;
  // Alone, the script of its own (cheaper than the batch script for one entry): its failure is the call's.
  if (entries.length === 1 && only) return [await runScript(redis, SINGLE[only.op], only.key, [...only.args], live)];
  const keys: string[] = [];
  const args: (string | number)[] = [];
  for (const entry of entries) {
    keys.push(entry.key);
    args.push(entry.op, ...entry.args);
  }
  const replies = await runScriptKeys(redis, BATCH_SCRIPT, keys, args, live);
  if (!Array.isArray(replies) || replies.length !== entries.length)
    throw new Error(`batch of ${entries.length} answered ${Array.isArray(replies) ? replies.length : typeof replies} replies`);
  return replies;
}

/**
 * What `start` returns, or a rejection once `ms` have passed with its reply still unread (`start`
 * is told, through `live`, whether anyone still waits). Why not the client's
 * own command timeout alone: a timer fires in the event loop's timers phase, before that turn of
 * the loop reads the socket, so in a busy process whose loop runs late a reply that came back in
 * time would be thrown away, and the limiter would fall back to its own counters for nothing,
 * admitting a key's limit once more (docs/limits.md, "Backends and failure"). One more turn of
 * the loop (`setImmediate` runs after the poll phase) first reads whatever has arrived.
 */
export function withDeadline<T>(start: (live: () => boolean) => Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const work = start(() => !settled);
    const timer = setTimeout(() => {
      setImmediate(() => {
        if (settled) return;
        settled = true;
        reject(new Error(`redis did not answer within ${ms} ms`));
      });
    }, ms);
    work.then(
      (value) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/**
 * A client for limiter calls: each call has a short time limit, nothing is queued while
 * disconnected (the caller's fallback answers meanwhile), and it reconnects forever with a
 * capped back-off, so recovery needs no restart.
 */
export function connectLimiterRedis(url: string, timeoutMs: number): Redis {
  const client = new Redis(url, {
    // A backstop only: callers put `withDeadline(…, timeoutMs)` on each call, which does not
    // throw away a reply a late event loop has not read yet. This one ends calls Redis never answers.
    commandTimeout: Math.max(1_000, timeoutMs * 10),
    connectTimeout: 1_000,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (attempt) => Math.min(attempt * 100, 2_000),
  });
  client.on("error", () => {});
  return client;
}
