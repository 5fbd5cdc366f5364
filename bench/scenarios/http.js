// Item 2: HTTP on loopback. wrk (one thread, 64 connections) on core 1; the server alone on core 0.
// Each target is started for each run, warmed by walking every key, measured per key mode, stopped:
//   rotating  valid keys picked at random from the whole seeded set (100k by default)
//   hot       one valid key on every request
//   invalid   well-formed keys that no store holds (NOT_FOUND; a flood of distinct random keys),
//             each answer checked to be exactly the denial (401; 200 {valid:false} from verify)
// Keyward runs with its failed-attempt throttle off (KEYWARD_FAILED_ATTEMPTS_LIMIT=0, and
// `failedAttempts: false` in the middleware targets), so invalid keys reach the store lookup as
// a flood from many addresses would; valid keys never reach the throttle once cached. The
// throttled target measures the default against wrk's one address: after 100 misses, 429
// before any lookup.
import { fileURLToPath } from "node:url";
import { Fixtures } from "../lib/fixtures.js";
import { startServer } from "../lib/proc.js";
import { summarize } from "../lib/stats.js";
import { runWrk, warmUp } from "../lib/wrk.js";

const TARGET_SERVER = fileURLToPath(new URL("../servers/http-target.js", import.meta.url));
const KEYWARD_BIN = fileURLToPath(new URL("../../bin/keyward.js", import.meta.url));
const ALL = ["rotating", "hot", "invalid"];

/** name, how to start it, the path, the baseline it is compared with, and the key modes it is measured in. */
export const HTTP_TARGETS = [
  { name: "bare-node", path: "/", modes: ["rotating"] },
  { name: "keyward-node", path: "/", modes: ALL, baseline: "bare-node" },
  { name: "bare-fastify", path: "/", modes: ["rotating"] },
  { name: "floor-fastify", path: "/", modes: ["rotating"], baseline: "bare-fastify", note: "hand-written hash + Map preHandler" },
  // Also reported as a ratio of the hand-written floor hook (issue 24): what the middleware costs above it.
  { name: "keyward-fastify", path: "/", modes: ALL, baseline: "bare-fastify", floor: "floor-fastify" },
  { name: "bare-express", path: "/", modes: ["rotating"] },
  { name: "keyward-express", path: "/", modes: ALL, baseline: "bare-express" },
  { name: "bare-hono", path: "/", modes: ["rotating"] },
  { name: "keyward-hono", path: "/", modes: ALL, baseline: "bare-hono" },
  { name: "serve /v1/authz", serve: 1, path: "/v1/authz", modes: ALL, baseline: "bare-node" },
  {
    name: "serve /v1/authz, throttled",
    serve: 1,
    path: "/v1/authz",
    modes: ["invalid"],
    baseline: "bare-node",
    throttle: true,
    expectInvalid: "401,429",
    note: "default failed-attempt throttle: a flood from one address is refused with 429 before any lookup",
  },
  {
    name: "serve POST /v1/keys/verify",
    serve: 1,
    path: "/v1/keys/verify",
    wrkMode: "verify",
    modes: ["rotating", "invalid"],
    baseline: "bare-node",
  },
  // Two workers on a two-core machine share the cores with wrk: this shows the cluster runs and
  // what it costs here, not how it scales (that needs more cores than the load generator's).
  { name: "serve /v1/authz --workers 2", serve: 2, path: "/v1/authz", modes: ["rotating"], baseline: "bare-node", cores: "0,1" },
  {
    name: "serve POST /v1/keys/verify --workers 2",
    serve: 2,
    path: "/v1/keys/verify",
    wrkMode: "verify",
    modes: ["rotating"],
    baseline: "bare-node",
    cores: "0,1",
  },
];

/** The answers an unknown key may get: POST /v1/keys/verify says 200 {valid:false}, the others 401 (or the target's own list). */
function expectedInvalidStatus(target) {
  return target.expectInvalid ?? (target.wrkMode === "verify" ? 200 : 401);
}

function wrkOptions(target, server, fix, opts) {
  return {
    url: `http://127.0.0.1:${server.port}${target.path}`,
    connections: opts.connections,
    mode: target.wrkMode ?? "header",
    adminFile: fix.adminFile,
    cores: "1",
  };
}

/**
 * Starts a target on its own copy of the seeded file, so every server starts from the same
 * state (no usage journal or counts left by the one before) and none writes into another's.
 */
function startTarget(target, fix) {
  return startTargetOn(target, { ...fix, db: Fixtures.freshCopy(fix.db, "run") });
}

