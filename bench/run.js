// The Keyward benchmark suite (issue #8): `npm run bench`, `npm run bench:smoke`,
// `npm run bench -- --only http,peer --duration 5`. See docs/benchmarks.md.

import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import { writeSkips } from "../scripts/skips.mjs";
import { Fixtures } from "./lib/fixtures.js";
import { measureInterleaved } from "./lib/measure.js";
import { renderReport } from "./lib/report.js";
import { ensurePeers, ensureWrk, has, peersReady } from "./lib/setup.js";
import { runCluster } from "./scenarios/cluster.js";
import { runCopyStore } from "./scenarios/copy-store.js";
import { runHttp } from "./scenarios/http.js";
import { runHttpLimits } from "./scenarios/http-limits.js";
import { runImport } from "./scenarios/import.js";
import { runInproc } from "./scenarios/inproc.js";
import { runLimits } from "./scenarios/limits-bench.js";
import { runPeer } from "./scenarios/peer.js";
import { runScale } from "./scenarios/scale.js";
import { evaluateTargets } from "./targets.js";

const GROUPS = ["inproc", "http", "peer", "scale", "limits", "http-limits", "cluster", "copy-store", "import"];
const USAGE = `usage: node bench/run.js [--smoke] [--only ${GROUPS.join(",")}] [--duration S] [--runs N]
  [--keys N] [--connections N] [--cluster-seconds S] [--revocations N] [--copy-store-keys N] [--import-records N] [--targets name,name] [--out file] [--no-setup] [--setup-only]

--smoke installs nothing: rows whose tools are missing (wrk, the peers of bench/peers) are
skipped with a line saying so. \`npm run bench:setup\` (--setup-only) installs them.`;

function parseArgs(argv) {
  const flags = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith("--")) throw new Error(`unexpected argument ${arg}\n${USAGE}`);
    const [name, inline] = arg.slice(2).split("=", 2);
    if (["smoke", "no-setup", "setup-only", "help"].includes(name)) flags[name] = true;
    else flags[name] = inline ?? argv[++i];
  }
  if (flags.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const smoke = Boolean(flags.smoke);
  const number = (name, fallback) => {
    if (flags[name] === undefined) return fallback;
    const value = Number(flags[name]);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
    return value;
  };
  const only = flags.only ? String(flags.only).split(",") : GROUPS;
  for (const group of only) if (!GROUPS.includes(group)) throw new Error(`--only: unknown group ${group} (${GROUPS.join(", ")})`);
  const duration = number("duration", smoke ? 1 : 5);
  return {
    smoke,
    only,
    setup: !flags["no-setup"],
    setupOnly: Boolean(flags["setup-only"]),
    duration,
    warmup: smoke ? 1 : Math.max(1, Math.min(2, duration)),
    inprocSeconds: number("inproc-seconds", smoke ? 0.3 : Math.min(3, duration)),
    runs: number("runs", smoke ? 1 : 3),
    connections: number("connections", 64),
    keys: number("keys", smoke ? 1_000 : 100_000),
    hitKeys: smoke ? 1_000 : 100_000,
    peerKeys: number("peer-keys", smoke ? 1_000 : 100_000),
    scaleCounts: smoke ? [1_000, 10_000] : [1_000, 100_000, 1_000_000],
    memoryKeys: smoke ? 1_000 : 100_000,
    floodKeys: smoke ? 20_000 : 1_000_000,
    // Three keyward serve instances on PostgreSQL + Redis (bench/scenarios/cluster.js): the window of
    // steady load whose store statements are counted, and the number of revocations timed.
    clusterSeconds: number("cluster-seconds", smoke ? 2 : 30),
    revocations: number("revocations", smoke ? 3 : 20),
    // keyward copy-store, SQLite → PostgreSQL (bench/scenarios/copy-store.js).
    copyStoreKeys: number("copy-store-keys", smoke ? 2_000 : 100_000),
    // keyward import of legacy SHA-256-hex records, into SQLite and PostgreSQL (bench/scenarios/import.js).
    importRecords: number("import-records", smoke ? 2_000 : 1_000_000),
    targets: flags.targets ? String(flags.targets).split(",") : null,
    out: flags.out ?? (smoke ? ".tmp/bench-smoke.json" : "bench/results/latest.json"),
  };
}

