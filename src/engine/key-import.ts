import { randomBytes } from "node:crypto";
import { encodeBase62Fixed } from "../core/base62.js";
import { KeywardError } from "../core/errors.js";
import { type HashSecret, hashApiKey } from "../core/hashing.js";
import { type Environment, formatKeyRef, parseApiKey } from "../core/key-format.js";
import {
  DIGEST_VARIANTS,
  type DigestVariant,
  importedLegacyDigest,
  keyFormatLabel,
  LEGACY_MAX_KEY_LENGTH,
  type LegacyFormat,
  type LegacyFormats,
  legacyDigestOf,
  legacyRef,
} from "../core/legacy-formats.js";
import { type AuditEvent, type KeyRecord, OWNER_TYPES, type OwnerRef, type OwnerType, type RequestContext } from "../core/model.js";
import { newKeyRecord } from "../core/new-key-record.js";
import { generateId, generateRandomBase62, type RandomBytes } from "../core/random.js";
import { parseTimestamp } from "../core/timestamps.js";
import type { ImportMatch, KeyImportSession, KeyStore } from "../ports/key-store.js";
import { buildAuditEvent } from "./audit.js";
import type { ImportItem } from "./import-records.js";
import { type CreateKeyInput, validateImportedKeyInput } from "./key-input.js";

/** What an import needs of the engine. */
export interface ImportDependencies {
  store: KeyStore;
  /** The deployment's key prefix: plaintexts shaped like its keys are Keyward keys. */
  prefix: string;
  /** The current hash secret, for Keyward plaintexts. */
  hashSecret: HashSecret | undefined;
  legacy: LegacyFormats;
  now: () => number;
}

export interface ImportOptions {
  /** Validate and match everything, write nothing (not even the audit event). */
  dryRun?: boolean;
  /** Stop at the first bad record; the batch it is in is not written (batches before it are). */
  strict?: boolean;
  /** The legacy format of records that name none (`--format`). */
  format?: string;
  /** Records per transaction. Default 5,000. */
  batchSize?: number;
  /** Where the records came from (a file name, `api`), for the audit event. */
  source?: string;
  /** Bad records reported with their line and reason; past it they are only counted. Default 1,000. */
  maxReportedErrors?: number;
  /** Called after each batch. */
  onProgress?: (progress: ImportProgress) => void;
}

export interface ImportProgress {
  /** Records read (good and bad). */
  records: number;
  created: number;
  /** Records matched to a key already stored (on external id or digest): nothing changed. */
  unchanged: number;
  failed: number;
}

export interface ImportRecordError {
  line: number;
  reason: string;
}

export interface ImportReport extends ImportProgress {
  importId: string;
  dryRun: boolean;
  /** False when `strict` stopped it at a bad record: what came after was not read. */
  completed: boolean;
  /** The line `strict` stopped at. */
  stoppedAtLine: number | null;
  /** The first `maxReportedErrors` bad records, in order. */
  errors: ImportRecordError[];
  /** Bad records past those. */
  errorsOmitted: number;
  /** Keys created (in a dry run: that would be) per format: `keyward`, `legacy:<name>`. */
  createdByFormat: Record<string, number>;
  /** The import's one audit event; null for a dry run. */
  auditEvent: AuditEvent | null;
}

/** Every field a record may carry (docs/migrating.md). */
const RECORD_FIELDS: ReadonlySet<string> = new Set([
  "key",
  "digest",
  "digest_variant",
  "hmac_secret",
  "format",
  "last4",
  "external_id",
  "owner",
  "name",
  "environment",
  "scopes",
  "expires_at",
  "rate_limit",
  "concurrency",
  "quota",
  "allowed_cidrs",
  "metadata",
  "created_at",
  "enabled",
]);

const EXTERNAL_ID = /^[^\u0000-\u001f\u007f]{1,200}$/;
const LAST4 = /^[\x21-\x7e]{1,4}$/;
const DEFAULT_NAME = "imported key";

/**
 * Ids of imported keys, `key_` and 20 base62 characters as every key id: the time (8), a counter
 * of this process (4), then 8 random characters (47 bits). Ordered by creation, so a million
 * inserts append to the primary-key index instead of each landing on a random page of it (a
 * page read and a page written per key, once the index outgrows the cache).
 */
function sortableKeyIds(random: RandomBytes): () => string {
  let counter = 0;
  return () => {
    counter = (counter + 1) % 14_776_336; // 62^4
    return `key_${encodeBase62Fixed(Date.now(), 8)}${encodeBase62Fixed(counter, 4)}${generateRandomBase62(8, random)}`;
  };
}