function startTargetOn(target, fix) {
  if (target.serve) {
    const args = [KEYWARD_BIN, "serve", "--port", "0", "--host", "127.0.0.1"];
    if (target.serve > 1) args.push("--workers", String(target.serve));
    return startServer({
      command: process.execPath,
      args,
      cores: target.cores ?? "0",
      env: {
        KEYWARD_DATABASE_URL: `sqlite:${fix.db}`,
        KEYWARD_LOG_LEVEL: "warn",
        KEYWARD_REDIS_URL: "",
        ...(target.throttle ? {} : { KEYWARD_FAILED_ATTEMPTS_LIMIT: "0" }),
      },
    });
  }
  return startServer({ command: process.execPath, args: [TARGET_SERVER, target.name], cores: "0", env: { BENCH_DB: fix.db } });
}

export async function runHttp(ctx) {
  const { opts, fixtures } = ctx;
  const fix = await fixtures.sqlite(opts.keys, { admin: true });
  const unknownFile = await fixtures.unknownKeys(Math.min(opts.keys, 100_000));
  const files = { rotating: fix.keysFile, hot: fix.hotFile, invalid: unknownFile };
  const targets = HTTP_TARGETS.filter((t) => !opts.targets || opts.targets.some((f) => t.name.includes(f)));
  const samples = new Map();
  // Runs are interleaved (run 1 of every target, then run 2...), so slow drift in the machine's
  // load spreads over all of them. Only the server being measured is alive: each is started and
  // warmed for its run and stopped after it. An idle Keyward server is not idle (its usage flush
  // and once-a-minute fold, its WAL checkpoints), and with a dozen of them on the server core the
  // runs of 2026-12-01 and before measured each target with the others' folds landing in it
  // (p99 of 70-140 ms even behind bare node:http).
  for (let run = 1; run <= opts.runs; run++) {
    for (const target of targets) {
      const server = await startTarget(target, fix);
      try {
        const base = wrkOptions(target, server, fix, opts);
        // Walk every key once (a running server has its active keys cached). With several workers
        // the connections are spread over them, so each worker has seen only its share of the keys.
        const keysToWarm = target.name.startsWith("bare-") ? 0 : fix.count;
        const warm = await warmUp({ ...base, keysFile: files.rotating }, keysToWarm, { stepSeconds: opts.warmup });
        ctx.log(`  ${target.name}: warmed with ${warm.sent} requests in ${warm.seconds} s`);
        for (const mode of target.modes) {
          const expectStatus = mode === "invalid" ? expectedInvalidStatus(target) : undefined;
          const result = await runWrk({ ...base, seconds: opts.duration, keysFile: files[mode], expectStatus });
          const id = `${target.name} | ${mode}`;
          if (!samples.has(id)) samples.set(id, { target, mode, runs: [] });
          samples.get(id).runs.push(result);
          ctx.log(
            `  ${id} run ${run}/${opts.runs}: ${Math.round(result.rps)} req/s p50 ${result.p50Ms.toFixed(2)} ms p99 ${result.p99Ms.toFixed(2)} ms` +
              (result.statusErrors ? ` (${result.statusErrors} 4xx/5xx)` : ""),
          );
        }
      } finally {
        await server.stop();
      }
    }
  }
  const rows = [...samples.values()].map(({ target, mode, runs }) => {
    // A valid-key run with 4xx/5xx answers, or an invalid-key run with any answer but the
    // expected denial, measured something else: the row says so.
    const wrongAnswers = runs.reduce((n, r) => n + (mode === "invalid" ? r.unexpected : r.statusErrors), 0);
    return {
      name: target.name,
      mode,
      baseline: target.baseline ?? null,
      note: target.note ?? null,
      rps: summarize(runs.map((r) => r.rps)),
      p50Ms: summarize(runs.map((r) => r.p50Ms)),
      p99Ms: summarize(runs.map((r) => r.p99Ms)),
      socketErrors: runs.reduce((n, r) => n + r.socketErrors, 0),
      wrongAnswers,
    };
  });
  for (const row of rows) {
    const base = row.baseline && rows.find((r) => r.name === row.baseline && r.mode === "rotating");
    row.ratioToBaseline = base ? row.rps.median / base.rps.median : null;
    const floorName = HTTP_TARGETS.find((t) => t.name === row.name)?.floor;
    const floor = floorName && rows.find((r) => r.name === floorName && r.mode === "rotating");
    if (floor && row.mode === "rotating") {
      row.floor = floorName;
      row.ratioToFloor = row.rps.median / floor.rps.median;
    }
  }
  return rows;
}
