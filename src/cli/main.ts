import { createRequire } from "node:module";
import { userInfo } from "node:os";
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { unboundedAuthority } from "../authority/actors.js";
import { decide } from "../authority/decide.js";
import type { Action, Authority } from "../authority/model.js";
import { verifyAuditChain } from "../core/audit-chain.js";
import { isKeywardError, KeywardError } from "../core/errors.js";
import { type PublicKey, toPublicKey } from "../core/key-view.js";
import type { KeyStatus, OwnerType, RequestContext } from "../core/model.js";
import type { Keyward } from "../engine/keyward.js";
import { loadConfig } from "../service/config.js";
import { createAdminKey, openKeyward } from "../service/open-keyward.js";
import { parseDuration } from "./durations.js";

const out = (line: string) => process.stdout.write(`${line}\n`);

/** Throws the decision's problem unless the authority model allows the action (docs/authority.md). */
function enforceAuthority(authority: Authority, action: Action): void {
  const decision = decide(authority, action);
  if (!decision.allowed) throw new KeywardError(decision.code, decision.message);
}

function cliContext(): RequestContext {
  let user = "unknown";
  try {
    user = userInfo().username;
  } catch {}
  return { actor: { type: "cli", id: user } };
}

function describeKey(key: PublicKey): string {
  const lines = [
    `id           ${key.id}`,
    `ref          ${key.ref}`,
    `name         ${key.name}`,
    `owner        ${key.owner.type}:${key.owner.id}`,
    `environment  ${key.environment}`,
    `scopes       ${key.scopes.join(", ") || "(none)"}`,
    `status       ${key.status}`,
    `created      ${key.created_at}`,
    `expires      ${key.expires_at ?? "never"}`,
  ];
  if (key.grace_ends_at) lines.push(`grace ends   ${key.grace_ends_at}`);
  if (key.replaced_by) lines.push(`replaced by  ${key.replaced_by}`);
  return lines.join("\n");
}

/** Runs `fn` on the configured store (no server needed) and closes it afterwards. */
async function withKeyward<T>(fn: (keyward: Keyward) => Promise<T>): Promise<T> {
  const keyward = await openKeyward(loadConfig());
  try {
    return await fn(keyward);
  } finally {
    await keyward.close();
  }
}

function parseOwner(value: string): { type: OwnerType; id: string } {
  const colon = value.indexOf(":");
  const type = value.slice(0, colon);
  if (colon < 0 || (type !== "user" && type !== "application")) throw new InvalidArgumentError("use user:<id> or application:<id>");
  return { type, id: value.slice(colon + 1) };
}

const parseList = (value: string): string[] =>
  value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

function parseInteger(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError("not a non-negative integer");
  return n;
}

function printCreated(json: boolean, key: string, record: PublicKey, title: string): void {
  if (json) {
    out(JSON.stringify({ key, ...record }, null, 2));
    return;
  }
  out(`${title}. This key is shown once; store it now:\n\n  ${key}\n\n${describeKey(record)}`);
}

const VERSION = (createRequire(import.meta.url)("../../package.json") as { version: string }).version;

const ENVIRONMENT_HELP = `
Every command works straight on the configured store, with or without a running server:
  KEYWARD_DATABASE_URL  the store (default sqlite:./data/keyward.db; postgres://… for PostgreSQL)
  KEYWARD_HASH_SECRET   the same value as the server's, if it has one
Exit codes: 0 done; 1 a negative answer (a key not valid, leaks found, a broken audit chain);
2 an error (bad usage, bad input, the store unreachable). See docs/configuration.md.`;

