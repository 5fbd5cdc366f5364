import { existsSync, readFileSync, rmSync } from "node:fs";
import { relative } from "node:path";
import type { Reporter, TestCase, TestModule, TestSpecification, TestSuite, Vitest } from "vitest/node";
import { REPO_ROOT, reasonsFile, renderSkips, type Skip, writeSkips } from "../../scripts/skips.mjs";
import type { Prerequisite } from "./prerequisites.js";

const UNSAID: Prerequisite = {
  missing: "nothing recorded: the suite was skipped without saying what it lacks",
  obtain: "make its skip condition call lacking() (test/helpers/prerequisites.ts)",
};

/**
 * The outermost suites and tests under `parent` that were skipped: declared so (skipIf, runIf), or
 * skipped as they ran (context.skip()) in a module that did not fail (a failed beforeAll skips too).
 */
function* skippedIn(module: TestModule, parent: TestModule | TestSuite = module): Generator<TestSuite | TestCase> {
  for (const child of parent.children) {
    if (child.options.mode === "skip") yield child;
    else if (child.type === "suite") yield* skippedIn(module, child);
    else if (child.result().state === "skipped" && module.state() !== "failed") yield child;
  }
}

/**
 * Lists, after each vitest run, every suite it skipped and what that suite lacks (issue 20): the
 * reasons come from the checks in the test files (lacking() in prerequisites.ts), the suites from
 * vitest itself, so a skip whose check said nothing is listed too. Each test file's list is kept
 * in .tmp/skips/ for scripts/skip-summary.mjs, which prints the whole `npm test` run's at its end;
 * under `npm test` (KEYWARD_SKIPS_AT_END) this run's block is left to it.
 */
export default class SkipReporter implements Reporter {
  private vitest: Vitest | undefined;
  /** Files run only in part (line numbers given): their other tests are not skipped for a reason. */
  private partial = new Set<string>();

  onInit(vitest: Vitest): void {
    this.vitest = vitest;
  }

  onTestRunStart(specifications: ReadonlyArray<TestSpecification>): void {
    this.partial.clear();
    for (const specification of specifications) {
      const file = relative(REPO_ROOT, specification.moduleId);
      rmSync(reasonsFile(file), { force: true });
      writeSkips(file, []);
      if (specification.testLines?.length) this.partial.add(file);
    }
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const chosen = Boolean(this.vitest?.config.testNamePattern);
    const skips: Skip[] = [];
    for (const module of testModules) {
      const file = relative(REPO_ROOT, module.moduleId);
      const reasonsPath = reasonsFile(file);
      const reasons: Prerequisite[] = existsSync(reasonsPath)
        ? readFileSync(reasonsPath, "utf8")
            .split("\n")
            .filter(Boolean)
            .map((line) => JSON.parse(line) as Prerequisite)
        : [];
      // Skipped because the person chose other tests (-t, line numbers, .only) rather than for a
      // lack. Vitest turns `.only` into run and skip before reporting, so the source tells.
      const selected = chosen || this.partial.has(file) || /\.only\s*\(/.test(readFileSync(module.moduleId, "utf8"));
      const reason = merge(reasons);
      const mine = [...skippedIn(module)]
        .filter(() => reason !== null || !selected)
        .map((entity) => ({ suite: `${file} > ${entity.fullName}`, ...(reason ?? UNSAID) }));
      writeSkips(file, mine);
      skips.push(...mine);
    }
    if (skips.length === 0) return;
    const log = (text: string) => (this.vitest ? this.vitest.logger.log(text) : console.log(text));
    if (process.env.KEYWARD_SKIPS_AT_END)
      log(`\nskipped: ${skips.length} suite(s) in this vitest run; the list, and why, is printed at the end of npm test.`);
    else log(renderSkips(skips, "in this vitest run"));
  }
}

/** One reason for a file's skips: what its checks found missing, each named once. */
function merge(reasons: Prerequisite[]): Prerequisite | null {
  const unique = [...new Map(reasons.map((reason) => [`${reason.missing}\n${reason.obtain}`, reason])).values()];
  if (unique.length === 0) return null;
  return { missing: unique.map((r) => r.missing).join("; and "), obtain: unique.map((r) => r.obtain).join("; ") };
}