const log = (line) => process.stderr.write(`${line}\n`);

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const root = fileURLToPath(new URL("..", import.meta.url));
  process.chdir(root);
  // PostgreSQL: wherever DATABASE_URL points; under CI it must be there (the default local one).
  const databaseUrl = process.env.DATABASE_URL ?? (process.env.CI ? "postgres://postgres@127.0.0.1:5432/test" : null);
  if (!databaseUrl) {
    log("DATABASE_URL is not set: the PostgreSQL rows are left out");
    // copy-store's target is PostgreSQL: without one the group has no row at all.
    opts.only = opts.only.filter((group) => group !== "copy-store" && group !== "cluster");
  }
  if (opts.setupOnly) {
    ensureWrk(log);
    ensurePeers(log);
    return;
  }
  if (opts.setup && !opts.smoke) {
    if (["http", "peer", "http-limits", "cluster"].some((g) => opts.only.includes(g))) ensureWrk(log);
    if (opts.only.includes("peer")) ensurePeers(log);
  }
  // The smoke runs inside `npm test`: it installs nothing, and says what it leaves out, here and in
  // the skip summary at the end of the run (scripts/skips.mjs).
  if (opts.smoke) {
    const skips = [];
    if (!databaseUrl) {
      skips.push({
        suite: "bench smoke > the PostgreSQL rows (inproc cache miss, scale, cluster, copy-store)",
        missing: "DATABASE_URL: the benchmark uses PostgreSQL only where it points (under CI, the default local one)",
        obtain: "DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm test, with that PostgreSQL running",
      });
    }
    if (!has("wrk")) {
      log("smoke: wrk is not installed: the http and peer rows are skipped (npm run bench:setup installs it)");
      opts.only = opts.only.filter((group) => !["http", "peer", "http-limits", "cluster"].includes(group));
      skips.push({
        suite: "bench smoke > the http, peer, http-limits and cluster rows",
        missing: "wrk on PATH",
        obtain: "npm run bench:setup (apt-get install wrk as root), which also installs the peers of bench/peers",
      });
    } else if (!peersReady()) {
      log("smoke: the peers of bench/peers are not installed: the peer row is skipped (npm run bench:setup installs them)");
      opts.only = opts.only.filter((group) => group !== "peer");
      skips.push({
        suite: "bench smoke > the peer row",
        missing: "the peers' packages in bench/peers (npm, not installed by the root npm install)",
        obtain: "npm run bench:setup",
      });
    }
    writeSkips("bench-smoke", skips);
  }
  const started = new Date();
  // BENCH_TMP: another scratch folder, for a run beside another one in the same tree (each empties its own).
  const fixtures = new Fixtures(process.env.BENCH_TMP ?? ".tmp/bench", { databaseUrl, log });
  const ctx = {
    opts,
    fixtures,
    databaseUrl,
    log,
    interleave: (items, measure) => measureInterleaved(items, opts.runs, measure, log),
  };
  const results = {};
  const failures = [];
  try {
    for (const [group, run] of [
      ["inproc", runInproc],
      ["http", runHttp],
      ["peer", runPeer],
      ["scale", runScale],
      ["limits", runLimits],
      ["http-limits", runHttpLimits],
      ["cluster", runCluster],
      ["copy-store", runCopyStore],
      ["import", runImport],
    ]) {
      if (!opts.only.includes(group)) continue;
      log(`== ${group}`);
      const t = performance.now();
      try {
        results[group] = await run(ctx);
      } catch (error) {
        failures.push({ group, error: error.stack ?? String(error) });
        log(`!! ${group} failed: ${error.stack ?? error}`);
      }
      log(`== ${group} done in ${((performance.now() - t) / 1000).toFixed(0)} s`);
    }
  } finally {
    await fixtures.cleanup();
  }
  // A row whose answers were not the expected ones measured something else: that is a failure.
  for (const row of [...(results.http ?? []), ...(results.peer ?? []), ...(results["http-limits"]?.rows ?? [])]) {
    if (row.wrongAnswers > 0 || row.socketErrors > 0) {
      failures.push({
        group: "answers",
        error: `${row.name} ${row.mode ?? ""}: ${row.wrongAnswers} unexpected statuses, ${row.socketErrors ?? 0} socket errors`,
      });
    }
  }
  // The cluster's load must get 200s only, and every revoked key a 401 from every instance.
  const cluster = results.cluster;
  if (cluster && (cluster.load.wrongAnswers > 0 || cluster.load.socketErrors > 0 || !Number.isFinite(cluster.revocation.worstMs))) {
    failures.push({
      group: "answers",
      error: `cluster: ${cluster.load.wrongAnswers} unexpected statuses, ${cluster.load.socketErrors} socket errors, worst revocation lag ${cluster.revocation.worstMs} ms`,
    });
  }
  const report = {
    date: started.toISOString(),
    seconds: Math.round((Date.now() - started.getTime()) / 1000),
    machine: {
      cpu: cpus()[0]?.model ?? "unknown",
      cores: cpus().length,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      platform: `${process.platform} ${process.arch}`,
    },
    options: opts,
    results,
    targets: evaluateTargets(results),
    failures,
  };
  mkdirSync(opts.out.replace(/\/[^/]*$/, ""), { recursive: true });
  writeFileSync(opts.out, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(renderReport(report));
  log(`results written to ${opts.out}`);
  const empty = opts.only.filter((g) => results[g] === undefined);
  if (failures.length > 0 || empty.length > 0) {
    log(`bench: ${failures.length} group(s) failed`);
    process.exitCode = 1;
  }
}

await main();