export function buildCli(): Command {
  const program = new Command()
    .name("keyward")
    .description("API key authentication you run yourself")
    .version(VERSION, "-v, --version", "print the version")
    .showHelpAfterError()
    .addHelpText("after", ENVIRONMENT_HELP)
    // Usage errors throw instead of exiting, so they share exit code 2 with every other error;
    // set before any command is added, so every subcommand inherits it.
    .exitOverride()
    .configureOutput({ writeErr: (text) => process.stderr.write(text) });

  program
    .command("serve")
    .description("start the HTTP service (KEYWARD_DATABASE_URL, PORT/KEYWARD_PORT, KEYWARD_HOST)")
    .option("--port <port>", "port to listen on", parseInteger)
    .option("--host <host>", "address to bind")
    .option("--workers <n>", "worker processes sharing the port (node:cluster); default 1", parseInteger, 1)
    .action(async (options: { port?: number; host?: string; workers: number }) => {
      const config = loadConfig();
      // The server is loaded only here, so key commands start fast.
      const cluster = (await import("node:cluster")).default;
      // A worker takes its port and host from the primary (KEYWARD_PORT/KEYWARD_HOST), which has
      // already resolved --port 0; the command line it inherits would say 0 again.
      if (!cluster.isWorker) {
        if (options.port !== undefined) config.port = options.port;
        if (options.host) config.host = options.host;
      }
      if (options.workers > 1 && cluster.isPrimary) {
        const { runPrimary } = await import("../service/workers.js");
        await runPrimary(config, options.workers, out);
        return;
      }
      const { startService } = await import("../service/runtime.js");
      const service = await startService(config, { bootstrap: cluster.isPrimary });
      const stop = () => {
        service.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
    });

  program
    .command("migrate")
    .description("apply pending database migrations")
    .option("--json", "print JSON")
    .action(async (options: { json?: boolean }) => {
      await withKeyward(async () => {});
      out(options.json ? JSON.stringify({ migrated: true }) : "migrations applied");
    });

  const adminKey = program.command("admin-key").description("admin keys");
  adminKey
    .command("create")
    .description("create a key with the admin scope, straight into the configured store")
    .option("--name <name>", "a name to recognise it by", "admin key")
    .option("--json", "print JSON")
    .action(async (options: { name: string; json?: boolean }) => {
      await withKeyward(async (keyward) => {
        const created = await createAdminKey(keyward, options.name, cliContext().actor as { type: "cli"; id: string });
        printCreated(Boolean(options.json), created.key, toPublicKey(created.record, keyward.clock.now()), "Admin key created");
      });
    });

  const keys = program.command("keys").description("create, list, show, rotate and revoke keys");
  keys
    .command("create")
    .description("create a key")
    .requiredOption("--owner <owner>", "user:<id> or application:<id>", parseOwner)
    .requiredOption("--name <name>", "a name to recognise it by")
    .option("--environment <environment>", "sandbox or production", "sandbox")
    .option("--scopes <scopes>", "comma-separated scopes", parseList, [] as string[])
    .option("--expires-in <duration>", "e.g. 30d, 12h")
    .option("--json", "print JSON")
    .action(
      async (options: {
        owner: { type: OwnerType; id: string };
        name: string;
        environment: string;
        scopes: string[];
        expiresIn?: string;
        json?: boolean;
      }) => {
        await withKeyward(async (keyward) => {
          let expiresAt: number | null = null;
          if (options.expiresIn) {
            const ms = parseDuration(options.expiresIn);
            if (ms === null) throw new KeywardError("VALIDATION_FAILED", "--expires-in must look like 30d, 12h, 15m, 90s or 2w");
            expiresAt = keyward.clock.now() + ms;
          }
          const created = await keyward.createKey(
            {
              owner: options.owner,
              name: options.name,
              environment: options.environment as "sandbox" | "production",
              scopes: options.scopes,
              expiresAt,
            },
            cliContext(),
          );
          printCreated(Boolean(options.json), created.key, toPublicKey(created.record, keyward.clock.now()), "Key created");
        });
      },
    );

  keys
    .command("list")
    .description("list keys, newest first")
    .option("--owner <owner>", "user:<id> or application:<id>", parseOwner)
    .option("--environment <environment>", "sandbox or production")
    .option("--status <status>", "active, disabled, revoked or expired")
    .option("--limit <n>", "at most this many", parseInteger, 50)
    .option("--cursor <cursor>", "continue from a previous page")
    .option("--json", "print JSON")
    .action(
      async (options: {
        owner?: { type: OwnerType; id: string };
        environment?: string;
        status?: string;
        limit: number;
        cursor?: string;
        json?: boolean;
      }) => {
        await withKeyward(async (keyward) => {
          const page = await keyward.listKeys(
            {
              ...(options.owner ? { ownerType: options.owner.type, ownerId: options.owner.id } : {}),
              ...(options.environment ? { environment: options.environment as "sandbox" | "production" } : {}),
              ...(options.status ? { status: options.status as KeyStatus } : {}),
            },
            { limit: options.limit, ...(options.cursor ? { cursor: options.cursor } : {}) },
          );
          const now = keyward.clock.now();
          const data = page.data.map((k) => toPublicKey(k, now));
          if (options.json) {
            out(JSON.stringify({ data, next_cursor: page.nextCursor }, null, 2));
            return;
          }
          if (data.length === 0) out("No keys.");
          else
            out(
              `${"ID".padEnd(data[0]?.id.length ?? 20)}  ${"REF".padEnd(data[0]?.ref.length ?? 16)}  ${"STATUS".padEnd(15)}  ${"ENVIRONMENT"}  OWNER  NAME`,
            );
          for (const k of data)
            out(`${k.id}  ${k.ref}  ${k.status.padEnd(15)}  ${k.environment.padEnd(11)}  ${k.owner.type}:${k.owner.id}  ${k.name}`);
          if (page.nextCursor) out(`(more: --cursor ${page.nextCursor})`);
        });
      },
    );

  keys
    .command("show <id>")
    .description("show one key")
    .option("--json", "print JSON")
    .action(async (id: string, options: { json?: boolean }) => {
      await withKeyward(async (keyward) => {
        const key = toPublicKey(await keyward.getKey(id), keyward.clock.now());
        out(options.json ? JSON.stringify(key, null, 2) : describeKey(key));
      });
    });

  keys
    .command("rotate <id>")
    .description("issue a successor; the old key works until the grace period ends")
    .option("--grace <seconds>", "grace period in seconds", parseInteger, 0)
    .option("--json", "print JSON")
    .action(async (id: string, options: { grace: number; json?: boolean }) => {
      await withKeyward(async (keyward) => {
        // The CLI writes straight into the store: the operator, unbounded, yet decided in the same place.
        const context = cliContext();
        enforceAuthority(unboundedAuthority(context.actor), { type: "key.rotate", key: await keyward.getKey(id) });
        const rotated = await keyward.rotateKey(id, options.grace, context);
        printCreated(Boolean(options.json), rotated.key, toPublicKey(rotated.record, keyward.clock.now()), "Key rotated");
      });
    });

  keys
    .command("revoke <id>")
    .description("revoke a key at once")
    .option("--reason <reason>", "why")
    .option("--json", "print JSON")
    .action(async (id: string, options: { reason?: string; json?: boolean }) => {
      await withKeyward(async (keyward) => {
        const context = cliContext();
        enforceAuthority(unboundedAuthority(context.actor), { type: "key.revoke", key: await keyward.getKey(id) });
        const key = toPublicKey(await keyward.revokeKey(id, options.reason ?? null, context), keyward.clock.now());
        out(options.json ? JSON.stringify(key, null, 2) : `Key revoked.\n${describeKey(key)}`);
      });
    });

  program
    .command("scan <path>")
    .description("find keys of this deployment's format in files and in git history; exits 1 when any are found")
    .option("--no-history", "skip git history")
    .option("--staged", "scan only what is staged for commit (for a pre-commit hook)")
    .option("--revoke <url>", "report the keys found to this Keyward service (needs KEYWARD_ADMIN_KEY with keys:write)")
    .option("--json", "print JSON")
    .action(async (path: string, options: { history: boolean; staged?: boolean; revoke?: string; json?: boolean }) => {
      const { scanFiles, scanGitHistory, scanStaged } = await import("./scan.js");
      const prefix = loadConfig().prefix;
      const findings = options.staged
        ? scanStaged(path, prefix)
        : [...scanFiles(path, prefix), ...(options.history ? scanGitHistory(path, prefix) : [])];
      const printable = findings.map(({ key: _key, ...rest }) => rest);
      let report: unknown = null;
      if (options.revoke && findings.length > 0) {
        const adminKey = process.env.KEYWARD_ADMIN_KEY;
        if (!adminKey) throw new KeywardError("INVALID_CONFIGURATION", "--revoke needs KEYWARD_ADMIN_KEY");
        const response = await fetch(new URL("/v1/leaks", options.revoke), {
          method: "POST",
          headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
          body: JSON.stringify({ keys: [...new Set(findings.map((f) => f.key))], source: `keyward scan ${path}` }),
        });
        if (!response.ok) throw new KeywardError("INTERNAL_ERROR", `the service answered ${response.status} to the leak report`);
        report = ((await response.json()) as { revoked: number }).revoked;
      }
      if (options.json) out(JSON.stringify({ findings: printable, ...(report !== null ? { revoked: report } : {}) }, null, 2));
      else {
        for (const f of printable) out(`${f.file}:${f.line}${f.commit ? ` (commit ${f.commit.slice(0, 12)})` : ""}  ${f.ref}`);
        out(findings.length === 0 ? "no keys found" : `${findings.length} key(s) found${report !== null ? `; ${report} revoked` : ""}`);
      }
      if (findings.length > 0) process.exitCode = 1;
    });

  const audit = program.command("audit").description("the audit trail");
  audit
    .command("verify")
    .description("check the audit hash chain; exits 1 at the first break")
    .option("--json", "print JSON")
    .action(async (options: { json?: boolean }) => {
      await withKeyward(async (keyward) => {
        const report = await verifyAuditChain((after, limit) => keyward.store.readAuditChain(after, limit));
        if (options.json) out(JSON.stringify(report, null, 2));
        else if (report.ok) out(`audit chain intact: ${report.events} events`);
        else
          out(
            `audit chain broken at event ${report.brokenAt.id} (seq ${report.brokenAt.seq}): ${report.brokenAt.reason}; ${report.events} events before it verified`,
          );
        if (!report.ok) process.exitCode = 1;
      });
    });

  const users = program.command("users").description("dashboard users");
  users
    .command("create")
    .description("create a dashboard user straight into the configured store (the first admin, or anyone)")
    .requiredOption("--email <email>", "the user's email")
    .option("--admin", "an administrator (default: member)")
    .option("--password-stdin", "read the password from standard input (default: generate one and print it once)")
    .option("--json", "print JSON")
    .action(async (options: { email: string; admin?: boolean; passwordStdin?: boolean; json?: boolean }) => {
      const { createUserFromCli } = await import("./users.js");
      await withKeyward(async (keyward) => {
        const created = await createUserFromCli(keyward, { ...options, context: cliContext() });
        if (options.json) out(JSON.stringify(created, null, 2));
        else
          out(
            `User ${created.email} (${created.role}) created: ${created.id}` +
              (created.password ? `\nPassword (shown once; change it by signing in): ${created.password}` : ""),
          );
      });
    });

  program
    .command("verify <key>")
    .description("verify a key against the configured store; exits 1 when it is not valid")
    .option("--scopes <scopes>", "required scopes, comma-separated", parseList)
    .option("--environment <environment>", "required environment")
    .option("--json", "print JSON")
    .action(async (key: string, options: { scopes?: string[]; environment?: string; json?: boolean }) => {
      await withKeyward(async (keyward) => {
        const result = await keyward.verify(key, {
          ...(options.scopes ? { scopes: options.scopes } : {}),
          ...(options.environment ? { environment: options.environment as "sandbox" | "production" } : {}),
          skipLimits: true,
        });
        if (options.json) {
          const key = result.key
            ? {
                id: result.key.id,
                ref: result.key.ref,
                name: result.key.name,
                owner: result.key.owner,
                environment: result.key.environment,
                scopes: result.key.scopes,
                metadata: result.key.metadata,
                // The API's names (snake_case), as every other JSON answer.
                expires_at: result.key.expiresAt,
              }
            : undefined;
          out(JSON.stringify({ valid: result.valid, code: result.code, ...(key ? { key } : {}) }, null, 2));
        } else {
          out(result.valid ? `VALID  ${result.key.id}  ${result.key.ref}` : `${result.code}${result.key ? `  ${result.key.id}` : ""}`);
        }
        if (!result.valid) process.exitCode = 1;
      });
    });

  return program;
}

/** Runs the CLI; errors go to stderr with a non-zero exit, never a stack for expected failures. */
export async function runCli(argv: string[]): Promise<void> {
  try {
    await buildCli().parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander has printed its own message (help, the version, or the usage error): once is enough.
      process.exitCode = ["commander.helpDisplayed", "commander.help", "commander.version"].includes(error.code) ? 0 : 2;
      return;
    }
    if (isKeywardError(error)) {
      process.stderr.write(`error: ${error.code}: ${error.message}\n`);
      for (const field of error.errors ?? []) process.stderr.write(`  ${field.field}: ${field.message}\n`);
    } else {
      process.stderr.write(`error: ${(error as Error).message}\n`);
    }
    process.exitCode = 2;
  }
}
