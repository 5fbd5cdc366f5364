import { createWriteStream } from "node:fs";
import { finished } from "node:stream/promises";
import { type Command, InvalidArgumentError } from "commander";
import { KeywardError } from "../core/errors.js";
import { loadConfig } from "../service/config.js";
import { checkHashSecrets } from "../service/hash-secret-guard.js";

/**
 * `keyward export` and `keyward copy-store` (docs/migrating.md, "Export and moving stores").
 * Their modules are loaded only when one of them runs.
 */

const positive = (value: string): number => {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError("not a positive integer");
  return n;
};

/** A progress line on a terminal (stderr), rewritten in place; nothing when stderr is not a terminal. */
function terminalProgress(): { show: (text: string) => void; done: () => void } {
  if (!process.stderr.isTTY) return { show: () => {}, done: () => {} };
  let last = 0;
  let shown = false;
  return {
    show: (text) => {
      const now = Date.now();
      if (now - last < 200) return;
      last = now;
      shown = true;
      process.stderr.write(`\r\x1b[2K${text}`);
    },
    done: () => {
      if (shown) process.stderr.write("\r\x1b[2K");
    },
  };
}

export function addMigrationCommands(program: Command, out: (line: string) => void, version: string): void {
  program
    .command("export")
    .description("write the store as JSON lines: keys (digests, never plaintexts), owners, users, key requests, webhooks, audit, usage")
    .option("--out <file>", "write to this file (default: standard output)")
    .option("--include-credentials", "include users' password hashes")
    .option("--include-secrets", "include webhook endpoints' signing secrets")
    .action(async (options: { out?: string; includeCredentials?: boolean; includeSecrets?: boolean }) => {
      const { openRawStore } = await import("../migration/raw-store.js");
      const { exportStore } = await import("../migration/export.js");
      const config = loadConfig();
      const store = await openRawStore(config.databaseUrl, config.databaseSchema);
      const progress = terminalProgress();
      try {
        await checkHashSecrets(store.keys, config.hashSecrets, Date.now());
        const stream = options.out ? createWriteStream(options.out, { mode: 0o600 }) : process.stdout;
        const counts = await exportStore(store, stream, {
          includeCredentials: Boolean(options.includeCredentials),
          includeSecrets: Boolean(options.includeSecrets),
          keywardVersion: version,
          onProgress: (type, rows) => progress.show(`export: ${type} ${rows}`),
        });
        progress.done();
        if (options.out) {
          stream.end();
          await finished(stream);
          out(
            `exported to ${options.out}: ${Object.entries(counts)
              .map(([type, n]) => `${n} ${type}`)
              .join(", ")}`,
          );
        }
      } finally {
        progress.done();
        await store.close();
      }
    });

  program
    .command("copy-store")
    .description("copy the whole store into another (sqlite:… or postgres://…, either way), resumable, verified afterwards")
    .requiredOption("--from <url>", "the store to copy: sqlite:<path> or postgres://…")
    .requiredOption("--to <url>", "the store to copy into (migrated first; must be empty unless --merge)")
    .option("--from-schema <schema>", "PostgreSQL schema of --from (default KEYWARD_DATABASE_SCHEMA)")
    .option("--to-schema <schema>", "PostgreSQL schema of --to (default KEYWARD_DATABASE_SCHEMA)")
    .option("--merge", "copy into a store that already holds data: rows it has are kept, the others added")
    .option("--batch-size <n>", "rows a transaction", positive, 1_000)
    .option("--sample <n>", "keys looked up by digest on both sides afterwards", positive, 200)
    .option("--json", "print the report as JSON")
    .action(
      async (options: {
        from: string;
        to: string;
        fromSchema?: string;
        toSchema?: string;
        merge?: boolean;
        batchSize: number;
        sample: number;
        json?: boolean;
      }) => {
        const { openRawStore } = await import("../migration/raw-store.js");
        const { copyStore } = await import("../migration/copy-store.js");
        const config = loadConfig();
        const defaultSchema = config.databaseSchema ?? null;
        const source = await openRawStore(options.from, options.fromSchema ?? defaultSchema);
        const progress = terminalProgress();
        try {
          const target = await openRawStore(options.to, options.toSchema ?? defaultSchema);
          try {
            if (source.label === target.label) throw new KeywardError("VALIDATION_FAILED", "--from and --to are the same store");
            const started = Date.now();
            const report = await copyStore(source, target, {
              hashSecrets: config.hashSecrets,
              merge: Boolean(options.merge),
              batchSize: options.batchSize,
              sampleSize: options.sample,
              onProgress: ({ step, copied, total }) => {
                const seconds = (Date.now() - started) / 1000;
                const rate = seconds > 0 ? Math.round(copied / seconds) : 0;
                progress.show(`copy-store: ${step} ${copied}/${total} rows (${rate} rows/s overall)`);
              },
            });
            progress.done();
            if (options.json) out(JSON.stringify(report, null, 2));
            else {
              if (report.resumed) out("resumed an interrupted copy");
              for (const t of report.tables) out(`${t.ok ? "ok  " : "FAIL"}  ${t.table.padEnd(24)} source ${t.source}  target ${t.target}`);
              for (const name of report.skipped) out(`skip  ${name} (no such table in the target)`);
              if (report.rechainedAuditEvents > 0) out(`${report.rechainedAuditEvents} audit events linked anew onto the target's chain`);
              const chain = report.auditChain.target;
              out(
                chain.ok
                  ? `audit chain intact on the target: ${chain.events} events`
                  : `audit chain broken on the target at ${chain.brokenAt.id}: ${chain.brokenAt.reason}`,
              );
              out(`keys sampled by digest: ${report.sample.matched}/${report.sample.checked} match`);
              out(`${report.ok ? "copied and verified" : "VERIFICATION FAILED"} in ${(report.elapsedMs / 1000).toFixed(1)} s`);
            }
            if (!report.ok) process.exitCode = 1;
          } finally {
            await target.close();
          }
        } finally {
          progress.done();
          await source.close();
        }
      },
    );
}
