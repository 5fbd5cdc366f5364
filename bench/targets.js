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
  // Issue 24: the middleware against the hand-written floor hook (crypto.hash + Map, callback hook).
  const fastify = httpRow(results, "keyward-fastify");
  add(
    "keyward/fastify (usage on) vs the hand-written crypto.hash + Map callback hook (rotating valid keys)",
    "≥ 85%",
    fastify?.ratioToFloor !== undefined ? pct(fastify.ratioToFloor) : undefined,
    fastify?.ratioToFloor >= 0.85,
  );
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
  // Issue 24: every key with a rate limit, through serve /v1/authz, against the same keys without limits.
  const limited = results["http-limits"]?.rows ?? [];
  for (const [limiter, label, goal] of [
    ["memory", "memory limiter", 0.85],
    ["redis", "Redis limiter", 0.6],
  ]) {
    const row = limited.find((r) => r.limiter === limiter);
    add(
      `serve /v1/authz, rate limit on every key, ${label}, vs the same keys without limits (rotating)`,
      `≥ ${goal * 100}%`,
      row ? pct(row.ratioToUnlimited) : undefined,
      row ? row.ratioToUnlimited >= goal : null,
    );
    add(
      `serve /v1/authz, rate limit on every key, ${label}, p99 at ${results["http-limits"]?.connections ?? 64} connections`,
      "≤ 10 ms",
      row ? `${row.p99Ms.median.toFixed(2)} ms` : undefined,
      row ? row.p99Ms.median <= 10 : null,
    );
    add(
      `serve /v1/authz, ${label}: admitted exactly what the limits allow`,
      "every rotating request admitted; one key hammered gets exactly its limit",
      row
        ? `${row.wrongAnswers} refused of the rotating; hammered ${row.hammer.runs.map((h) => h.admitted).join(", ")} of limit ${row.hammer.limit}`
        : undefined,
      row ? row.wrongAnswers === 0 && row.hammer.exact : null,
    );
  }
  // Issue 24: three instances on PostgreSQL + Redis.
  const cluster = results.cluster;
  add(
    "cluster: key-store statements a second per instance, steady load, no key changed (window + safety net)",
    "≤ 50",
    cluster
      ? `${cluster.statements.maxPerSecond.toFixed(2)} (worst instance, ${cluster.statements.windowSeconds.toFixed(0)} s window; +${cluster.statements.safetyNetPerSecond.toFixed(0)}/s of safety-net re-reads averaged over ${((cluster.statements.safetyNetSeconds ?? 300) / 60).toFixed(0)} min)`
      : undefined,
    // At steady state the safety net's re-reads come on top of what a window shorter than its age
    // sees (docs/benchmarks.md, Issue 24): the target holds only if both together stay under it.
    cluster ? cluster.statements.maxPerSecond + cluster.statements.safetyNetPerSecond <= 50 : null,
  );
  add(
    "cluster: revocation lag, from the revocation committed until the other instances answer 401 (Redis)",
    "≤ 100 ms",
    cluster
      ? `median ${cluster.revocation.propagationMedianMs.toFixed(1)} ms, worst ${cluster.revocation.propagationWorstMs.toFixed(1)} ms (${cluster.revocation.count} revocations; from the revoke sent: median ${cluster.revocation.medianMs.toFixed(1)}, worst ${cluster.revocation.worstMs.toFixed(1)} ms)`
      : undefined,
    cluster ? cluster.revocation.propagationWorstMs <= 100 : null,
  );
  // Issue 24: one hot quota key on one instance, quota blocks on (KEYWARD_QUOTA_BLOCK_MAX's
  // default), through verify() in-process, exact (the store's count equals the requests admitted).
  for (const store of ["sqlite", "postgres"]) {
    const rows = results.limits?.hotQuota?.filter((r) => r.store === store) ?? [];
    const blocks = rows.find((r) => r.blockMax > 0);
    const single = rows.find((r) => r.blockMax === 0);
    add(
      `hot quota key, one instance, ${store === "sqlite" ? "SQLite" : "PostgreSQL"}, quota blocks on (exact)`,
      "≥ 10,000 per second",
      blocks
        ? `${Math.round(blocks.opsPerSec.median).toLocaleString("en-US")}/s${blocks.exact ? ", exact" : ", NOT exact"}` +
            (single ? ` (one update per request: ${Math.round(single.opsPerSec.median).toLocaleString("en-US")}/s)` : "")
        : undefined,
      blocks ? blocks.exact && blocks.opsPerSec.median >= 10_000 : null,
    );
  }
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
