import { execFile } from "node:child_process";
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { AxeBuilder } from "@axe-core/playwright";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { expect } from "vitest";
import { lacking } from "./prerequisites.js";
import { REPO_ROOT } from "./process.js";

/**
 * The system's Chromium: Debian's (`.ci/run` installs the `chromium` package when it is missing),
 * or the one KEYWARD_CHROMIUM names.
 */
export const SYSTEM_CHROMIUM = process.env.KEYWARD_CHROMIUM ?? "/usr/bin/chromium";

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * The flags @sparticuz/chromium recommends that we leave out: Playwright passes its own
 * --headless; the dashboard tests check the browser's web security (CSRF, CSP, no external
 * requests), so nothing that turns it off or changes site isolation; and --single-process and the
 * graphics flags are for AWS Lambda and WebGL (we run with --disable-gpu, as with the system one).
 */
const BUNDLED_FLAGS_LEFT_OUT = [
  "--headless",
  "--disable-web-security",
  "--allow-running-insecure-content",
  "--disable-site-isolation-trials",
  "--disable-features=",
  "--enable-features=",
  "--single-process",
  "--use-gl=",
  "--use-angle=",
  "--enable-unsafe-swiftshader",
  "--ignore-gpu-blocklist",
  "--in-process-gpu",
];

export interface Chromium {
  /** `system`: SYSTEM_CHROMIUM; `bundled`: the build inside the @sparticuz/chromium npm package. */
  kind: "system" | "bundled";
  /** Which one, for the test's log. */
  label: string;
  executablePath: string;
  args: string[];
  /** Set for the browser process, over the test's own environment. */
  env: Record<string, string>;
}

const isExecutable = (path: string): boolean => {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

/**
 * Which Chromium the dashboard tests drive. KEYWARD_BROWSER=system takes the system's (an error if
 * it is missing), KEYWARD_BROWSER=bundled the headless Chromium that the @sparticuz/chromium
 * devDependency ships inside its npm tarball (no download at install or at run time); unset, the
 * system's when it is there (or KEYWARD_CHROMIUM is set), else the bundled one. Null when neither
 * can run here (the bundled build is x64 Linux only): the suite then skips, and says so.
 */
export async function findChromium(): Promise<Chromium | null> {
  const wanted = process.env.KEYWARD_BROWSER ?? "";
  if (!["", "system", "bundled"].includes(wanted)) throw new Error(`KEYWARD_BROWSER is "system" or "bundled", not "${wanted}"`);
  if (wanted === "system" || (wanted === "" && (isExecutable(SYSTEM_CHROMIUM) || process.env.KEYWARD_CHROMIUM))) {
    if (!isExecutable(SYSTEM_CHROMIUM)) throw new Error(`no Chromium at ${SYSTEM_CHROMIUM} (KEYWARD_CHROMIUM, KEYWARD_BROWSER=system)`);
    return { kind: "system", label: `the system's Chromium, ${SYSTEM_CHROMIUM}`, executablePath: SYSTEM_CHROMIUM, args: FLAGS, env: {} };
  }
  if (process.platform !== "linux" || process.arch !== "x64") {
    if (process.env.CI)
      throw new Error(`a Chromium is required under CI: none at ${SYSTEM_CHROMIUM}, and @sparticuz/chromium is x64 Linux only`);
    lacking({
      missing: `a Chromium: none at ${SYSTEM_CHROMIUM}, and the npm-supplied one (@sparticuz/chromium) is x64 Linux only, this is ${process.platform} ${process.arch}`,
      obtain: "apt-get install chromium (Debian/Ubuntu, as root), or KEYWARD_CHROMIUM=/path/to/chromium",
    });
    return null;
  }
  return bundledChromium();
}

/**
 * The build in @sparticuz/chromium: brotli archives of the browser (a chrome-headless-shell), its
 * NSS and expat libraries (for machines without them) and Open Sans (for machines without fonts),
 * unpacked once per package version into node_modules/.cache. The unpacking is the package's own
 * `inflate`, run in a child process whose TMPDIR is a fresh folder, renamed into place when
 * complete (two test processes at once, or an unpacking cut short, leave no half-written browser).
 */
const isPackageFolder = (dir: string): boolean =>
  existsSync(join(dir, "package.json")) &&
  (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: string }).name === "@sparticuz/chromium";

