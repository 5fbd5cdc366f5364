// CI's dependency gate: `npm audit`, failing on high or critical advisories.
// Usage: node scripts/audit-gate.mjs [--omit=dev]
// When the registry does not offer the advisory service (some mirrors answer 405), nothing can
// be checked: this says so loudly and passes, unless KEYWARD_AUDIT_REQUIRED=1 makes it fail.
import { spawnSync } from "node:child_process";

const extra = process.argv.slice(2);
const label = `npm audit ${extra.join(" ")}`.trim();
const run = spawnSync("npm", ["audit", "--json", ...extra], { encoding: "utf8" });

let report = null;
try {
  report = JSON.parse(run.stdout);
} catch {
  // Not JSON: npm failed before it could ask.
}

const counts = report?.metadata?.vulnerabilities;
if (!counts) {
  const why = report?.message ?? report?.error?.summary ?? run.stderr.trim().split("\n").pop() ?? "no answer";
  console.warn(`${label}: the advisory service could not be reached (${why}); NOTHING WAS CHECKED.`);
  process.exit(process.env.KEYWARD_AUDIT_REQUIRED === "1" ? 1 : 0);
}

const serious = Object.entries(report.vulnerabilities ?? {}).filter(([, v]) => v.severity === "high" || v.severity === "critical");
console.log(`${label}: ${JSON.stringify(counts)}`);
if (serious.length > 0) {
  for (const [name, v] of serious) console.error(`  ${v.severity}: ${name} ${v.range ?? ""} (fix available: ${Boolean(v.fixAvailable)})`);
  process.exit(1);
}
