import { type AuditChainReport, computeAuditHash, verifyAuditChain } from "../core/audit-chain.js";
import { KeywardError } from "../core/errors.js";
import type { HashSecret } from "../core/hashing.js";
import { checkHashSecrets } from "../service/hash-secret-guard.js";
import { quote, type RawStore, type Row, type Run, type TableInfo, toColumn } from "./raw-store.js";

/**
 * `keyward copy-store` (docs/migrating.md, "Export and moving stores"): the whole store copied
 * into another, SQLite or PostgreSQL either way, table by table in primary-key order and in
 * batches. Each batch is one transaction on the target together with the progress it makes (the
 * last primary key copied, in the target's meta table), so an interrupted copy continues where
 * it stopped when run again. Keys keep their ids and digests; audit events keep their sequence
 * numbers and hashes, so the chain re-verifies on the target.
 */

/**
 * Tables not copied as rows: each store keeps its own (migrations, SQLite internals, the usage
 * journal folded before copying, the change feed that only the source's readers follow, and
 * sign-ins in flight at the provider).
 */
const NOT_COPIED = new Set(["schema_migrations", "meta", "sqlite_sequence", "usage_journal", "usage_writers", "key_changes", "oidc_flows"]);
/** Tables a fresh store already has rows in (migrations write them): not a sign of an earlier life. */
const SEEDED = new Set([...NOT_COPIED, "webhook_cursor"]);
/** Copied first, in this order (referenced tables before those referring to them); the rest follow by name. */
const ORDER = [
  "owners",
  "keys",
  "key_last_use",
  "users",
  "organization_members",
  "sessions",
  "user_links",
  "setup_token",
  "key_requests",
  "webhook_endpoints",
  "webhook_deliveries",
  "webhook_cursor",
  "webhook_expiry_notices",
  "audit_events",
];
/** Meta rows that belong to one store and are never copied. */
const LOCAL_META = (name: string) => name === "change_seq" || name.startsWith("key_changes_") || name.startsWith(META_PREFIX);

const META_PREFIX = "copy_store.";
const META = {
  state: `${META_PREFIX}state`,
  source: `${META_PREFIX}source`,
  mode: `${META_PREFIX}mode`,
  progress: (step: string) => `${META_PREFIX}progress.${step}`,
};

export interface CopyProgress {
  step: string;
  copied: number;
  total: number;
}

export interface CopyOptions {
  /** Allow a target that already holds data: rows already there (same primary key) are kept, the others added. */
  merge?: boolean;
  /** KEYWARD_HASH_SECRET of this process: both stores must have been used with it. */
  hashSecrets: readonly HashSecret[];
  /** Rows a batch (one target transaction). */
  batchSize?: number;
  /** Keys looked up by digest on both sides afterwards. */
  sampleSize?: number;
  onProgress?: (progress: CopyProgress) => void;
  now?: () => number;
}

export interface TableReport {
  table: string;
  source: number;
  target: number;
  /** Seconds this run spent copying the table. */
  seconds: number;
  ok: boolean;
}

export interface CopyReport {
  ok: boolean;
  mode: "copy" | "merge";
  resumed: boolean;
  tables: TableReport[];
  /** Source tables the target has no table for (nothing of them is lost: see NOT_COPIED). */
  skipped: string[];
  /** Merge: audit events appended to the target's chain with new links (they did not continue it). */
  rechainedAuditEvents: number;
  auditChain: { source: AuditChainReport; target: AuditChainReport };
  sample: { checked: number; matched: number; mismatches: string[] };
  /** Seconds spent verifying (counts, both audit chains, the sample). */
  verifySeconds: number;
  elapsedMs: number;
}

/** One unit of copying, with its own progress row. */
interface Step {
  name: string;
  read: TableInfo;
  where?: string;
  write: (run: Run, rows: Row[]) => Promise<void>;
  /** Rows to compare afterwards: counted on the source and on the target. */
  counts: { source: () => Promise<number>; target: () => Promise<number> };
  /** Whether a different count is a failure (merge adds to what the target had). */
  exact: boolean;
}

