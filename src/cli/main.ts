import { createRequire } from "node:module";
import { userInfo } from "node:os";
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { unboundedAuthority } from "../authority/actors.js";
import { verifyAuditChain } from "../core/audit-chain.js";
import { isKeywardError, KeywardError } from "../core/errors.js";
import { type PublicKey, toPublicKey } from "../core/key-view.js";
import {
  type KeyChanges,
  type KeyStatus,
  OWNER_TYPES,
  type OwnerType,
  type QuotaSpec,
  type RateLimitSpec,
  type RequestContext,
} from "../core/model.js";
import type { Keyward } from "../engine/keyward.js";
import { enforce } from "../service/authority-gate.js";
import { loadConfig } from "../service/config.js";
import { createAdminKey, openKeyward } from "../service/open-keyward.js";
import type { ImportCommandOptions } from "./import.js";
import {
  cidrsOf,
  collectCidr,
  collectMetadata,
  orNull,
  parseBurst,
  parseConcurrency,
  parseExpiresAt,
  parseExpiresIn,
  parseMetadataJson,
  parseQuota,
  parseQuotaRefill,
  parseRateLimit,
  type Removable,
  removable,
} from "./key-options.js";
import { addMigrationCommands } from "./migration-commands.js";
import { addOrganizationCommands } from "./orgs.js";

const out = (line: string) => process.stdout.write(`${line}\n`);

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
  // An imported key (docs/migrating.md): its legacy format, and its id in the system it came from.
  if (key.format !== "keyward") lines.push(`format       ${key.format}`);
  if (key.external_id !== null) lines.push(`external id  ${key.external_id}`);
  if (key.rate_limit)
    lines.push(
      `rate limit   ${key.rate_limit.requests} per ${key.rate_limit.per_seconds} s${key.rate_limit.burst ? ` (burst ${key.rate_limit.burst})` : ""}`,
    );
  if (key.concurrency !== null) lines.push(`concurrency  ${key.concurrency}`);
  if (key.quota)
    lines.push(
      "limit" in key.quota
        ? `quota        ${key.quota.limit} a ${key.quota.period}`
        : `quota        ${key.quota.remaining} credits${key.quota.refill ? ` (+${key.quota.refill.amount} every ${key.quota.refill.every_seconds} s)` : ""}`,
    );
  if (key.allowed_cidrs.length > 0) lines.push(`cidrs        ${key.allowed_cidrs.join(", ")}`);
  if (Object.keys(key.metadata).length > 0) lines.push(`metadata     ${JSON.stringify(key.metadata)}`);
  if (key.grace_ends_at) lines.push(`grace ends   ${key.grace_ends_at}`);
  if (key.replaced_by) lines.push(`replaced by  ${key.replaced_by}`);
  return lines.join("\n");
}

/** The settings `keys create` and `keys update` take, as the HTTP API does (docs/api.md); parsed in key-options.ts. */
function withKeySettings(command: Command): Command {
  return command
    .option("--expires-in <duration>", "expire this long from now: 30d, 12h, 15m, 90s, 2w (never: no expiry)", removable(parseExpiresIn))
    .option("--expires-at <time>", "expire at this RFC 3339 time, e.g. 2027-01-31T00:00:00Z (never: no expiry)", removable(parseExpiresAt))
    .option("--rate-limit <rate>", "requests per window: 5/s, 100/m, 1000/h, 300/5m (none: no limit)", removable(parseRateLimit))
    .option("--burst <n>", "with --rate-limit: requests allowed at once (default the rate's requests)", parseBurst)
    .option("--concurrency <n>", "requests in flight at once, 1 to 10000 (none: no limit)", removable(parseConcurrency))
    .option("--quota <quota>", "<n>/day or <n>/month (UTC calendar), or <n> credits (none: no quota)", removable(parseQuota))
    .option("--quota-refill <refill>", "with credits: add <n> every period, e.g. 100/1h", parseQuotaRefill)
    .option("--cidr <cidr>", "allow this IPv4/IPv6 address or CIDR only; repeat for more (none: any address)", collectCidr)
    .option("--metadata <key=value>", "a metadata field, its value a string; repeat for more", collectMetadata)
    .option("--metadata-json <json>", "the whole metadata as one JSON object", parseMetadataJson);
}

interface KeySettingOptions {
  expiresIn?: Removable<number>;
  expiresAt?: Removable<number>;
  rateLimit?: Removable<RateLimitSpec>;
  burst?: number;
  concurrency?: Removable<number>;
  quota?: Removable<QuotaSpec>;
  quotaRefill?: { amount: number; every_seconds: number };
  cidr?: string[];
  metadata?: Record<string, string>;
  metadataJson?: Record<string, unknown>;
}

