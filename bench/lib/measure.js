import { fileURLToPath } from "node:url";
import { runProcess } from "./proc.js";
import { summarize } from "./stats.js";

const WORKER = fileURLToPath(new URL("../scenarios/inproc-worker.js", import.meta.url));

/** Runs one in-process measurement in a fresh Node process on `cores` (alone on its core). */
export async function runInprocWorker(spec, cores = "0") {
  const stdout = await runProcess({ command: process.execPath, args: ["--expose-gc", WORKER, JSON.stringify(spec)], cores });
  const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
  if (!line) throw new Error(`worker printed no result: ${stdout.slice(-1000)}`);
  return JSON.parse(line.slice("RESULT ".length));
}

/**
 * Measures every item `runs` times, interleaved (run 1 of each, then run 2 of each, …), so drift
 * in the machine's load spreads over all items instead of landing on one.
 * `measure(item)` returns an object of numbers; the result has, per item, each field's median, min and max.
 */
export async function measureInterleaved(items, runs, measure, log) {
  const samples = new Map(items.map((item) => [item.id, []]));
  for (let run = 1; run <= runs; run++) {
    for (const item of items) {
      const started = performance.now();
      const value = await measure(item, run);
      samples.get(item.id).push(value);
      log?.(`  ${item.id} run ${run}/${runs}: ${describe(value)} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
    }
  }
  return items.map((item) => ({ ...item, ...aggregate(samples.get(item.id)) }));
}

function describe(value) {
  return Object.entries(value)
    .filter(([, v]) => typeof v === "number")
    .slice(0, 4)
    .map(([k, v]) => `${k}=${formatNumber(v)}`)
    .join(" ");
}

export function formatNumber(v) {
  if (!Number.isFinite(v)) return String(v);
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en-US");
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(3);
}

/** Per numeric field: { median, min, max, runs }; the raw samples kept too. */
export function aggregate(values) {
  const fields = {};
  for (const key of Object.keys(values[0] ?? {})) {
    if (typeof values[0][key] === "number") fields[key] = summarize(values.map((v) => v[key]));
  }
  return { stats: fields, samples: values };
}