const MAX_PARAMETERS = 30_000;

/** INSERT … VALUES for `rows` (converted to the target's column kinds), in statements under the parameter limits. */
async function insertRows(
  run: Run,
  target: RawStore,
  table: TableInfo,
  columns: readonly { name: string; from: string }[],
  rows: readonly Row[],
  conflict: string,
): Promise<void> {
  const kinds = new Map(table.columns.map((c) => [c.name, c.kind]));
  if (target.kind === "postgres") {
    // One array a column through unnest: a statement of a few parameters, however many rows
    // (a VALUES list of tens of thousands of parameters took longer to parse than to write).
    const types = new Map(table.columns.map((c) => [c.name, c.sqlType]));
    const arrays = columns.map((c) => rows.map((row) => toColumn(row[c.from], kinds.get(c.name) ?? "other", "postgres")));
    const unnest = columns.map((c) => `?::${quote(types.get(c.name) ?? "text")}[]`).join(", ");
    await run(
      `INSERT INTO ${quote(table.name)} (${columns.map((c) => quote(c.name)).join(", ")}) SELECT * FROM unnest(${unnest}) ${conflict}`,
      arrays,
    );
    return;
  }
  const perStatement = Math.max(1, Math.floor(MAX_PARAMETERS / columns.length));
  for (let start = 0; start < rows.length; start += perStatement) {
    const chunk = rows.slice(start, start + perStatement);
    const params: unknown[] = [];
    const tuples: string[] = [];
    for (const row of chunk) {
      for (const c of columns) params.push(toColumn(row[c.from], kinds.get(c.name) ?? "other", target.kind));
      tuples.push(`(${columns.map(() => "?").join(", ")})`);
    }
    await run(
      `INSERT INTO ${quote(table.name)} (${columns.map((c) => quote(c.name)).join(", ")}) VALUES ${tuples.join(", ")} ${conflict}`,
      params,
    );
  }
}

/** What a plain copy does when a row is there already (a resumed batch): it becomes the source's. */
function upsert(table: TableInfo, columns: readonly string[]): string {
  const rest = columns.filter((c) => !table.primaryKey.includes(c));
  if (table.primaryKey.length === 0 || rest.length === 0) return "ON CONFLICT DO NOTHING";
  return `ON CONFLICT (${table.primaryKey.map(quote).join(", ")}) DO UPDATE SET ${rest.map((c) => `${quote(c)} = excluded.${quote(c)}`).join(", ")}`;
}

async function isEmpty(store: RawStore, tables: Map<string, TableInfo>): Promise<string | null> {
  for (const name of tables.keys()) {
    if (SEEDED.has(name)) continue;
    if ((await store.query(`SELECT 1 AS one FROM ${quote(name)} LIMIT 1`)).length > 0) return name;
  }
  return null;
}

async function getMeta(store: RawStore, name: string): Promise<string | null> {
  const rows = await store.query(store.sql("SELECT value FROM meta WHERE name = ?"), [name]);
  return rows[0] ? String(rows[0].value) : null;
}

const SET_META = "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value";

async function setMeta(run: Run, target: RawStore, name: string, value: string): Promise<void> {
  await run(target.sql(SET_META), [name, value]);
}

const auditValues = (row: Row): unknown[] =>
  ["id", "at", "actor_type", "actor_id", "action", "target_type", "target_id", "ip", "user_agent", "request_id", "changes", "details"].map(
    (c) => row[c] ?? null,
  );