/** Random bytes drawn a page at a time: a million key ids without a million calls into the CSPRNG. */
function pooledRandom(): RandomBytes {
  let pool = randomBytes(1 << 16);
  let offset = 0;
  return (size) => {
    if (offset + size > pool.length) {
      pool = randomBytes(Math.max(1 << 16, size));
      offset = 0;
    }
    const out = pool.subarray(offset, offset + size);
    offset += size;
    return out;
  };
}

function parseOwner(value: unknown): OwnerRef | string {
  if (typeof value === "string") {
    const colon = value.indexOf(":");
    const type = value.slice(0, colon) as OwnerType;
    if (colon < 0 || !OWNER_TYPES.includes(type)) return "owner must be user:<id>, application:<id> or organization:<id>";
    return { type, id: value.slice(colon + 1) };
  }
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const { type, id, ...rest } = value as Record<string, unknown>;
    if (Object.keys(rest).length > 0 || !OWNER_TYPES.includes(type as OwnerType) || typeof id !== "string")
      return "owner must be user:<id>, application:<id>, organization:<id> or {type, id}";
    return { type: type as OwnerType, id };
  }
  return value === undefined ? "owner is required" : "owner must be user:<id>, application:<id> or organization:<id>";
}

function parseTime(value: unknown, field: string): number | null | string {
  if (value === undefined || value === null) return null;
  const ms = typeof value === "string" ? parseTimestamp(value) : null;
  return ms === null ? `${field} must be an RFC 3339 date-time such as 2026-01-31T12:00:00Z` : ms;
}

/** What an error may say of a field name: it came from the input, so only a short, plain one. */
const fieldName = (name: string): string => (/^[a-z_.]{1,40}$/.test(name) ? name : "(a field)");

interface Secret {
  digest: string;
  hashVersion: number;
  ref: string;
  legacyFormat: string | null;
  environment: Environment | null;
}

/**
 * Builds the key a record describes, or says why it cannot. Imported records are checked as a new
 * key is (key-input.ts), except that an expiry may be past; never echoing a key or a digest.
 */
class RecordReader {
  private readonly nextId = sortableKeyIds(pooledRandom());

  constructor(
    private readonly deps: ImportDependencies,
    private readonly defaultFormat: LegacyFormat | null,
    private readonly now: number,
  ) {}

  read(raw: Record<string, unknown>): KeyRecord | string {
    for (const field in raw) if (!RECORD_FIELDS.has(field)) return `unknown field ${fieldName(field)}`;
    const owner = parseOwner(raw.owner);
    if (typeof owner === "string") return owner;
    let externalId: string | null = null;
    if (raw.external_id !== undefined && raw.external_id !== null) {
      const id = typeof raw.external_id === "number" && Number.isSafeInteger(raw.external_id) ? String(raw.external_id) : raw.external_id;
      if (typeof id !== "string" || !EXTERNAL_ID.test(id)) return "external_id must be 1 to 200 characters without control characters";
      externalId = id;
    }
    const secret = raw.key !== undefined ? this.plaintext(raw) : this.digest(raw);
    if (typeof secret === "string") return secret;
    if (raw.environment !== undefined && secret.environment !== null && raw.environment !== secret.environment)
      return `environment ${raw.environment === "sandbox" ? "sandbox" : "production"} does not fit the key, which is a ${secret.environment} key`;
    const environment = (raw.environment ?? secret.environment ?? "production") as Environment;
    const expiresAt = parseTime(raw.expires_at, "expires_at");
    if (typeof expiresAt === "string") return expiresAt;
    const createdAt = parseTime(raw.created_at, "created_at");
    if (typeof createdAt === "string") return createdAt;
    if (raw.enabled !== undefined && typeof raw.enabled !== "boolean") return "enabled must be true or false";
    const input: CreateKeyInput = {
      owner,
      name: (raw.name ?? DEFAULT_NAME) as string,
      environment,
      scopes: (raw.scopes ?? []) as string[],
      expiresAt,
      rateLimit: (raw.rate_limit ?? null) as CreateKeyInput["rateLimit"],
      concurrency: (raw.concurrency ?? null) as number | null,
      quota: (raw.quota ?? null) as CreateKeyInput["quota"],
      allowedCidrs: (raw.allowed_cidrs ?? []) as string[],
      metadata: (raw.metadata ?? {}) as Record<string, unknown>,
    };
    try {
      validateImportedKeyInput(input);
    } catch (error) {
      return error instanceof KeywardError ? error.message : "invalid record";
    }
    // Every field named: an object spread here cost ~30 µs a record (V8's slow path), half an import's time.
    const record = newKeyRecord({
      owner: input.owner,
      name: input.name,
      environment: input.environment,
      scopes: input.scopes,
      expiresAt: input.expiresAt,
      rateLimit: input.rateLimit,
      concurrency: input.concurrency,
      quota: input.quota,
      allowedCidrs: input.allowedCidrs,
      metadata: input.metadata,
      id: this.nextId(),
      secret,
      now: this.now,
      enabled: (raw.enabled as boolean | undefined) ?? true,
      legacyFormat: secret.legacyFormat,
      externalId,
    });
    if (createdAt !== null) record.createdAt = createdAt;
    return record;
  }

