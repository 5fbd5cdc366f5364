// The run as Markdown tables (the form docs/benchmarks.md shows).
import { renderCluster, renderHttpLimits } from "./report-cluster.js";

const int = (v) => (Number.isFinite(v) ? Math.round(v).toLocaleString("en-US") : "–");
const fixed = (v, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : "–");
const range = (s, f = int) => (s ? `${f(s.median)} (${f(s.min)}–${f(s.max)})` : "–");
const pct = (v) => (Number.isFinite(v) ? `${(v * 100).toFixed(0)}%` : "–");

function table(head, rows) {
  return [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

export function renderReport(report) {
  const { results } = report;
  const out = [];
  out.push(`# Keyward bench, ${report.date}`);
  out.push("");
  out.push(
    `${report.machine.cpu}, ${report.machine.cores} cores, ${report.machine.memoryGiB} GiB, Node ${report.machine.node}, ${report.machine.platform}. ` +
      `${report.options.runs} run(s) each, ${report.options.duration} s per HTTP measurement, ${report.options.inprocSeconds} s per in-process one; median (min–max).`,
  );
  if (results.inproc) {
    out.push("", "## In-process verify()", "");
    out.push(
      table(
        ["measurement", "calls/s", "ns/call", "vs floor"],
        results.inproc.map((r) => [r.name, range(r.opsPerSec), int(r.nsPerOp.median), pct(r.ratioToFloor)]),
      ),
    );
    for (const r of results.inproc.filter((row) => row.foldCpuMs)) {
      const perKeyMinuteUs = (r.foldCpuMs.median * 1000) / r.foldKeyMinutes;
      out.push(
        "",
        `${r.name}: the fold of the set-up's ${int(r.foldKeyMinutes)} key-minutes, before the window, took ${range(r.foldCpuMs)} ms of CPU ` +
          `(${perKeyMinuteUs.toFixed(1)} µs a key-minute; a server pays it once a minute for each key in use).`,
      );
    }
  }
  if (results.http) {
    out.push("", "## HTTP (wrk, 1 thread, loopback)", "");
    out.push(
      table(
        ["target", "keys", "req/s", "p50 ms", "p99 ms", "vs baseline", "wrong answers"],
        results.http.map((r) => [
          r.name,
          r.mode,
          range(r.rps),
          fixed(r.p50Ms.median),
          fixed(r.p99Ms.median),
          (r.baseline ? `${pct(r.ratioToBaseline)} of ${r.baseline}` : "baseline") +
            (r.floor ? `, ${pct(r.ratioToFloor)} of ${r.floor}` : ""),
          String(r.wrongAnswers + r.socketErrors),
        ]),
      ),
    );
  }
  if (results.peer) {
    out.push("", "## Peer: better-auth api-key (valid keys, rotating)", "");
    out.push(
      table(
        ["server", "req/s", "p50 ms", "p99 ms", "Keyward is", "wrong answers"],
        results.peer.map((r) => [
          r.name,
          range(r.rps),
          fixed(r.p50Ms.median),
          fixed(r.p99Ms.median),
          `${fixed(r.keywardTimes, 1)}×`,
          String(r.wrongAnswers),
        ]),
      ),
    );
  }
  if (results.scale) {
    out.push("", "## Scale: verify latency from the store (cache bypassed)", "");
    out.push(
      table(
        ["store, keys", "mean µs", "p50 µs", "p99 µs", "p50 vs smallest"],
        results.scale.latency.map((r) => [
          r.name,
          range(r.meanUs, (v) => fixed(v, 1)),
          fixed(r.p50Us.median, 1),
          fixed(r.p99Us.median, 1),
          `${fixed(r.ratioToSmallest)}×`,
        ]),
      ),
    );
    const m = results.scale.memory;
    const f = results.scale.flood;
    out.push("");
    out.push(`Heap per cached key: ${int(m.bytesPerKey)} bytes (${int(m.cached)} keys cached).`);
    out.push(
      `Flood of ${int(f.keys)} distinct random keys: RSS ${fixed(f.rssBytes / 2 ** 20, 0)} MiB at the end (max ${fixed(f.maxRssBytes / 2 ** 20, 0)} MiB), ` +
        `${fixed(f.rssGrowthAfterCacheFullBytes / 2 ** 20, 1)} MiB growth after the negative cache filled, ${int(f.negativeEntries)} negative entries, ${int(f.opsPerSec)} verifies/s.`,
    );
  }
  if (results.limits) {
    out.push("", "## Limits stage on a cache-hit verify()", "");
    out.push(
      table(
        ["limiter", "calls/s", "ns/call", "vs no limiter", "vs memory limiter"],
        results.limits.rows.map((r) => [
          r.name,
          range(r.opsPerSec),
          int(r.nsPerOp.median),
          pct(r.ratioToNoLimiter),
          pct(r.ratioToMemoryLimiter),
        ]),
      ),
    );
    if (results.limits.pending.length > 0)
      out.push("", `Pending (TODO at merge): ${results.limits.pending.join(", ")} LimitEnforcer adapters.`);
    const hot = results.limits.hotQuota ?? [];
    if (hot.length > 0) {
      out.push("", `### Hot quota key (one key, ${hot[0].concurrency} calls in flight, one instance)`, "");
      out.push(
        table(
          ["row", "calls/s", "store writes per request", "exact"],
          hot.map((r) => [r.name, range(r.opsPerSec), fixed(r.writesPerRequest.median, 4), r.exact ? "yes" : "NO"]),
        ),
      );
    }
  }
  if (results["http-limits"]) out.push(...renderHttpLimits(results["http-limits"]));
  if (results.cluster) out.push(...renderCluster(results.cluster));
  if (results["copy-store"]) {
    const c = results["copy-store"];
    out.push("", "## keyward copy-store: SQLite → PostgreSQL", "");
    out.push(
      table(
        ["keys", "copy-store end to end", "keys/s", "tables", "verification", "export (file size)"],
        [
          [
            int(c.keys),
            `${fixed(c.copyStoreSeconds, 1)} s`,
            int(c.keysPerSecond),
            c.tables
              .filter((t) => t.target > 0)
              .map((t) => `${t.table} ${fixed(t.seconds, 1)} s`)
              .join(", "),
            `${fixed(c.verifySeconds, 1)} s`,
            `${fixed(c.exportSeconds, 1)} s (${fixed(c.exportBytes / 1e6, 0)} MB)`,
          ],
        ],
      ),
    );
    out.push("", `Audit chain re-verified on the target: ${int(c.auditChain.events)} events, ${c.auditChain.ok ? "ok" : "**broken**"}.`);
  }
  if (results.import) {
    const i = results.import;
    out.push("", "## keyward import: legacy SHA-256-hex records", "");
    out.push(
      table(
        ["store", "records", "import", "records/s", "CPU", "peak memory", "second run (nothing to write)", "verified"],
        i.rows.map((r) => [
          r.store,
          int(r.records),
          `${fixed(r.seconds, 1)} s`,
          int(r.recordsPerSecond),
          r.cpuSeconds === null ? "–" : `${fixed(r.cpuSeconds, 1)} s`,
          `${int(r.peakAnonMiB)} MiB`,
          `${fixed(r.rerunSeconds, 1)} s`,
          r.verifiedSample,
        ]),
      ),
    );
  }
  out.push("", "## Targets", "");
  out.push(
    table(
      ["target", "goal", "this run", "met"],
      report.targets.map((t) => [t.name, t.goal, t.value, t.met === null ? "–" : t.met ? "yes" : "**no**"]),
    ),
  );
  if (report.failures.length > 0) out.push("", "## Failures", "", ...report.failures.map((f) => `- ${f.group}: ${f.error.split("\n")[0]}`));
  out.push("");
  return out.join("\n");
}
