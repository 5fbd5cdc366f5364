import { fileURLToPath } from "node:url";
import { runProcess } from "./proc.js";

const SCRIPT = fileURLToPath(new URL("./wrk.lua", import.meta.url));

/**
 * One wrk run against `url`: one thread on `cores`, `connections` connections, `seconds` long.
 * Returns requests/s, p50/p99 in ms and the count of 4xx/5xx answers (wrk's "status errors"), and
 * with `expectStatus` (a status or a comma-separated list) the count of answers with any other.
 */
export async function runWrk({
  url,
  seconds,
  connections = 64,
  keysFile,
  mode = "header",
  adminFile,
  cores,
  order = "random",
  offset = 0,
  expectStatus,
}) {
  const args = ["-t1", `-c${connections}`, `-d${seconds}s`, "--timeout", "5s", "-s", SCRIPT, url, "--", keysFile, mode];
  args.push(adminFile ?? "-", order, String(offset));
  if (expectStatus !== undefined) args.push(String(expectStatus));
  const stdout = await runProcess({ command: "wrk", args, cores, timeoutMs: (seconds + 30) * 1000 });
  const line = stdout.split("\n").find((l) => l.startsWith("WRKJSON "));
  if (!line) throw new Error(`wrk printed no summary: ${stdout.slice(-2000)}`);
  const raw = JSON.parse(line.slice("WRKJSON ".length));
  const seconds_ = raw.duration_us / 1e6;
  return {
    rps: raw.requests / seconds_,
    requests: raw.requests,
    p50Ms: raw.p50_us / 1000,
    p90Ms: raw.p90_us / 1000,
    p99Ms: raw.p99_us / 1000,
    maxMs: raw.max_us / 1000,
    statusErrors: raw.status_errors,
    /** Answers with a status not in `expectStatus` (0 when none was given: answers are not read). */
    unexpected: raw.unexpected,
    socketErrors: raw.connect_errors + raw.read_errors + raw.write_errors + raw.timeouts,
  };
}

/**
 * Warms a server up by walking `keyCount` keys in order, in steps of `stepSeconds`, until every
 * key was sent once (a running server has its active keys cached) or `maxSeconds` passed.
 */
export async function warmUp(options, keyCount, { stepSeconds = 2, maxSeconds = 45 } = {}) {
  let sent = 0;
  let spent = 0;
  do {
    const result = await runWrk({ ...options, seconds: stepSeconds, order: "seq", offset: sent });
    sent += result.requests;
    spent += stepSeconds;
  } while (sent < keyCount && spent < maxSeconds);
  return { sent, seconds: spent };
}