  private namedFormat(raw: Record<string, unknown>): LegacyFormat | null | string {
    if (raw.format === undefined || raw.format === null) return this.defaultFormat;
    if (typeof raw.format !== "string") return "format must be the name of a declared legacy format";
    const format = this.deps.legacy.get(raw.format);
    return format ?? `format ${fieldName(raw.format)} is not declared in KEYWARD_LEGACY_FORMATS`;
  }

  /** A plaintext: a key of this deployment, or of a declared legacy format; hashed here, never kept. */
  private plaintext(raw: Record<string, unknown>): Secret | string {
    const key = raw.key;
    if (raw.digest !== undefined) return "a record carries key (the plaintext) or digest, not both";
    if (typeof key !== "string" || key.length === 0 || key.length > LEGACY_MAX_KEY_LENGTH)
      return `key must be a string of 1 to ${LEGACY_MAX_KEY_LENGTH} characters`;
    const { prefix, hashSecret, legacy } = this.deps;
    const parsed = parseApiKey(key, prefix);
    if (parsed) {
      if (raw.format !== undefined && raw.format !== null && raw.format !== "keyward")
        return "the key is a key of this deployment, not of a legacy format";
      return {
        digest: hashApiKey(key, hashSecret),
        hashVersion: hashSecret?.version ?? 0,
        ref: formatKeyRef(key),
        legacyFormat: null,
        environment: parsed.environment,
      };
    }
    if (key.startsWith(`${prefix}_`))
      return `the key is shaped like a key of this deployment (${prefix}_…) but its checksum or length is wrong`;
    if (raw.format === "keyward") return "the key is not a key of this deployment";
    const named = this.namedFormat(raw);
    if (typeof named === "string") return named;
    const format = named ?? legacy.match(key);
    if (!format) return "the key is of no declared format: neither a key of this deployment nor of a format of KEYWARD_LEGACY_FORMATS";
    if (!legacy.fits(format, key)) return `the key does not match format ${format.name}`;
    return {
      digest: legacyDigestOf(format, key),
      hashVersion: hashSecret?.version ?? 0,
      ref: legacyRef(format, key, null),
      legacyFormat: format.name,
      environment: null,
    };
  }

  /** A digest the old system stored: always a key of a declared legacy format. */
  private digest(raw: Record<string, unknown>): Secret | string {
    if (raw.digest === undefined) return "a record carries key (the plaintext) or digest (with digest_variant)";
    if (typeof raw.digest !== "string" || raw.digest.length > 128) return "digest must be a string";
    const variant = raw.digest_variant;
    if (!DIGEST_VARIANTS.includes(variant as DigestVariant)) return `digest_variant must be one of ${DIGEST_VARIANTS.join(", ")}`;
    if (raw.hmac_secret !== undefined && typeof raw.hmac_secret !== "string") return "hmac_secret must be the name of a secret";
    if (raw.last4 !== undefined && (typeof raw.last4 !== "string" || !LAST4.test(raw.last4)))
      return "last4 must be the last 1 to 4 printable characters of the key";
    if (raw.format === "keyward") return "a digest record is a key of a legacy format: name it (format, or --format)";
    const format = this.namedFormat(raw);
    if (typeof format === "string") return format;
    if (format === null) return "a digest record needs its legacy format: format in the record, or --format";
    const stored = importedLegacyDigest(format, variant as DigestVariant, raw.digest, raw.hmac_secret as string | undefined);
    if ("error" in stored) return stored.error;
    return {
      digest: stored.digest,
      hashVersion: this.deps.hashSecret?.version ?? 0,
      ref: legacyRef(format, null, (raw.last4 as string | undefined) ?? null),
      legacyFormat: format.name,
      environment: null,
    };
  }
}

