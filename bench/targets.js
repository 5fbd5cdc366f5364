// The targets of issue #8, checked against one run's results (ratios within the run).
// They are reported, never asserted in tests: performance goals live in the benchmark report.

const pct = (v) => `${(v * 100).toFixed(0)}%`;

function httpRow(results, name, mode = "rotating") {
  return results.http?.find((r) => r.name === name && r.mode === mode);
}

export function evaluateTargets(results) {
  const targets = [];
  const add = (name, goal, value, met) =>
    targets.push({ name, goal, value: value ?? "not measured", met: value === undefined ? null : met });

  for (const framework of ["fastify", "express", "hono"]) {
    const row = httpRow(results, `keyward-${framework}`);
    add(
      `keyward/${framework} vs bare ${framework} (rotating valid keys)`,
      "≥ 90%",
      row ? pct(row.ratioToBaseline) : undefined,
      row ? row.ratioToBaseline >= 0.9 : null,
    );
  }
  const authz = httpRow(results, "serve /v1/authz");
  add(
    "keyward serve /v1/authz, one process, vs bare node:http",
    "≥ 80%",
    authz ? pct(authz.ratioToBaseline) : undefined,
    authz?.ratioToBaseline >= 0.8,
  );
  add(
    "keyward serve /v1/authz p99 at 64 connections",
    "≤ 5 ms",
    authz ? `${authz.p99Ms.median.toFixed(2)} ms` : undefined,
    authz ? authz.p99Ms.median <= 5 : null,
  );
  const best = results.peer?.find((r) => r.name.includes("best"));
  add(
    "keyward vs better-auth api-key best configuration (rotating valid keys)",
    "≥ 25×",
    best ? `${best.keywardTimes.toFixed(1)}×` : undefined,
    best?.keywardTimes >= 25,
  );
  const hit = results.inproc?.find((r) => r.name === "verify() cache hit");
  add("in-process cache-hit verify() vs crypto.hash + Map.get", "≥ 50%", hit ? pct(hit.ratioToFloor) : undefined, hit?.ratioToFloor >= 0.5);
  for (const store of ["sqlite", "postgres"]) {
    const rows = results.scale?.latency.filter((r) => r.store === store) ?? [];
    const largest = rows.reduce((a, b) => (!a || b.keys > a.keys ? b : a), undefined);
    const label = store === "sqlite" ? "SQLite" : "PostgreSQL";
    add(
      `verify latency (p50), ${label}, ${largest ? largest.keys.toLocaleString("en-US") : "largest"} keys vs smallest`,
      "within 15%",
      largest && rows.length > 1 ? `${((largest.ratioToSmallest - 1) * 100).toFixed(1)}%` : undefined,
      largest ? largest.ratioToSmallest <= 1.15 : null,
    );
  }
  const flood = results.scale?.flood;
  add(
    "RSS under a flood of distinct random keys",
    "bounded (negative cache capped, RSS flat once full)",
    flood
      ? `${flood.keys.toLocaleString("en-US")} keys: RSS ${(flood.rssBytes / 2 ** 20).toFixed(0)} MiB, +${(flood.rssGrowthAfterCacheFullBytes / 2 ** 20).toFixed(0)} MiB after the cache filled, ${flood.negativeEntries.toLocaleString("en-US")} negative entries`
      : undefined,
    flood ? flood.negativeEntries <= 100_000 && flood.rssGrowthAfterCacheFullBytes < 64 * 2 ** 20 : null,
  );
  // Issue 23: a million records imported in under 60 s on each store (an absolute time on the
  // bench machine, as the issue states it; measured only at a million, so not in the smoke).
  for (const store of ["sqlite", "postgres"]) {
    const row = results.import?.rows.find((r) => r.store === store && r.records >= 1_000_000);
    add(
      `keyward import of 1,000,000 records into ${store === "sqlite" ? "SQLite" : "PostgreSQL"}`,
      "< 60 s",
      row ? `${row.seconds.toFixed(1)} s` : undefined,
      row ? row.seconds < 60 : null,
    );
  }
  return targets;
}