async function bundledChromium(): Promise<Chromium> {
  const require = createRequire(join(REPO_ROOT, "package.json"));
  // Its exports hide package.json: walk up from the entry point to the package's own folder.
  let packageRoot = dirname(require.resolve("@sparticuz/chromium"));
  while (!isPackageFolder(packageRoot) && dirname(packageRoot) !== packageRoot) packageRoot = dirname(packageRoot);
  const { version } = JSON.parse(readFileSync(join(packageRoot, "package.json"), "utf8")) as { version: string };
  const cache = join(REPO_ROOT, "node_modules", ".cache", "keyward-chromium");
  const dir = join(cache, version);
  if (!existsSync(join(dir, "recommended-args.json"))) {
    mkdirSync(cache, { recursive: true });
    // Earlier versions and unpackings cut short (their process gone) are removed first.
    for (const entry of readdirSync(cache)) {
      const pid = /\.(\d+)\.partial$/.exec(entry)?.[1];
      if (entry !== version && !(pid && processAlive(Number(pid)))) rmSync(join(cache, entry), { recursive: true, force: true });
    }
    const partial = join(cache, `${version}.${process.pid}.partial`);
    mkdirSync(partial);
    const script = `
      import chromium from "@sparticuz/chromium";
      import { inflate } from ${JSON.stringify(pathToFileURL(join(packageRoot, "build", "esm", "lambdafs.js")).href)};
      import { writeFileSync } from "node:fs";
      const bin = ${JSON.stringify(join(packageRoot, "bin"))};
      await Promise.all(["chromium.br", "fonts.tar.br", "al2023.tar.br"].map((file) => inflate(bin + "/" + file)));
      writeFileSync(process.env.TMPDIR + "/recommended-args.json", JSON.stringify(chromium.args));
    `;
    await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], {
      cwd: REPO_ROOT,
      env: { ...process.env, TMPDIR: partial },
    });
    writeFileSync(
      join(partial, "fonts.conf"),
      [
        '<?xml version="1.0"?>',
        '<!DOCTYPE fontconfig SYSTEM "fonts.dtd">',
        "<fontconfig>",
        '  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>',
        `  <dir>${join(dir, "fonts", "fonts")}</dir>`,
        `  <cachedir>${join(dir, "fontconfig-cache")}</cachedir>`,
        "</fontconfig>",
        "",
      ].join("\n"),
    );
    try {
      renameSync(partial, dir);
    } catch (error) {
      // Another test process finished first: its copy is as good.
      rmSync(partial, { recursive: true, force: true });
      if (!existsSync(join(dir, "recommended-args.json"))) throw error;
    }
  }
  const recommended = JSON.parse(readFileSync(join(dir, "recommended-args.json"), "utf8")) as string[];
  const args = [...new Set([...FLAGS, ...recommended.filter((flag) => !BUNDLED_FLAGS_LEFT_OUT.some((out) => flag.startsWith(out)))])];
  const libraries = join(dir, "al2023", "lib");
  return {
    kind: "bundled",
    label: `the Chromium inside the @sparticuz/chromium ${version} npm package (${process.env.KEYWARD_BROWSER === "bundled" ? "KEYWARD_BROWSER=bundled" : `no ${SYSTEM_CHROMIUM}`})`,
    executablePath: join(dir, "chromium"),
    args,
    env: {
      LD_LIBRARY_PATH: [libraries, process.env.LD_LIBRARY_PATH].filter(Boolean).join(":"),
      FONTCONFIG_PATH: dir,
    },
  };
}

const processAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

export const SCREENSHOT_DIR = join(process.cwd(), ".tmp", "screenshots");

/**
 * One headless Chromium for a whole test file (the machine has two cores), on a fresh profile
 * directory that is removed afterwards. Tests clear its cookies between people.
 */
export async function launchBrowser(browser: Chromium): Promise<{ context: BrowserContext; close: () => Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), "keyward-chromium-"));
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: browser.executablePath,
    headless: true,
    args: browser.args,
    env: { ...process.env, ...browser.env },
    viewport: { width: 1280, height: 860 },
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * The page state is accessible and shows nothing the code meant to leave out: axe finds no
 * critical or serious violation, and no `null`, `undefined`, `[object Object]` or `NaN` is text.
 */
export async function expectAccessible(page: Page, state: string): Promise<void> {
  const results = await new AxeBuilder({ page }).analyze();
  const bad = results.violations
    .filter((v) => v.impact === "critical" || v.impact === "serious")
    .map(
      (v) =>
        `${state}: ${v.id} (${v.impact}) ${v.help} — ${v.nodes
          .map((n) => n.target.join(" "))
          .slice(0, 4)
          .join(" | ")}`,
    );
  expect(bad).toEqual([]);
  expect(await page.locator("body").textContent(), state).not.toMatch(/\bnull\b|\bundefined\b|\[object Object\]|\bNaN\b/);
}
