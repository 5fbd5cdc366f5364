import { createReadStream, fstatSync, openSync } from "node:fs";
import type { RequestContext } from "../core/model.js";
import { type ImportInputFormat, inputFormatOf, readImportRecords } from "../engine/import-records.js";
import type { ImportProgress, ImportReport } from "../engine/key-import.js";

export { importReportJson } from "../engine/key-import.js";

import type { Keyward } from "../engine/keyward.js";

export interface ImportCommandOptions {
  format?: string;
  inputFormat?: string;
  dryRun?: boolean;
  strict?: boolean;
  batchSize: number;
  /** A progress line on standard error, when it is a terminal. */
  progress: boolean;
}

const count = (n: number): string => n.toLocaleString("en-US");

function clock(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h > 0 ? `${h}:${String(m).padStart(2, "0")}` : m}:${String(s % 60).padStart(2, "0")}`;
}

/**
 * The progress line of `keyward import` on a terminal: records, records/s, what became of them,
 * and the ETA from the share of the file read (none for standard input). At most 5 a second.
 */
class ProgressLine {
  private readonly started = performance.now();
  private shown = 0;
  private bytes = 0;
  private last: ImportProgress | null = null;

  constructor(
    private readonly totalBytes: number | null,
    private readonly write: (text: string) => void,
  ) {}

  read(bytes: number): void {
    this.bytes += bytes;
  }

  update(progress: ImportProgress, force = false): void {
    this.last = progress;
    const now = performance.now();
    if (!force && now - this.shown < 200) return;
    this.shown = now;
    const seconds = (now - this.started) / 1000;
    const rate = seconds > 0 ? progress.records / seconds : 0;
    const share = this.totalBytes ? Math.min(1, this.bytes / this.totalBytes) : null;
    const eta = share !== null && share > 0 ? `  ${Math.floor(share * 100)}%  ETA ${clock(seconds / share - seconds)}` : "";
    this.write(
      `\r\x1b[K  ${count(progress.records)} records  ${count(Math.round(rate))}/s  created ${count(progress.created)}  unchanged ${count(progress.unchanged)}  failed ${count(progress.failed)}${eta}`,
    );
  }

  end(): void {
    if (this.last) this.update(this.last, true);
    this.write("\n");
  }
}

/** `keyward import <file>`: reads the file (or standard input for `-`) as it goes, and imports it. */
export async function importFromFile(
  keyward: Keyward,
  file: string,
  options: ImportCommandOptions,
  context: RequestContext,
): Promise<ImportReport> {
  const stdin = file === "-";
  let format: ImportInputFormat | "auto" = stdin ? "auto" : inputFormatOf(file);
  if (options.inputFormat !== undefined) {
    if (options.inputFormat !== "jsonl" && options.inputFormat !== "csv") throw new Error("--input-format must be jsonl or csv");
    format = options.inputFormat;
  }
  let input: NodeJS.ReadableStream;
  let totalBytes: number | null = null;
  if (stdin) input = process.stdin;
  else {
    const fd = openSync(file, "r");
    totalBytes = fstatSync(fd).size;
    input = createReadStream(file, { fd, highWaterMark: 1 << 20 });
  }
  const progress = options.progress && process.stderr.isTTY ? new ProgressLine(totalBytes, (text) => process.stderr.write(text)) : null;
  const records = readImportRecords(input as AsyncIterable<Buffer>, {
    format,
    ...(progress ? { onBytes: (bytes: number) => progress.read(bytes) } : {}),
  });
  try {
    return await keyward.importKeys(records, context, {
      dryRun: options.dryRun === true,
      strict: options.strict === true,
      ...(options.format !== undefined ? { format: options.format } : {}),
      batchSize: options.batchSize,
      source: stdin ? "stdin" : file,
      ...(progress ? { onProgress: (p: ImportProgress) => progress.update(p) } : {}),
    });
  } finally {
    progress?.end();
  }
}

/** The report for people: the counts, each bad record's line and reason, and the audit event. */
export function describeImport(report: ImportReport): string {
  const byFormat = Object.entries(report.createdByFormat)
    .map(([format, n]) => `${format} ${count(n)}`)
    .join(", ");
  const lines = [
    `${report.dryRun ? "Dry run, nothing written: " : ""}${count(report.records)} records: ${count(report.created)} ${report.dryRun ? "would be created" : "created"}${byFormat ? ` (${byFormat})` : ""}, ${count(report.unchanged)} unchanged (already imported), ${count(report.failed)} failed.`,
  ];
  for (const error of report.errors) lines.push(`  line ${error.line}: ${error.reason}`);
  if (report.errorsOmitted > 0) lines.push(`  … and ${count(report.errorsOmitted)} more bad records (see --json for the first ones)`);
  if (!report.completed)
    lines.push(
      report.stoppedAtLine !== null
        ? `Stopped at line ${report.stoppedAtLine} (--strict): the batch it was in and everything after it were not imported. Fix the record and run the same command again: what was imported is matched, not duplicated.`
        : "The import did not complete: run the same command again to carry on (what was imported is matched, not duplicated).",
    );
  if (report.auditEvent) lines.push(`Audit event ${report.auditEvent.id} (keys.imported).`);
  return lines.join("\n");
}
