// The report's sections for the http-limits and cluster groups (issue 24), as Markdown lines.
const int = (v) => (Number.isFinite(v) ? Math.round(v).toLocaleString("en-US") : "–");
const fixed = (v, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : "–");
const range = (s) => (s ? `${int(s.median)} (${int(s.min)}–${int(s.max)})` : "–");
const pct = (v) => (Number.isFinite(v) ? `${(v * 100).toFixed(0)}%` : "–");
const mib = (v) => `${fixed(v / 2 ** 20, 1)} MiB`;

function table(head, rows) {
  return [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)];
}

export function renderHttpLimits(result) {
  const hammer = (r) =>
    r.hammer
      ? `${r.hammer.runs.map((h) => `${h.admitted}/${h.requests}`).join(", ")} (limit ${r.hammer.limit}): ${r.hammer.exact ? "exact" : "**not exact**"}`
      : "–";
  return [
    "",
    `## HTTP with a rate limit on every key (serve /v1/authz, ${int(result.rows[0]?.keys)} rotating keys, ${result.connections} connections)`,
    "",
    ...table(
      ["target", "req/s", "p50 ms", "p99 ms", "vs no limits", "wrong answers", "one key hammered: admitted/answered"],
      result.rows.map((r) => [
        r.name,
        range(r.rps),
        fixed(r.p50Ms.median),
        fixed(r.p99Ms.median),
        r.limiter ? pct(r.ratioToUnlimited) : "baseline",
        String(r.wrongAnswers + r.socketErrors),
        hammer(r),
      ]),
    ),
  ];
}

export function renderCluster(c) {
  const s = c.statements;
  const r = c.revocation;
  const t = c.sizing.table;
  return [
    "",
    `## Cluster: ${c.instances} keyward serve on PostgreSQL + Redis, ${int(c.keys)} keys`,
    "",
    `Load: ${int(c.load.rps)} req/s over the ${c.instances} instances (${c.load.seconds} s, p99 ${fixed(c.load.p99Ms)} ms, ${c.load.wrongAnswers + c.load.socketErrors} wrong answers).`,
    `Key-store statements a second per instance, ${fixed(s.windowSeconds, 0)} s with no key changed: ${s.perInstance
      .map(
        (p) =>
          `${fixed(p.perSecond)} (${Object.entries(p.statements)
            .map(([k, v]) => `${k} ${v}`)
            .join(", ")})`,
      )
      .join(
        "; ",
      )}; the safety net (${fixed((s.safetyNetSeconds ?? 300) / 60, 0)} min) would add ${fixed(s.safetyNetPerSecond, 0)}/s averaged over its age.`,
    `Revocation through one instance, ${r.count} times${r.allUnderLoad ? ", all under the load" : ", some after the load ended"}: both others answered 401 ` +
      `${fixed(r.propagationMedianMs, 1)} ms (median; worst ${fixed(r.propagationWorstMs, 1)} ms) after PostgreSQL showed the revocation committed, ` +
      `${fixed(r.medianMs, 1)} ms (worst ${fixed(r.worstMs, 1)} ms) after the revoke was sent (the revoke itself answered in ${fixed(r.revokeMedianMs, 1)} ms, median); ` +
      `the revoking instance answered 401 right after its answer: ${r.revokingInstanceAnswered401 ? "yes" : "**no**"}.`,
    `Sizing: the keys table ${mib(t.totalBytes)} for ${int(t.rows)} keys (heap ${mib(t.heapBytes)}, indexes ${mib(t.indexBytes)}): ${int(t.bytesPerKey)} bytes a key; ` +
      `RSS per instance ${c.sizing.rss.map((x) => `${mib(x.idleBytes)} → ${mib(x.loadedBytes)}`).join(", ")} (before any request → every key cached, under load): ${int(c.sizing.rssPerCachedKeyBytes)} bytes a cached key.`,
  ];
}
