// Item 3: better-auth with @better-auth/api-key on SQLite (bench/peers), defaults and best
// configuration, under the same load as Keyward on the same node:http shape (keyward/node guard).
import { rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { startServer } from "../lib/proc.js";
import { summarize } from "../lib/stats.js";
import { runWrk, warmUp } from "../lib/wrk.js";

const PEER_SERVER = fileURLToPath(new URL("../peers/better-auth-server.mjs", import.meta.url));
const KEYWARD_NODE = fileURLToPath(new URL("../servers/http-target.js", import.meta.url));

export async function runPeer(ctx) {
  const { opts, fixtures } = ctx;
  const fix = await fixtures.sqlite(opts.keys, { admin: true });
  const items = [
    { id: "better-auth api-key, defaults", config: "default" },
    { id: "better-auth api-key, best (WAL, rate limit off)", config: "best" },
    { id: "keyward/node guard (same node:http shape)", keyward: true },
  ];
  const samples = new Map(items.map((i) => [i.id, []]));
  const servers = new Map();
  try {
    for (const item of items) {
      let server;
      let keysFile = fix.keysFile;
      if (item.keyward) {
        server = await startServer({
          command: process.execPath,
          args: [KEYWARD_NODE, "keyward-node"],
          cores: "0",
          env: { BENCH_DB: fix.db },
        });
      } else {
        const db = fixtures.path(`peer-${item.config}.db`);
        for (const suffix of ["", "-wal", "-shm", "-journal"]) rmSync(db + suffix, { force: true });
        keysFile = fixtures.path(`peer-${item.config}-keys.txt`);
        server = await startServer({
          command: process.execPath,
          args: [PEER_SERVER, item.config],
          cores: "0",
          timeoutMs: 300_000,
          env: { BENCH_PEER_KEYS: String(opts.peerKeys), BENCH_PEER_KEYS_FILE: keysFile, BENCH_PEER_DB: db },
        });
      }
      const base = { url: `http://127.0.0.1:${server.port}/`, connections: opts.connections, keysFile, cores: "1" };
      servers.set(item.id, { server, base });
      // Keyward is warmed by walking every key once; the peer has no cache to warm, only its JIT.
      if (item.keyward) await warmUp(base, fix.count, { stepSeconds: opts.warmup });
      else await runWrk({ ...base, seconds: opts.warmup });
      // Only the server measured runs: Keyward's usage flush and fold would otherwise land in the
      // peers' runs. Resumed, Keyward's overdue timers fire in its own run, which counts against it.
      server.pause();
    }
    for (let run = 1; run <= opts.runs; run++) {
      for (const item of items) {
        const { server, base } = servers.get(item.id);
        server.resume();
        const result = await runWrk({ ...base, seconds: opts.duration });
        server.pause();
        samples.get(item.id).push(result);
        ctx.log(
          `  ${item.id} run ${run}/${opts.runs}: ${Math.round(result.rps)} req/s p99 ${result.p99Ms.toFixed(2)} ms` +
            (result.statusErrors ? ` (${result.statusErrors} 4xx/5xx)` : ""),
        );
      }
    }
  } finally {
    for (const { server } of servers.values()) await server.stop();
  }
  const rows = items.map((item) => {
    const runs = samples.get(item.id);
    return {
      name: item.id,
      rps: summarize(runs.map((r) => r.rps)),
      p50Ms: summarize(runs.map((r) => r.p50Ms)),
      p99Ms: summarize(runs.map((r) => r.p99Ms)),
      wrongAnswers: runs.reduce((n, r) => n + r.statusErrors, 0),
    };
  });
  const keyward = rows[2].rps.median;
  for (const row of rows) row.keywardTimes = keyward / row.rps.median;
  return rows;
}