/** Copies `source` into `target` (both opened with openRawStore), then verifies the copy. */
export async function copyStore(source: RawStore, target: RawStore, options: CopyOptions): Promise<CopyReport> {
  const now = options.now ?? Date.now;
  const started = now();
  const batchSize = options.batchSize ?? 1_000;
  // Both stores must be the ones this KEYWARD_HASH_SECRET hashed: digests are copied, not recomputed.
  await checkHashSecrets(source.keys, options.hashSecrets, now());
  await checkHashSecrets(target.keys, options.hashSecrets, now());

  const sourceTables = await source.tables();
  const targetTables = await target.tables();

  const state = await getMeta(target, META.state);
  let resumed = false;
  let mode: "copy" | "merge" = options.merge ? "merge" : "copy";
  if (state === "running") {
    const from = await getMeta(target, META.source);
    if (from !== source.label)
      throw new KeywardError(
        "CONFLICT",
        `the target holds an interrupted copy from ${from}: run copy-store again with that source to finish it`,
      );
    resumed = true;
    mode = (await getMeta(target, META.mode)) === "merge" ? "merge" : "copy";
  } else {
    const holding = await isEmpty(target, targetTables);
    if (holding !== null && !options.merge)
      throw new KeywardError(
        "CONFLICT",
        `the target is not empty (table ${holding} has rows): copy into an empty store, or give --merge to add to what it holds`,
      );
    await target.transaction(async (run) => {
      await run(target.sql("DELETE FROM meta WHERE name LIKE ?"), [`${META_PREFIX}progress.%`]);
      await setMeta(run, target, META.state, "running");
      await setMeta(run, target, META.source, source.label);
      await setMeta(run, target, META.mode, mode);
    });
  }

  // Meta rows (the hash-secret fingerprints among them) first: few, and safe to repeat.
  const metaRows = (await source.query("SELECT name, value FROM meta")).filter((r) => !LOCAL_META(String(r.name)));
  await target.transaction(async (run) => {
    for (const row of metaRows)
      await run(target.sql("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"), [row.name, row.value]);
  });

  const steps: Step[] = [];
  const skipped: string[] = [];
  const names = [...ORDER.filter((n) => sourceTables.has(n)), ...[...sourceTables.keys()].filter((n) => !ORDER.includes(n)).sort()];
  const audit = { rechained: 0 };
  for (const name of names) {
    if (NOT_COPIED.has(name)) continue;
    const from = sourceTables.get(name) as TableInfo;
    const to = targetTables.get(name);
    if (name === "key_last_use" && !to && targetTables.get("keys")?.columns.some((c) => c.name === "last_used_at")) {
      steps.push(lastUsesIntoKeys(source, target, from));
      continue;
    }
    if (!to) {
      skipped.push(name);
      continue;
    }
    const columns = from.columns.filter((c) => to.columns.some((t) => t.name === c.name)).map((c) => ({ name: c.name, from: c.name }));
    const conflict =
      mode === "merge"
        ? "ON CONFLICT DO NOTHING"
        : name === "audit_events"
          ? ""
          : upsert(
              to,
              columns.map((c) => c.name),
            );
    steps.push({
      name,
      read: from,
      write:
        name === "audit_events" && mode === "merge"
          ? (run, rows) => mergeAuditEvents(run, target, to, columns, rows, audit)
          : (run, rows) => insertRows(run, target, to, columns, rows, conflict),
      counts: { source: () => source.count(name), target: () => target.count(name) },
      exact: mode === "copy",
    });
    // Last uses held in the keys table (PostgreSQL) go to their own table in SQLite.
    if (
      name === "keys" &&
      !sourceTables.has("key_last_use") &&
      targetTables.has("key_last_use") &&
      from.columns.some((c) => c.name === "last_used_at")
    )
      steps.push(lastUsesFromKeys(source, target, from, targetTables.get("key_last_use") as TableInfo, mode));
  }

  // PostgreSQL's trigram index on key names costs more to keep up row by row than the rest of
  // the keys table's writes together: a plain copy builds it once at the end instead.
  // (Idempotent, so a resumed copy, which finds it dropped already, still builds it.)
  const rebuildNameIndex = target.kind === "postgres" && mode === "copy";
  if (rebuildNameIndex) await target.dropNameSearchIndex();
  const seconds = new Map<string, number>();
  for (const step of steps) {
    const stepStarted = now();
    await runStep(source, target, step, batchSize, options.onProgress);
    seconds.set(step.name, (now() - stepStarted) / 1000);
  }
  if (rebuildNameIndex) {
    const stepStarted = now();
    await target.ensureNameSearchIndex();
    seconds.set("keys", (seconds.get("keys") ?? 0) + (now() - stepStarted) / 1000);
  }

  // Sequences of serial columns move past the copied values (SQLite's AUTOINCREMENT does so itself).
  if (target.kind === "postgres")
    for (const table of targetTables.values())
      for (const column of table.columns.filter((c) => c.serial))
        await target.query(
          `SELECT setval(pg_get_serial_sequence('${quote(table.name)}', '${column.name}'), COALESCE((SELECT MAX(${quote(column.name)}) FROM ${quote(table.name)}), 0) + 1, false)`,
        );
  if (mode === "merge" && targetTables.has("webhook_cursor")) {
    // The copied events were sent to webhooks by the source already: the target's dispatcher starts after them.
    await target.query(
      "UPDATE webhook_cursor SET audit_seq = (SELECT COALESCE(MAX(seq), 0) FROM audit_events) WHERE audit_seq < (SELECT COALESCE(MAX(seq), 0) FROM audit_events)",
    );
  }
  // Outside the batches' transactions, so with the database's own durability: on PostgreSQL this
  // commit waits for the log, and with it for every batch before it.
  await target.query(target.sql(SET_META), [META.state, "done"]);

  // Verification.
  const tables: TableReport[] = [];
  for (const step of steps) {
    const [s, t] = [await step.counts.source(), await step.counts.target()];
    tables.push({ table: step.name, source: s, target: t, seconds: seconds.get(step.name) ?? 0, ok: step.exact ? s === t : t >= s });
  }
  const verifyStarted = now();
  const chain = async (store: RawStore) => verifyAuditChain((after, limit) => store.keys.readAuditChain(after, limit));
  const auditChain = { source: await chain(source), target: await chain(target) };
  const sample = await sampleKeys(source, target, options.sampleSize ?? 200, mode);
  return {
    ok: tables.every((t) => t.ok) && auditChain.target.ok && sample.mismatches.length === 0,
    mode,
    resumed,
    tables,
    skipped,
    rechainedAuditEvents: audit.rechained,
    auditChain,
    sample,
    verifySeconds: (now() - verifyStarted) / 1000,
    elapsedMs: now() - started,
  };
}

