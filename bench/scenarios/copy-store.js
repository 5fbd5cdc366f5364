// The copy-store group of `npm run bench` (and bench/copy-store.js, which runs it alone):
// `keyward copy-store` from SQLite to PostgreSQL at scale (issue 23), the time an operator's
// service is down while its store moves (docs/deploy.md, "Outgrowing one machine"). The source
// holds N keys (the engine's own records and rows, as createKey writes them), one audit event per
// key (a valid hash chain), and N usage counts; the copy runs as the real command in a child
// process (batches, progress rows, then verification: counts, the audit chain re-verified on the
// target, 200 keys looked up by digest on both sides). `keyward export` of the same store is timed
// too. See docs/benchmarks.md, "copy-store". PostgreSQL: a scratch schema, dropped at the end.
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { generateId } from "../../dist/core/random.js";
import { AUDIT_INSERT_COLUMNS, chainedAuditRowValues } from "../../dist/stores/rows.js";
import { applySqliteMigrations, USAGE_SQLITE_MIGRATIONS } from "../../dist/stores/sqlite/migrations.js";
import { SqliteKeyStore } from "../../dist/stores/sqlite/sqlite-key-store.js";
import { buildKeys, insertSqlite } from "../lib/seed.js";

const cli = join(import.meta.dirname, "..", "..", "bin", "keyward.js");

/**
 * Seeds a SQLite store of `keys` keys, exports it, copies it into a scratch PostgreSQL schema
 * with `keyward copy-store`, and answers the timings. `profile`: a directory for V8 CPU profiles
 * of the commands, or null.
 */
export async function measureCopyStore({ keys, batchSize, databaseUrl, profile = null, log }) {
  const dir = mkdtempSync(join(tmpdir(), "keyward-bench-copy-"));
  const file = join(dir, "keyward.db");
  const schema = `kw_bench_copy_${randomBytes(4).toString("hex")}`;
  const flags = { keys, batchSize, profile };

  async function seed() {
    const started = performance.now();
    // Opening with the real store applies the core migrations; the command applies the others.
    const store = new SqliteKeyStore({ filename: file });
    await store.migrate();
    const db = store.db;
    const keys = buildKeys(flags.keys).map((k) => k.record);
    insertSqlite(db, keys);
    db.pragma("synchronous = OFF");
    const insertAudit = db.prepare(
      `INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS}) VALUES (${AUDIT_INSERT_COLUMNS.split(",").map(() => "?")})`,
    );
    applySqliteMigrations(db, USAGE_SQLITE_MIGRATIONS);
    const insertUsage = db.prepare("INSERT INTO usage_counts (minute, key_id, owner, outcome, count) VALUES (?, ?, ?, ?, ?)");
    db.transaction(() => {
      let prev = "0".repeat(64);
      for (const key of keys) {
        const values = chainedAuditRowValues(
          {
            id: generateId("evt"),
            at: key.createdAt,
            actor: { type: "cli", id: "bench" },
            action: "key.create",
            targetType: "key",
            targetId: key.id,
            ip: null,
            userAgent: null,
            requestId: null,
            changes: null,
            details: { name: key.name },
          },
          prev,
        );
        insertAudit.run(...values);
        prev = values[values.length - 1];
        insertUsage.run(Math.floor(key.createdAt / 60_000) * 60_000, key.id, "application:bench", "VALID", 3);
      }
    })();
    db.pragma("synchronous = FULL");
    await store.close();
    return (performance.now() - started) / 1000;
  }

  function run(args, env = {}) {
    const started = performance.now();
    const profile = flags.profile ? ["--cpu-prof", `--cpu-prof-dir=${flags.profile}`] : [];
    const result = spawnSync(process.execPath, [...profile, cli, ...args], {
      env: { ...process.env, KEYWARD_HASH_SECRET: "", KEYWARD_DATABASE_SCHEMA: schema, ...env },
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
    });
    const seconds = (performance.now() - started) / 1000;
    if (result.status !== 0) throw new Error(`keyward ${args[0]} exited ${result.status}: ${result.stderr}`);
    return { seconds, stdout: result.stdout };
  }

  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const seedSeconds = await seed();
    const sourceBytes = statSync(file).size;
    log(`seeded ${flags.keys} keys, ${flags.keys} audit events, ${flags.keys} usage counts in ${seedSeconds.toFixed(1)} s`);

    const exported = run(["export", "--out", join(dir, "export.jsonl")], { KEYWARD_DATABASE_URL: `sqlite:${file}` });
    const exportBytes = statSync(join(dir, "export.jsonl")).size;
    log(`export: ${exported.seconds.toFixed(1)} s, ${(exportBytes / 1e6).toFixed(0)} MB`);

    const copied = run(["copy-store", "--from", `sqlite:${file}`, "--to", databaseUrl, "--batch-size", String(flags.batchSize), "--json"]);
    const report = JSON.parse(copied.stdout);
    if (!report.ok) throw new Error(`copy-store did not verify: ${copied.stdout}`);
    const copySeconds = report.elapsedMs / 1000;
    log(
      `copy-store: ${copied.seconds.toFixed(1)} s end to end (copy and verify ${copySeconds.toFixed(1)} s), ${Math.round(flags.keys / copied.seconds)} keys/s`,
    );
    for (const t of report.tables) log(`  ${t.table.padEnd(24)} ${String(t.target).padStart(9)} rows  ${t.seconds.toFixed(1)} s`);
    log(`  verification ${report.verifySeconds.toFixed(1)} s`);
    log(`  audit chain on the target: ${report.auditChain.target.events} events, ok=${report.auditChain.target.ok}`);

    const result = {
      at: new Date().toISOString(),
      machine: { cpus: cpus().length, node: process.version },
      keys: flags.keys,
      batchSize: flags.batchSize,
      seedSeconds,
      sourceBytes,
      exportSeconds: exported.seconds,
      exportBytes,
      copyStoreSeconds: copied.seconds,
      copyAndVerifySeconds: copySeconds,
      verifySeconds: report.verifySeconds,
      tables: report.tables,
      auditChain: report.auditChain.target,
      sample: report.sample,
      postgres: postgresVersion(),
    };
    return result;
  } finally {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
    await client.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

function postgresVersion() {
  try {
    return execFileSync("psql", ["--version"], { encoding: "utf8" }).trim();
  } catch {
    return "unknown (no psql on PATH)";
  }
}

/** The group's row: `opts.copyStoreKeys` keys (2,000 in the smoke, 100,000 in the full run). */
export async function runCopyStore(ctx) {
  const { opts } = ctx;
  const result = await measureCopyStore({
    keys: opts.copyStoreKeys,
    batchSize: 1_000,
    databaseUrl: ctx.databaseUrl,
    log: (line) => ctx.log(`  ${line}`),
  });
  return { ...result, keysPerSecond: result.keys / result.copyStoreSeconds };
}