/** A stored (or already accepted) key a record is compared with. */
interface Known {
  id: string;
  externalId: string | null;
}

/**
 * Whether a record is a new key, one already there (the same external id and secret, or the same
 * secret where one side has no external id), or in conflict with what is there.
 */
function classify(key: KeyRecord, byExternalId: Known | undefined, byDigest: Known | undefined): "new" | "unchanged" | string {
  if (!byExternalId && !byDigest) return "new";
  if (byExternalId && byDigest)
    return byExternalId.id === byDigest.id
      ? "unchanged"
      : `external_id is already imported as ${byExternalId.id}, and this secret as another key, ${byDigest.id}`;
  if (byExternalId) return `external_id is already imported as ${byExternalId.id}, with another secret`;
  const other = byDigest as Known;
  if (other.externalId === null || key.externalId === null) return "unchanged";
  return `this secret is already imported as ${other.id}, under another external_id`;
}

interface Pending {
  line: number;
  key: KeyRecord;
}

/**
 * Imports keys from `items` (docs/migrating.md): batched, matched on external id or digest (a
 * repeated run creates nothing), bad records reported by line without stopping the rest (unless
 * `strict`), and one audit event for the whole import.
 */
export async function importKeys(
  deps: ImportDependencies,
  items: AsyncIterable<ImportItem>,
  context: RequestContext,
  options: ImportOptions = {},
): Promise<ImportReport> {
  const openImport = deps.store.openImport?.bind(deps.store);
  if (!openImport) throw new KeywardError("INVALID_CONFIGURATION", "this store cannot import keys");
  let defaultFormat: LegacyFormat | null = null;
  if (options.format !== undefined) {
    defaultFormat = deps.legacy.get(options.format) ?? null;
    if (!defaultFormat)
      throw new KeywardError("VALIDATION_FAILED", "the format named is not declared in KEYWARD_LEGACY_FORMATS", {
        errors: [{ field: "format", message: "not a declared legacy format" }],
      });
  }
  const dryRun = options.dryRun === true;
  const batchSize = Math.min(Math.max(Math.floor(options.batchSize ?? 5_000), 1), 50_000);
  const maxErrors = options.maxReportedErrors ?? 1_000;
  const started = deps.now();
  const report: ImportReport = {
    importId: generateId("imp"),
    dryRun,
    completed: true,
    stoppedAtLine: null,
    records: 0,
    created: 0,
    unchanged: 0,
    failed: 0,
    errors: [],
    errorsOmitted: 0,
    createdByFormat: {},
    auditEvent: null,
  };
  const fail = (line: number, reason: string) => {
    report.failed++;
    if (report.errors.length < maxErrors) report.errors.push({ line, reason });
    else report.errorsOmitted++;
  };
  const reader = new RecordReader(deps, defaultFormat, started);
  const session = await openImport({ dryRun });

  /**
   * The writes still going on, oldest first, with the records each writes: the next batch is read
   * and checked meanwhile (on PostgreSQL the database works while this process parses), and
   * matched on the store and on these, so it sees everything before it. At most
   * `session.writers` are out at once.
   */
  const writing: { done: Promise<void>; keys: readonly KeyRecord[] }[] = [];
  const written = async (): Promise<void> => {
    while (writing.length > 0) await writing.shift()?.done;
  };

  /** Matches a batch on what is stored and on the records before it, in order, as a run of single records would; starts its write. */
  const flush = async (batch: Pending[]): Promise<void> => {
    while (writing.length >= Math.max(1, session.writers ?? 1)) await writing.shift()?.done;
    if (batch.length === 0) return;
    const externalIds: string[] = [];
    for (const { key } of batch) if (key.externalId !== null) externalIds.push(key.externalId);
    const matches = await session.findMatches(
      externalIds,
      batch.map(({ key }) => key.digest),
    );
    const byExternalId = new Map<string, Known>();
    const byDigest = new Map<string, Known>();
    const know = (known: Known & { digest: string }) => {
      if (known.externalId !== null) byExternalId.set(known.externalId, known);
      byDigest.set(known.digest, known);
    };
    for (const match of matches) know(match);
    // Records of batches still being written are not in the store yet: known all the same.
    for (const out of writing) for (const key of out.keys) know(key);
    const fresh: Pending[] = [];
    for (const pending of batch) {
      const { key } = pending;
      const verdict = classify(key, key.externalId === null ? undefined : byExternalId.get(key.externalId), byDigest.get(key.digest));
      if (verdict === "new") {
        fresh.push(pending);
        know(key);
      } else if (verdict === "unchanged") report.unchanged++;
      else fail(pending.line, verdict);
    }
    const keys = fresh.map((pending) => pending.key);
    const done = session.insert(keys).then((skipped) => settle(fresh, skipped));
    // Failures surface when it is awaited; never as an unhandled rejection meanwhile.
    done.catch(() => {});
    writing.push({ done, keys });
  };

  /** Counts what a batch's write created; records another writer stored first are matched again. */
  const settle = async (fresh: readonly Pending[], skipped: ReadonlySet<string>): Promise<void> => {
    const raced: Pending[] = [];
    for (const pending of fresh) {
      if (skipped.has(pending.key.id)) {
        raced.push(pending);
        continue;
      }
      report.created++;
      const label = keyFormatLabel(pending.key.legacyFormat);
      report.createdByFormat[label] = (report.createdByFormat[label] ?? 0) + 1;
    }
    if (raced.length > 0) await settleRaced(session, raced, report, fail);
    options.onProgress?.(progressOf(report));
  };

  let batch: Pending[] = [];
  let failure: unknown = null;
  try {
    for await (const item of items) {
      report.records++;
      const built = "error" in item ? item.error : reader.read(item.record);
      if (typeof built === "string") {
        fail(item.line, built);
        if (options.strict) {
          // The batch the bad record is in is not written; the batches before it are.
          report.completed = false;
          report.stoppedAtLine = item.line;
          report.records -= batch.length;
          batch = [];
          break;
        }
        continue;
      }
      batch.push({ line: item.line, key: built });
      if (batch.length >= batchSize) {
        const full = batch;
        batch = [];
        await flush(full);
      }
    }
    await flush(batch);
    await written();
  } catch (error) {
    failure = error;
    report.completed = false;
  } finally {
    // A write still going on (the reading failed, or --strict stopped it) ends before the session does.
    await written().catch((error: unknown) => {
      failure ??= error;
      report.completed = false;
    });
    await session.close().catch(() => {});
  }
  // Bad records found while matching are known a batch after those found while reading.
  report.errors.sort((a, b) => a.line - b.line);
  if (!dryRun) {
    const audit = buildAuditEvent(context, deps.now(), "keys.imported", { type: "system", id: report.importId }, null, {
      source: options.source ?? "unknown",
      completed: report.completed,
      records: report.records,
      created: report.created,
      unchanged: report.unchanged,
      failed: report.failed,
      created_by_format: report.createdByFormat,
      ...(report.stoppedAtLine !== null ? { stopped_at_line: report.stoppedAtLine } : {}),
      ...(failure !== null ? { error: "the import stopped on a store error" } : {}),
    });
    try {
      await deps.store.appendAuditEvent(audit);
      report.auditEvent = audit;
    } catch (error) {
      failure ??= error;
    }
  }
  if (failure !== null) throw failure;
  return report;
}