const usageError = (message: string) => new KeywardError("VALIDATION_FAILED", message);

/** The key fields the setting flags give (only those given); flags that contradict each other are refused (exit 2). */
function keySettings(options: KeySettingOptions, now: number): KeyChanges {
  const expiresIn = orNull(options.expiresIn);
  const given = { rateLimit: orNull(options.rateLimit), concurrency: orNull(options.concurrency), quota: orNull(options.quota) };
  if (expiresIn !== undefined && options.expiresAt !== undefined) throw usageError("give --expires-in or --expires-at, not both");
  if (options.burst !== undefined && !given.rateLimit) throw usageError("--burst needs --rate-limit");
  if (options.quotaRefill !== undefined && !(given.quota && "remaining" in given.quota))
    throw usageError("--quota-refill needs --quota <n> (credits)");
  if (options.metadata !== undefined && options.metadataJson !== undefined)
    throw usageError("give --metadata or --metadata-json, not both");
  const expiresAt = expiresIn !== undefined ? (expiresIn === null ? null : now + expiresIn) : orNull(options.expiresAt);
  const rateLimit = given.rateLimit && options.burst !== undefined ? { ...given.rateLimit, burst: options.burst } : given.rateLimit;
  const quota = given.quota && options.quotaRefill ? { ...given.quota, refill: options.quotaRefill } : given.quota;
  const allowedCidrs = cidrsOf(options.cidr);
  const metadata = options.metadataJson ?? options.metadata;
  return {
    ...(expiresAt !== undefined ? { expiresAt } : {}),
    ...(rateLimit !== undefined ? { rateLimit } : {}),
    ...(given.concurrency !== undefined ? { concurrency: given.concurrency } : {}),
    ...(quota !== undefined ? { quota } : {}),
    ...(allowedCidrs !== undefined ? { allowedCidrs } : {}),
    ...(metadata !== undefined ? { metadata } : {}),
  };
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
  const type = value.slice(0, colon) as OwnerType;
  if (colon < 0 || !OWNER_TYPES.includes(type)) throw new InvalidArgumentError("use user:<id>, application:<id> or organization:<id>");
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

  const keys = program.command("keys").description("create, list, show, update, rotate and revoke keys");
  withKeySettings(
    keys
      .command("create")
      .description("create a key")
      .requiredOption("--owner <owner>", "user:<id>, application:<id> or organization:<id>", parseOwner)
      .requiredOption("--name <name>", "a name to recognise it by")
      .option("--environment <environment>", "sandbox or production", "sandbox")
      .option("--scopes <scopes>", "comma-separated scopes", parseList, [] as string[])
      .option(
        "--grantable-scopes <scopes>",
        "a key with keys:write or portal:create: the scopes it may confer, comma-separated (its delegation ceiling)",
        parseList,
      )
      .option(
        "--grantable-environments <environments>",
        "with --grantable-scopes: sandbox, production or both (default sandbox)",
        parseList,
      ),
  )
    .option("--json", "print JSON")
    .action(
      async (
        options: KeySettingOptions & {
          owner: { type: OwnerType; id: string };
          name: string;
          environment: string;
          scopes: string[];
          grantableScopes?: string[];
          grantableEnvironments?: string[];
          json?: boolean;
        },
      ) => {
        if (options.grantableEnvironments && !options.grantableScopes)
          throw usageError("--grantable-environments needs --grantable-scopes");
        await withKeyward(async (keyward) => {
          const settings = keySettings(options, keyward.clock.now());
          const created = await keyward.createKey(
            {
              owner: options.owner,
              name: options.name,
              environment: options.environment as "sandbox" | "production",
              scopes: options.scopes,
              expiresAt: settings.expiresAt,
              rateLimit: settings.rateLimit,
              concurrency: settings.concurrency,
              quota: settings.quota,
              allowedCidrs: settings.allowedCidrs,
              metadata: settings.metadata,
              delegation: options.grantableScopes
                ? {
                    scopes: options.grantableScopes,
                    environments: (options.grantableEnvironments ?? ["sandbox"]) as ("sandbox" | "production")[],
                  }
                : null,
            },
            cliContext(),
          );
          printCreated(Boolean(options.json), created.key, toPublicKey(created.record, keyward.clock.now()), "Key created");
        });
      },
    );

  withKeySettings(
    keys
      .command("update <id>")
      .description("change a key's settings; each flag given replaces that setting, the others stay")
      .option("--name <name>", "a new name")
      .option("--scopes <scopes>", "the scopes, comma-separated (replaces them all)", parseList)
      .option("--enable", "enable the key")
      .option("--disable", "disable the key (it verifies as DISABLED until enabled)"),
  )
    .option("--json", "print JSON")
    .action(
      async (
        id: string,
        options: KeySettingOptions & { name?: string; scopes?: string[]; enable?: boolean; disable?: boolean; json?: boolean },
      ) => {
        if (options.enable && options.disable) throw usageError("give --enable or --disable, not both");
        await withKeyward(async (keyward) => {
          const changes: KeyChanges = {
            ...(options.name !== undefined ? { name: options.name } : {}),
            ...(options.scopes !== undefined ? { scopes: options.scopes } : {}),
            ...(options.enable || options.disable ? { enabled: Boolean(options.enable) } : {}),
            ...keySettings(options, keyward.clock.now()),
          };
          if (Object.keys(changes).length === 0)
            throw usageError("nothing to change: give at least one setting (see keyward keys update --help)");
          // The CLI writes straight into the store: the operator, unbounded, yet decided in the same place.
          const context = cliContext();
          enforce(unboundedAuthority(context.actor), {
            type: "key.update",
            key: await keyward.getKey(id),
            changes,
            setByActor: {},
          });
          const key = toPublicKey(await keyward.updateKey(id, changes, context), keyward.clock.now());
          out(options.json ? JSON.stringify(key, null, 2) : `Key updated.\n${describeKey(key)}`);
        });
      },
    );

  keys
    .command("list")
    .description("list keys, newest first")
    .option("--owner <owner>", "user:<id>, application:<id> or organization:<id>", parseOwner)
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
        enforce(unboundedAuthority(context.actor), { type: "key.rotate", key: await keyward.getKey(id) });
        const rotated = await keyward.rotateKey(id, options.grace, context);
        printCreated(Boolean(options.json), rotated.key, toPublicKey(rotated.record, keyward.clock.now()), "Key rotated");
      });
    });

  keys
    .command("end-grace <id>")
    .description("end a rotation grace now: on a successor, the keys it replaced stop at once; on a key in its grace, that key does")
    .option("--json", "print JSON")
    .action(async (id: string, options: { json?: boolean }) => {
      await withKeyward(async (keyward) => {
        const context = cliContext();
        const ended = await keyward.endGrace(id, context, (ending) => {
          for (const key of ending) enforce(unboundedAuthority(context.actor), { type: "key.revoke", key });
        });
        const ids = ended.endedGrace.map((key) => key.id);
        const key = toPublicKey(ended.key, keyward.clock.now());
        out(options.json ? JSON.stringify({ ...key, ended_grace: ids }, null, 2) : `Grace ended now for ${ids.join(", ")}.`);
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
        enforce(unboundedAuthority(context.actor), { type: "key.revoke", key: await keyward.getKey(id) });
        const key = toPublicKey(await keyward.revokeKey(id, options.reason ?? null, context), keyward.clock.now());
        out(options.json ? JSON.stringify(key, null, 2) : `Key revoked.\n${describeKey(key)}`);
      });
    });

  program
    .command("import <file>")
    .description(
      "import keys from JSON lines or CSV (- for standard input): plaintexts, or the digests of the system before Keyward (docs/migrating.md); exits 1 when a record failed",
    )
    .option("--format <name>", "the legacy format (KEYWARD_LEGACY_FORMATS) of records that name none")
    .option("--input-format <type>", "jsonl or csv (default: by the file name, else by the first character)")
    .option("--dry-run", "validate and match every record, write nothing")
    .option("--strict", "stop at the first bad record")
    .option("--batch-size <n>", "records per transaction", parseInteger, 5_000)
    .option("--no-progress", "no progress line on a terminal")
    .option("--json", "print the report as JSON")
    .action(async (file: string, options: ImportCommandOptions & { json?: boolean }) => {
      const { describeImport, importFromFile, importReportJson } = await import("./import.js");
      await withKeyward(async (keyward) => {
        // The CLI writes straight into the store: the operator, the one actor besides an admin key that may import.
        const context = cliContext();
        enforce(unboundedAuthority(context.actor), { type: "keys.import" });
        const report = await importFromFile(keyward, file, options, context);
        out(options.json ? JSON.stringify(importReportJson(report), null, 2) : describeImport(report));
        if (report.failed > 0 || !report.completed) process.exitCode = 1;
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

  // keyward orgs … (docs/organizations.md).
  addOrganizationCommands(program, { out, withKeyward, cliContext });

  // keyward export, keyward copy-store (docs/migrating.md).
  addMigrationCommands(program, out, VERSION);

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
