// The import benchmark (issue 23, docs/benchmarks.md "Import"): `keyward import` of N records
// into a fresh SQLite file and a fresh PostgreSQL schema, through the real CLI (`node
// bin/keyward.js import`), timed from the command's start to its exit, with its peak RSS.
// Records carry sha256_hex digests (what a migration from a SHA-256-hex table imports), so no
// per-record key hashing is measured; a second run of the same file (everything matched,
// nothing written) and a sample of keys verified afterwards complete each row. `npm run bench`
// runs it as its `import` group; bench/import.js runs it alone.

import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CLI = join(ROOT, "bin", "keyward.js");
const FORMATS = JSON.stringify([{ name: "legacy", prefix: "lk_", digest: "sha256_hex" }]);

/** The key of record `i`: deterministic, so the sample verified afterwards is known without keeping a million of them. */
const keyOf = (seed, i) => `lk_${createHash("sha256").update(`${seed}:${i}`).digest("base64url").slice(0, 32)}`;

/** Writes the records file once per (count, input, seed) and reuses it. */
async function recordsFile(dir, options, seed) {
  const file = join(dir, `import-${options.records}.${options.input === "csv" ? "csv" : "jsonl"}`);
  if (existsSync(file)) return file;
  const out = createWriteStream(`${file}.partial`, { highWaterMark: 1 << 20 });
  const write = (text) => (out.write(text) ? null : new Promise((resolve) => out.once("drain", resolve)));
  if (options.input === "csv") await write("external_id,owner,name,environment,scopes,digest,digest_variant,format,created_at\n");
  const created = Date.UTC(2023, 0, 1);
  let chunk = "";
  for (let i = 0; i < options.records; i++) {
    const key = keyOf(seed, i);
    const digest = createHash("sha256").update(key).digest("hex");
    const owner = `user:customer-${Math.floor(i / options.ownersEvery)}`;
    const at = new Date(created + i * 1000).toISOString();
    chunk +=
      options.input === "csv"
        ? `u${i},${owner},key ${i},production,read write,${digest},sha256_hex,legacy,${at}\n`
        : `${JSON.stringify({ external_id: `u${i}`, owner, name: `key ${i}`, environment: "production", scopes: ["read", "write"], digest, digest_variant: "sha256_hex", format: "legacy", created_at: at })}\n`;
    if (chunk.length > 1 << 20) {
      await write(chunk);
      chunk = "";
    }
  }
  await write(chunk);
  await new Promise((resolve) => out.end(resolve));
  rmSync(file, { force: true });
  await import("node:fs/promises").then((fs) => fs.rename(`${file}.partial`, file));
  return file;
}

const TIME = existsSync("/usr/bin/time") ? "/usr/bin/time" : null;

/**
 * Runs the CLI: wall time, CPU time (user and system, through /usr/bin/time when it is there), its
 * report, and its peak anonymous memory (RssAnon, read while it runs: the heap and SQLite's page
 * cache, not the pages of the database file it maps).
 */
function runCli(args, env) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const [command, argv] = TIME ? [TIME, ["-f", "TIME %U %S %M", process.execPath, CLI, ...args]] : [process.execPath, [CLI, ...args]];
    const child = spawn(command, argv, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let anonKiB = 0;
    const poll = setInterval(() => {
      try {
        const pid = TIME ? readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, "utf8").trim().split(" ")[0] : child.pid;
        const match = /RssAnon:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
        if (match) anonKiB = Math.max(anonKiB, Number(match[1]));
      } catch {}
    }, 100);
    child.stdout.on("data", (c) => {
      stdout += c;
    });
    child.stderr.on("data", (c) => {
      stderr += c;
    });
    child.once("error", reject);
    child.once("exit", (code) => {
      clearInterval(poll);
      const seconds = (performance.now() - started) / 1000;
      const time = /TIME ([\d.]+) ([\d.]+) (\d+)/.exec(stderr);
      if (code !== 0 && code !== 1) reject(new Error(`keyward ${args.join(" ")} exited ${code}: ${stderr.slice(-2000)}`));
      else
        resolve({
          seconds,
          stdout,
          stderr,
          cpuSeconds: time ? Number(time[1]) + Number(time[2]) : null,
          peakRssMiB: time ? Math.round(Number(time[3]) / 1024) : null,
          peakAnonMiB: Math.round(anonKiB / 1024),
        });
    });
  });
}