async function runStep(
  source: RawStore,
  target: RawStore,
  step: Step,
  batchSize: number,
  onProgress: ((progress: CopyProgress) => void) | undefined,
): Promise<void> {
  const saved = await getMeta(target, META.progress(step.name));
  if (saved === "done") return;
  let after: unknown[] | null = saved ? (JSON.parse(saved) as unknown[]) : null;
  const total = await source.count(step.read.name, step.where);
  // Rows already copied by an interrupted run, for the progress shown.
  let copied = after
    ? await source.count(step.read.name, `${step.where ? `(${step.where}) AND ` : ""}NOT ${pkAfter(step.read, after)}`)
    : 0;
  for (;;) {
    const rows = await source.page(step.read, after, batchSize, step.where);
    if (rows.length === 0) break;
    const last = rows[rows.length - 1] as Row;
    const next = step.read.primaryKey.map((k) => last[k]);
    const finished = rows.length < batchSize;
    await target.transaction(async (run) => {
      await step.write(run, rows);
      await setMeta(run, target, META.progress(step.name), finished ? "done" : JSON.stringify(next));
    });
    after = next;
    copied += rows.length;
    onProgress?.({ step: step.name, copied, total });
    if (finished) return;
  }
  await target.transaction(async (run) => setMeta(run, target, META.progress(step.name), "done"));
  onProgress?.({ step: step.name, copied, total });
}

/** `(pk…) > (values…)` with the values inlined as literals (for one count; values come from the store itself). */
function pkAfter(table: TableInfo, after: readonly unknown[]): string {
  const literal = (v: unknown) => (typeof v === "number" || typeof v === "bigint" ? String(v) : `'${String(v).replace(/'/g, "''")}'`);
  return `(${table.primaryKey.map(quote).join(", ")}) > (${after.map(literal).join(", ")})`;
}

