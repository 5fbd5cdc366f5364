// The last step of `npm test`: every suite the run skipped, and why, in one block (scripts/skips.mjs).
// `node scripts/skip-summary.mjs [status]`, where status is the exit status of the steps before it.
// Under CI=true anything skipped fails the run.
import { readSkips, renderSkips } from "./skips.mjs";

const status = Number(process.argv[2] ?? 0);
const skips = readSkips();
const failed = status === 0 ? "" : `before the run failed (status ${status}; the steps after that did not run)`;
if (skips.length === 0) {
  console.log(`\nskip summary: no suite was skipped${failed ? ` ${failed}` : "; every suite ran"}.`);
} else {
  console.log(renderSkips(skips, failed));
  if (process.env.CI) process.exitCode = 1;
}