async function verifySample(env, seed, records) {
  const { loadConfig } = await import("../../dist/service/config.js");
  const { openKeyward } = await import("../../dist/service/open-keyward.js");
  const keyward = await openKeyward(loadConfig({ ...process.env, ...env }));
  try {
    let valid = 0;
    const sample = 1_000;
    for (let n = 0; n < sample; n++) {
      const i = Math.floor((n * records) / sample);
      if ((await keyward.verify(keyOf(seed, i), { skipLimits: true })).code === "VALID") valid++;
    }
    return `${valid}/${sample}`;
  } finally {
    await keyward.close();
  }
}

async function benchStore(store, file, options, seed, dir) {
  const env = { KEYWARD_LEGACY_FORMATS: FORMATS, KEYWARD_HASH_SECRET: "" };
  let dropSchema = async () => {};
  if (store === "sqlite") {
    env.KEYWARD_DATABASE_URL = `sqlite:${join(dir, `bench-import-${randomBytes(4).toString("hex")}.db`)}`;
  } else {
    const url = options.databaseUrl ?? process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
    const schema = `kw_bench_import_${randomBytes(4).toString("hex")}`;
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`CREATE SCHEMA ${schema}`);
    await client.end();
    Object.assign(env, { KEYWARD_DATABASE_URL: url, KEYWARD_DATABASE_SCHEMA: schema });
    dropSchema = async () => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      await c.query(`DROP SCHEMA ${schema} CASCADE`);
      await c.end();
    };
  }
  try {
    await runCli(["migrate"], env);
    const args = ["import", file, "--json", "--no-progress", "--batch-size", String(options.batchSize)];
    const first = await runCli(args, env);
    const report = JSON.parse(first.stdout);
    if (report.created !== options.records)
      throw new Error(`${store}: created ${report.created} of ${options.records}: ${first.stdout.slice(0, 2000)}`);
    const second = await runCli(args, env);
    const again = JSON.parse(second.stdout);
    if (again.created !== 0 || again.unchanged !== options.records)
      throw new Error(`${store}: the second run was not a no-op: ${second.stdout.slice(0, 500)}`);
    const verified = await verifySample(env, seed, options.records);
    const sizeMiB = store === "sqlite" ? Math.round(statSync(env.KEYWARD_DATABASE_URL.slice("sqlite:".length)).size / 1024 / 1024) : null;
    return {
      store,
      records: options.records,
      seconds: Number(first.seconds.toFixed(1)),
      recordsPerSecond: Math.round(options.records / first.seconds),
      cpuSeconds: first.cpuSeconds,
      peakAnonMiB: first.peakAnonMiB,
      peakRssMiB: first.peakRssMiB,
      rerunSeconds: Number(second.seconds.toFixed(1)),
      rerunCpuSeconds: second.cpuSeconds,
      rerunPeakAnonMiB: second.peakAnonMiB,
      verifiedSample: verified,
      ...(sizeMiB !== null ? { databaseMiB: sizeMiB } : {}),
    };
  } finally {
    await dropSchema();
  }
}

/**
 * The measurement: the records file (written once per count and input, then reused), then each
 * store in turn. `options`: records, stores, input (jsonl or csv), ownersEvery, batchSize,
 * databaseUrl (PostgreSQL), log.
 */
export async function measureImport(options) {
  const log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
  const dir = join(tmpdir(), "keyward-bench-import");
  mkdirSync(dir, { recursive: true });
  const seed = "keyward-bench-import";
  const generateStarted = performance.now();
  const file = await recordsFile(dir, options, seed);
  log(
    `records file ${file}: ${Math.round(statSync(file).size / 1024 / 1024)} MiB (${((performance.now() - generateStarted) / 1000).toFixed(1)} s)`,
  );
  const work = mkdtempSync(join(dir, "run-"));
  const rows = [];
  try {
    for (const store of options.stores) {
      const row = await benchStore(store, file, options, seed, work);
      log(JSON.stringify(row));
      rows.push(row);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return {
    at: new Date().toISOString(),
    // Other processes on the machine while it ran (1-minute load average at the end): wall times grow with it, CPU times hardly.
    loadAverage: Number(loadavg()[0].toFixed(1)),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    input: options.input,
    batchSize: options.batchSize,
    rows,
  };
}

/** The bench suite's `import` group: a million records (2,000 in the smoke) into SQLite, and PostgreSQL when there is one. */
export async function runImport(ctx) {
  const { opts } = ctx;
  return measureImport({
    records: opts.importRecords,
    stores: ctx.databaseUrl ? ["sqlite", "postgres"] : ["sqlite"],
    input: "jsonl",
    ownersEvery: 10,
    batchSize: 5_000,
    databaseUrl: ctx.databaseUrl,
    log: (line) => ctx.log(`  ${line}`),
  });
}