/** The report as the API and `keyward import --json` show it (snake_case). */
export function importReportJson(report: ImportReport) {
  return {
    import_id: report.importId,
    dry_run: report.dryRun,
    completed: report.completed,
    stopped_at_line: report.stoppedAtLine,
    records: report.records,
    created: report.created,
    unchanged: report.unchanged,
    failed: report.failed,
    created_by_format: report.createdByFormat,
    errors: report.errors,
    errors_omitted: report.errorsOmitted,
    audit_event_id: report.auditEvent?.id ?? null,
  };
}

const progressOf = (report: ImportReport): ImportProgress => ({
  records: report.records,
  created: report.created,
  unchanged: report.unchanged,
  failed: report.failed,
});

/** Records another writer stored first, between the match and the insert: matched again, now that they are there. */
async function settleRaced(
  session: KeyImportSession,
  raced: readonly Pending[],
  report: ImportReport,
  fail: (line: number, reason: string) => void,
): Promise<void> {
  const matches: ImportMatch[] = await session.findMatches(
    raced.flatMap(({ key }) => (key.externalId === null ? [] : [key.externalId])),
    raced.map(({ key }) => key.digest),
  );
  for (const { line, key } of raced) {
    const byExternalId = key.externalId === null ? undefined : matches.find((m) => m.externalId === key.externalId);
    const verdict = classify(
      key,
      byExternalId,
      matches.find((m) => m.digest === key.digest),
    );
    if (verdict === "unchanged") report.unchanged++;
    else fail(line, verdict === "new" ? "another writer stored a key with this key's id at the same time: run the import again" : verdict);
  }
}
