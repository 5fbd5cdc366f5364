import { KeywardError } from "../core/errors.js";

/**
 * Reading import files (docs/migrating.md): JSON lines or CSV, streamed chunk by chunk, so a
 * file of a million records is never held whole. Each record comes with the line it starts on;
 * a line that cannot be read is an error item, never a reason to stop. Error texts never quote
 * the input (it holds keys and digests).
 */

export type ImportInputFormat = "jsonl" | "csv";

export type ImportItem = { line: number; record: Record<string, unknown> } | { line: number; error: string };

export interface ReadImportOptions {
  /** Default `auto`: JSON lines when the first character that is not blank is `{`, else CSV. */
  format?: ImportInputFormat | "auto";
  /** Called with the size of each chunk read (progress). */
  onBytes?: (bytes: number) => void;
  /** More input than this is refused (PAYLOAD_TOO_LARGE). */
  maxBytes?: number;
}

/** A line (or a CSV record) longer than this is a bad record, and is not held: memory stays bounded whatever the input. */
export const MAX_RECORD_CHARS = 1 << 20;
const TOO_LONG = "longer than 1 MiB";

/** The format a file name says, or `auto`. */
export function inputFormatOf(fileName: string): ImportInputFormat | "auto" {
  if (/\.csv$/i.test(fileName)) return "csv";
  if (/\.(jsonl|ndjson|json)$/i.test(fileName)) return "jsonl";
  return "auto";
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

/** CSV columns holding lists: a JSON list, or items separated by spaces or commas. */
const LIST_COLUMNS = new Set(["scopes", "allowed_cidrs"]);
/** CSV columns holding JSON objects. */
const JSON_COLUMNS = new Set(["metadata", "rate_limit", "quota"]);

/** One CSV row as a record: empty cells are absent, structured columns parsed, `metadata.<name>` columns gathered. */
function csvRecord(header: readonly string[], cells: readonly string[]): Record<string, unknown> | string {
  if (cells.length !== header.length) return `${cells.length} cells where the header has ${header.length} columns`;
  const record: Record<string, unknown> = {};
  for (let i = 0; i < header.length; i++) {
    const name = header[i] as string;
    const cell = cells[i] as string;
    if (cell === "") continue;
    if (name.startsWith("metadata.")) {
      const field = name.slice("metadata.".length);
      if (record.metadata !== undefined && !isObject(record.metadata)) return "metadata and metadata.<name> columns cannot be mixed";
      record.metadata ??= {};
      (record.metadata as Record<string, unknown>)[field] = cell;
    } else if (LIST_COLUMNS.has(name)) {
      if (cell.startsWith("[")) {
        try {
          record[name] = JSON.parse(cell);
        } catch {
          return `${name}: not a valid JSON list`;
        }
      } else record[name] = cell.split(/[\s,]+/).filter(Boolean);
    } else if (JSON_COLUMNS.has(name)) {
      try {
        const parsed = JSON.parse(cell);
        record[name] = name === "metadata" && isObject(record.metadata) && isObject(parsed) ? { ...parsed, ...record.metadata } : parsed;
      } catch {
        return `${name}: not valid JSON`;
      }
    } else if (name === "concurrency") {
      record[name] = /^\d{1,9}$/.test(cell) ? Number(cell) : cell;
    } else if (name === "enabled") {
      record[name] = cell === "true" ? true : cell === "false" ? false : cell;
    } else record[name] = cell;
  }
  return record;
}

/**
 * A CSV reader (RFC 4180: quoted cells, doubled quotes, line breaks inside quotes), fed one line
 * at a time. The first row is the header.
 */
class CsvRows {
  private header: string[] | null = null;
  private cells: string[] = [];
  private cell = "";
  private quoted = false;
  private startLine = 0;

  /** The record this line completes (with the line it started on), an error, or null while a quoted cell goes on. */
  push(text: string, line: number): ImportItem | null {
    if (!this.quoted) {
      this.startLine = line;
      if (text.length === 0) return null;
      // Most rows have no quotes: split them at once.
      if (!text.includes('"')) return this.row(text.split(","));
    } else this.cell += "\n";
    for (let i = 0; i < text.length; i++) {
      const char = text[i];
      if (this.quoted) {
        if (char !== '"') this.cell += char;
        else if (text[i + 1] === '"') {
          this.cell += '"';
          i++;
        } else this.quoted = false;
      } else if (char === '"') {
        if (this.cell.length > 0) return this.fail("a quote inside an unquoted cell");
        this.quoted = true;
      } else if (char === ",") {
        this.cells.push(this.cell);
        this.cell = "";
      } else this.cell += char;
    }
    if (this.quoted) return this.cell.length > MAX_RECORD_CHARS ? this.fail(`a record ${TOO_LONG}`) : null;
    this.cells.push(this.cell);
    const cells = this.cells;
    this.cells = [];
    this.cell = "";
    return this.row(cells);
  }

  /** A quoted cell still open at the end of the input. */
  end(): ImportItem | null {
    if (!this.quoted) return null;
    this.quoted = false;
    return { line: this.startLine, error: "a quoted cell is never closed" };
  }

  private fail(error: string): ImportItem {
    this.cells = [];
    this.cell = "";
    this.quoted = false;
    return { line: this.startLine, error };
  }

  private row(cells: string[]): ImportItem | null {
    if (this.header === null) {
      this.header = cells.map((name) => name.trim());
      return null;
    }
    if (cells.length === 1 && cells[0] === "") return null;
    const record = csvRecord(this.header, cells);
    return typeof record === "string" ? { line: this.startLine, error: record } : { line: this.startLine, record };
  }
}

/** The records of `input` (chunks of UTF-8), in order, each with its line number (1-based). */
export async function* readImportRecords(
  input: AsyncIterable<Buffer | string>,
  options: ReadImportOptions = {},
): AsyncGenerator<ImportItem> {
  const decoder = new TextDecoder("utf-8");
  let format = options.format && options.format !== "auto" ? options.format : null;
  const csv = new CsvRows();
  let pending = "";
  let line = 0;
  let bytes = 0;
  let first = true;
  /** Inside a line past MAX_RECORD_CHARS: dropped until its end. */
  let overlong = false;

  const take = (text: string): ImportItem | null => {
    line++;
    const trimmed = text.endsWith("\r") ? text.slice(0, -1) : text;
    if (format === "csv") return csv.push(trimmed, line);
    if (trimmed.trim().length === 0) return null;
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch {
      // Never the parser's message: it quotes the input.
      return { line, error: "not valid JSON" };
    }
    return isObject(value) ? { line, record: value } : { line, error: "not a JSON object" };
  };

  for await (const chunk of input) {
    bytes += chunk.length;
    if (options.maxBytes !== undefined && bytes > options.maxBytes)
      throw new KeywardError("PAYLOAD_TOO_LARGE", `an import sent this way holds at most ${options.maxBytes} bytes: use the CLI for more`);
    options.onBytes?.(chunk.length);
    pending += typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
    if (overlong) {
      const end = pending.indexOf("\n");
      if (end < 0) {
        pending = "";
        continue;
      }
      overlong = false;
      pending = pending.slice(end + 1);
      yield { line: ++line, error: `a line ${TOO_LONG}` };
    }
    if (first && pending.length > 0) {
      if (pending.charCodeAt(0) === 0xfeff) pending = pending.slice(1);
      const start = pending.trimStart();
      if (start.length === 0) continue;
      first = false;
      format ??= start.startsWith("{") ? "jsonl" : "csv";
    }
    let from = 0;
    for (let at = pending.indexOf("\n"); at >= 0; at = pending.indexOf("\n", from)) {
      const item = take(pending.slice(from, at));
      from = at + 1;
      if (item) yield item;
    }
    pending = pending.slice(from);
    if (pending.length > MAX_RECORD_CHARS) {
      overlong = true;
      pending = "";
    }
  }
  pending += decoder.decode();
  if (overlong) {
    yield { line: ++line, error: `a line ${TOO_LONG}` };
    pending = "";
  }
  if (pending.length > 0) {
    format ??= pending.trimStart().startsWith("{") ? "jsonl" : "csv";
    const item = take(pending);
    if (item) yield item;
  }
  const open = format === "csv" ? csv.end() : null;
  if (open) yield open;
}
