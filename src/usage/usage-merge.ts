import type { LastUse, UsageCount } from "../ports/usage-recorder.js";

/** The identity of a usage row: one key's outcome in one minute. */
export const usageRowId = (minute: number, keyId: string, outcome: string): string => `${minute} ${keyId} ${outcome}`;

/**
 * Sums usage batches: counts of the same row add up, and each key keeps its latest use. Used to
 * put a failed flush back into the buffer and to fold many journaled flushes into one write.
 */
export class UsageMerge {
  readonly counts = new Map<string, UsageCount>();
  readonly lastUses = new Map<string, LastUse>();

  addCount(c: UsageCount): void {
    const id = usageRowId(c.minute, c.keyId, c.outcome);
    const existing = this.counts.get(id);
    if (existing) existing.count += c.count;
    else this.counts.set(id, { ...c });
  }

  addLastUse(use: LastUse): void {
    const existing = this.lastUses.get(use.keyId);
    if (!existing || existing.at < use.at) this.lastUses.set(use.keyId, { ...use });
  }
}

/*
 * One flush as a journal row (no key material: ids, owners, outcomes, times, addresses). Text,
 * one line a row, built by concatenation: at 100,000 keys in use a flush carries ~20,000 counts
 * and as many last uses, and the JSON arrays it used to be cost 2–4 times as much to build and
 * write (and 1.6 times the bytes), every second, on the server's thread (docs/benchmarks.md,
 * Profiling 13). Layout:
 *
 *   u2                        format marker (a v1 row is JSON and starts with "{")
 *   =<minute>\t<outcome>      the minute and outcome of the count lines that follow
 *   <keyId>\t<count>\t<owner>
 *   @                         the last uses follow
 *   <keyId>\t<at>[\t<ip>]     `at` as the difference from the line before (the first from 0);
 *                             no third field: the address of the line before; an empty one:
 *                             none; else "=" and the address
 *
 * Key ids, outcomes and owner ids cannot hold a tab, a newline or a backslash (their grammars);
 * an address from a caller of POST /v1/keys/verify might, so owners and addresses are escaped.
 */
const FORMAT_V2 = "u2";
const NEEDS_ESCAPE = /[\\\t\n]/;
const ESCAPED = /\\[\\tn]/g;

function escapeField(value: string): string {
  if (!NEEDS_ESCAPE.test(value)) return value;
  return value.replace(/[\\\t\n]/g, (c) => (c === "\\" ? "\\\\" : c === "\t" ? "\\t" : "\\n"));
}

function unescapeField(value: string): string {
  if (!value.includes("\\")) return value;
  return value.replace(ESCAPED, (s) => (s === "\\\\" ? "\\" : s === "\\t" ? "\t" : "\n"));
}

const encodeAddress = (ip: string | null): string => (ip === null ? "" : `=${escapeField(ip)}`);
const decodeAddress = (field: string): string | null => (field === "" ? null : unescapeField(field.slice(1)));

/**
 * Builds one journal row line by line, so a flush encodes its held rows as they are, without a
 * list of copies first (at 100,000 keys in use nearly every request adds a line).
 */
export class UsageBatchBuilder {
  private out = FORMAT_V2;
  private minute = Number.NaN;
  private outcome = "";
  private inUses = false;
  private at = 0;
  private ip: string | null | undefined;
  /** The owner of the line before, escaped: most lines of a flush share a handful of owners. */
  private owner = "";
  private escapedOwner = "";

  /** Count lines first: all of them before the first last use. */
  addCount(minute: number, outcome: string, keyId: string, count: number, owner: string): void {
    if (this.inUses) throw new Error("usage batch: count lines come before the last uses");
    if (minute !== this.minute || outcome !== this.outcome) {
      this.minute = minute;
      this.outcome = outcome;
      this.out += `\n=${minute}\t${outcome}`;
    }
    if (owner !== this.owner) {
      this.owner = owner;
      this.escapedOwner = escapeField(owner);
    }
    this.out += `\n${keyId}\t${count}\t${this.escapedOwner}`;
  }

  addLastUse(keyId: string, at: number, ip: string | null): void {
    if (!this.inUses) {
      this.inUses = true;
      this.out += "\n@";
    }
    this.out += ip === this.ip ? `\n${keyId}\t${at - this.at}` : `\n${keyId}\t${at - this.at}\t${encodeAddress(ip)}`;
    this.at = at;
    this.ip = ip;
  }

  toString(): string {
    return this.inUses ? this.out : `${this.out}\n@`;
  }
}

export function encodeUsageBatch(counts: readonly UsageCount[], lastUses: readonly LastUse[]): string {
  const batch = new UsageBatchBuilder();
  for (const c of counts) batch.addCount(c.minute, c.outcome, c.keyId, c.count, c.owner);
  for (const use of lastUses) batch.addLastUse(use.keyId, use.at, use.ip);
  return batch.toString();
}

/** Adds one journal row to `merge`: this format, or the JSON of journals written before it. */
export function decodeUsageBatch(payload: string, merge: UsageMerge): void {
  if (!payload.startsWith(FORMAT_V2)) {
    decodeJsonBatch(payload, merge);
    return;
  }
  const lines = payload.split("\n");
  let i = 1;
  let minute = 0;
  let outcome = "" as UsageCount["outcome"];
  for (; i < lines.length && lines[i] !== "@"; i++) {
    const fields = (lines[i] as string).split("\t");
    if ((fields[0] as string).startsWith("=")) {
      minute = Number((fields[0] as string).slice(1));
      outcome = fields[1] as UsageCount["outcome"];
    } else {
      merge.addCount({ minute, keyId: fields[0] as string, owner: unescapeField(fields[2] ?? ""), outcome, count: Number(fields[1]) });
    }
  }
  let at = 0;
  let ip: string | null = null;
  for (i++; i < lines.length; i++) {
    const fields = (lines[i] as string).split("\t");
    at += Number(fields[1]);
    if (fields.length > 2) ip = decodeAddress(fields[2] as string);
    merge.addLastUse({ keyId: fields[0] as string, at, ip });
  }
}

/** The first journal format: JSON positional arrays. */
function decodeJsonBatch(payload: string, merge: UsageMerge): void {
  const batch = JSON.parse(payload) as {
    c: [number, string, string, UsageCount["outcome"], number][];
    u: [string, number, string | null][];
  };
  for (const [minute, keyId, owner, outcome, count] of batch.c) merge.addCount({ minute, keyId, owner, outcome, count });
  for (const [keyId, at, ip] of batch.u) merge.addLastUse({ keyId, at, ip });
}