/** SQLite's key_last_use rows into PostgreSQL's keys.last_used_at/last_used_ip. */
function lastUsesIntoKeys(source: RawStore, target: RawStore, from: TableInfo): Step {
  return {
    name: "key_last_use",
    read: from,
    write: async (run, rows) => {
      for (const row of rows)
        await run(
          target.sql("UPDATE keys SET last_used_at = ?, last_used_ip = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)"),
          [row.at, row.ip ?? null, row.key_id, row.at],
        );
    },
    counts: { source: () => source.count("key_last_use"), target: () => target.count("keys", "last_used_at IS NOT NULL") },
    exact: false,
  };
}

/** PostgreSQL's keys.last_used_at/last_used_ip into SQLite's key_last_use rows. */
function lastUsesFromKeys(source: RawStore, target: RawStore, keys: TableInfo, to: TableInfo, mode: "copy" | "merge"): Step {
  const read: TableInfo = { ...keys, columns: keys.columns.filter((c) => ["id", "last_used_at", "last_used_ip"].includes(c.name)) };
  const columns = [
    { name: "key_id", from: "id" },
    { name: "at", from: "last_used_at" },
    { name: "ip", from: "last_used_ip" },
  ];
  return {
    name: "key_last_use",
    read,
    where: "last_used_at IS NOT NULL",
    write: (run, rows) =>
      insertRows(run, target, to, columns, rows, mode === "merge" ? "ON CONFLICT DO NOTHING" : upsert(to, ["key_id", "at", "ip"])),
    counts: { source: () => source.count("keys", "last_used_at IS NOT NULL"), target: () => target.count("key_last_use") },
    exact: mode === "copy",
  };
}

/**
 * Merge: audit events the target does not have are appended to its chain. An event that
 * continues the target's chain (the target is an earlier copy of this source) keeps its
 * sequence number and hash; one that does not is linked anew to the target's last event.
 */
async function mergeAuditEvents(
  run: Run,
  target: RawStore,
  table: TableInfo,
  columns: readonly { name: string; from: string }[],
  rows: readonly Row[],
  audit: { rechained: number },
): Promise<void> {
  const ids = rows.map((r) => r.id);
  const present = new Set(
    (await run(target.sql(`SELECT id FROM audit_events WHERE id IN (${ids.map(() => "?").join(", ")})`), ids)).map((r) => String(r.id)),
  );
  const tail = (await run("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1", []))[0];
  let tailSeq = Number(tail?.seq ?? 0);
  let tailHash = tail ? String(tail.hash) : "0".repeat(64);
  const fresh: Row[] = [];
  for (const row of rows) {
    if (present.has(String(row.id))) continue;
    let copy = row;
    if (!(row.prev_hash === tailHash && Number(row.seq) > tailSeq)) {
      const hash = computeAuditHash(tailHash, auditValues(row));
      copy = { ...row, seq: tailSeq + 1, prev_hash: tailHash, hash };
      audit.rechained++;
    }
    tailSeq = Number(copy.seq);
    tailHash = String(copy.hash);
    fresh.push(copy);
  }
  if (fresh.length > 0) await insertRows(run, target, table, columns, fresh, "");
}

async function sampleKeys(
  source: RawStore,
  target: RawStore,
  size: number,
  mode: "copy" | "merge",
): Promise<{ checked: number; matched: number; mismatches: string[] }> {
  const digests = (await source.query(source.sql("SELECT digest FROM keys ORDER BY random() LIMIT ?"), [size])).map((r) =>
    String(r.digest),
  );
  const mismatches: string[] = [];
  let matched = 0;
  for (const digest of digests) {
    const [a, b] = [await source.keys.findKeyByDigest(digest), await target.keys.findKeyByDigest(digest)];
    const same =
      a !== null &&
      b !== null &&
      (mode === "merge"
        ? a.key.id === b.key.id
        : JSON.stringify({ ...a.key, lastUsedAt: null, lastUsedIp: null }) ===
            JSON.stringify({ ...b.key, lastUsedAt: null, lastUsedIp: null }) && a.ownerDisabled === b.ownerDisabled);
    if (same) matched++;
    else mismatches.push(a?.key.id ?? digest);
  }
  return { checked: digests.length, matched, mismatches };
}
