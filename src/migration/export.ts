import { once } from "node:events";
import type { Writable } from "node:stream";
import { type RawStore, type Row, type TableInfo, toExported } from "./raw-store.js";

/**
 * `keyward export` (docs/migrating.md, "Export and moving stores"): the store as JSON lines, one
 * record a line, read a page at a time in primary-key order and written as it is read, so memory
 * stays bounded whatever the store's size.
 *
 * Line 1 is the header; then one line per row, `{"type": …, "row": {…}}` with the columns as
 * stored; the last line is `{"type":"end","counts":{…}}`, so a cut-off file is recognisable.
 */
export const EXPORT_FORMAT = "keyward-export";
export const EXPORT_FORMAT_VERSION = 1;

/** Record types in the order they are written, and the table each comes from. */
export const EXPORTED_TABLES: readonly { type: string; table: string }[] = [
  { type: "owner", table: "owners" },
  { type: "key", table: "keys" },
  { type: "key_last_use", table: "key_last_use" },
  { type: "user", table: "users" },
  { type: "organization_member", table: "organization_members" },
  { type: "key_request", table: "key_requests" },
  { type: "webhook_endpoint", table: "webhook_endpoints" },
  { type: "audit_event", table: "audit_events" },
  { type: "usage_count", table: "usage_counts" },
];

export interface ExportOptions {
  /** Users' password hashes (left out by default). */
  includeCredentials?: boolean;
  /** Webhook endpoints' signing secrets (left out by default; sealed if KEYWARD_SECRETS_KEY seals them at rest). */
  includeSecrets?: boolean;
  /** Rows read at a time. */
  pageSize?: number;
  keywardVersion?: string;
  now?: () => number;
  onProgress?: (type: string, rows: number) => void;
}

export interface ExportHeader {
  type: "header";
  format: typeof EXPORT_FORMAT;
  format_version: number;
  keyward_version: string | null;
  exported_at: string;
  store: "sqlite" | "postgres";
  /** How many schema migrations the store has applied, and their names. */
  schema_version: number;
  schema_migrations: string[];
  /** The fingerprint of each KEYWARD_HASH_SECRET version the store's keys are hashed with (none: plain SHA-256). */
  hash_secret_fingerprints: Record<string, string>;
  include_credentials: boolean;
  include_secrets: boolean;
}

/** Columns left out of each table unless asked for. */
function omitted(table: string, options: ExportOptions): ReadonlySet<string> {
  if (table === "users" && !options.includeCredentials) return new Set(["password_hash"]);
  if (table === "webhook_endpoints" && !options.includeSecrets) return new Set(["secret"]);
  return new Set();
}

export async function exportHeader(store: RawStore, options: ExportOptions = {}): Promise<ExportHeader> {
  const migrations = (await store.query("SELECT name FROM schema_migrations ORDER BY name")).map((r) => String(r.name));
  const fingerprints: Record<string, string> = {};
  for (const row of await store.query(store.sql("SELECT name, value FROM meta WHERE name LIKE ? ORDER BY name"), ["hash_secret_v%"]))
    fingerprints[String(row.name).slice("hash_secret_".length)] = String(row.value);
  return {
    type: "header",
    format: EXPORT_FORMAT,
    format_version: EXPORT_FORMAT_VERSION,
    keyward_version: options.keywardVersion ?? null,
    exported_at: new Date((options.now ?? Date.now)()).toISOString(),
    store: store.kind,
    schema_version: migrations.length,
    schema_migrations: migrations,
    hash_secret_fingerprints: fingerprints,
    include_credentials: Boolean(options.includeCredentials),
    include_secrets: Boolean(options.includeSecrets),
  };
}

async function write(out: Writable, text: string): Promise<void> {
  if (!out.write(text)) await once(out, "drain");
}

/** Writes the whole store to `out`; answers the number of rows of each record type. */
export async function exportStore(store: RawStore, out: Writable, options: ExportOptions = {}): Promise<Record<string, number>> {
  const pageSize = options.pageSize ?? 2_000;
  await write(out, `${JSON.stringify(await exportHeader(store, options))}\n`);
  const tables = await store.tables();
  const counts: Record<string, number> = {};
  for (const { type, table: name } of EXPORTED_TABLES) {
    const table = tables.get(name);
    if (!table) continue;
    const leftOut = omitted(name, options);
    const columns = table.columns.filter((c) => !leftOut.has(c.name));
    const read: TableInfo = { ...table, columns: table.columns };
    counts[type] = 0;
    let after: unknown[] | null = null;
    for (;;) {
      const rows: Row[] = await store.page(read, after, pageSize);
      if (rows.length === 0) break;
      let text = "";
      for (const row of rows) {
        const exported: Row = {};
        for (const c of columns) exported[c.name] = toExported(row[c.name], c.kind);
        text += `${JSON.stringify({ type, row: exported })}\n`;
      }
      await write(out, text);
      counts[type] += rows.length;
      options.onProgress?.(type, counts[type]);
      const last = rows[rows.length - 1] as Row;
      after = table.primaryKey.map((k) => last[k]);
      if (rows.length < pageSize) break;
    }
  }
  await write(out, `${JSON.stringify({ type: "end", counts })}\n`);
  return counts;
}
