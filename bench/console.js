// The console at 100,000 keys (issue 21): the dashboard driven in a real Chromium against the real
// service (`node bin/keyward.js serve`, from dist), on a SQLite store of N keys shaped like
// bench/key-search.js's, and in the same run on a baseline store of 1,000 keys of the same shape.
// Each journey's time runs from the navigation or the action until its result is in the page
// (the rows, "Showing 1–50 of 100,000", the chart); each journey's p50 at N is reported as a
// ratio to its p50 at the baseline. See docs/benchmarks.md, "The console at 100,000 keys".
//
//   npm run build && node bench/console.js          # 100,000 keys vs 1,000, 10 rounds
//   node bench/console.js --smoke                   # 2,000 vs 200 keys, 2 rounds: a quick check
//   node bench/console.js --keys 100000 --baseline 1000 --rounds 10 --out bench/results/console-latest.json
//
// Chromium: /usr/bin/chromium (or KEYWARD_CHROMIUM), else the @sparticuz/chromium build the
// dashboard tests unpack into node_modules/.cache/keyward-chromium (run them once).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { storesBeside } from "../dist/service/store-factory.js";
import { SqliteKeyStore } from "../dist/stores/sqlite/sqlite-key-store.js";
import { SqliteWebhookStore } from "../dist/stores/sqlite/sqlite-webhook-store.js";
import { startServer } from "./lib/proc.js";
import { insertSqlite } from "./lib/seed.js";
import { generator, seedRecords } from "./lib/shape.js";
import { percentile } from "./lib/stats.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const ADMIN = { email: "admin@bench.example", password: "bench console password 1" };
const MEMBER = { email: "member@bench.example", password: "bench console password 2" };
/** The member owns this share of the keys: 2,000 of 100,000 (20 of the 1,000 baseline). */
const MEMBER_SHARE = 0.02;
/** Usage rows: 30 days × 24 hours × USAGE_KEYS keys × 2 outcomes, plus unattributed NOT_FOUND per hour. */
const USAGE_KEYS = 50;
const USAGE_DAYS = 30;
const STEP_TIMEOUT_MS = 60_000;

const USAGE = `usage: node bench/console.js [--keys N] [--baseline N] [--rounds N] [--out file] [--smoke]
  --smoke: 2,000 and 200 keys, 2 rounds, results in .tmp/console-smoke.json`;

function parseArgs(argv) {
  const flags = { keys: 100_000, baseline: 1_000, rounds: 10, out: null, smoke: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--smoke") flags.smoke = true;
    else if (arg === "--keys" || arg === "--baseline" || arg === "--rounds") {
      flags[arg.slice(2)] = Number(argv[++i]);
      if (!Number.isInteger(flags[arg.slice(2)]) || flags[arg.slice(2)] < 1) throw new Error(`${arg} takes a positive integer\n${USAGE}`);
    } else if (arg === "--out") flags.out = argv[++i];
    else if (arg === "--help") {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new Error(`unknown argument ${arg}\n${USAGE}`);
  }
  if (flags.smoke) Object.assign(flags, { keys: 2_000, baseline: 200, rounds: 2 });
  flags.out ??= flags.smoke ? ".tmp/console-smoke.json" : "bench/results/console-latest.json";
  return flags;
}

const log = (line) => process.stderr.write(`${line}\n`);
const loadavg = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).map(Number);

/** The system's Chromium, or the one the dashboard tests unpacked from @sparticuz/chromium (test/helpers/browser.ts). */
function findChromium() {
  const system = process.env.KEYWARD_CHROMIUM ?? "/usr/bin/chromium";
  const flags = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ];
  if (existsSync(system)) return { executablePath: system, args: flags, env: {} };
  const cache = join(ROOT, "node_modules", ".cache", "keyward-chromium");
  const version = existsSync(cache) ? readdirSync(cache).find((entry) => existsSync(join(cache, entry, "chromium"))) : undefined;
  if (!version)
    throw new Error(
      `no Chromium at ${system} and none unpacked in ${cache}: apt-get install chromium, set KEYWARD_CHROMIUM, or run the dashboard tests once (they unpack @sparticuz/chromium)`,
    );
  const dir = join(cache, version);
  return {
    executablePath: join(dir, "chromium"),
    args: flags,
    env: { LD_LIBRARY_PATH: [join(dir, "al2023", "lib"), process.env.LD_LIBRARY_PATH].filter(Boolean).join(":"), FONTCONFIG_PATH: dir },
  };
}

/** `keyward users create … --json`, the password on standard input. */
function createUser(dbPath, { email, password }, admin) {
  const args = ["bin/keyward.js", "users", "create", "--email", email, "--password-stdin", "--json", ...(admin ? ["--admin"] : [])];
  const run = spawnSync(process.execPath, args, {
    cwd: ROOT,
    input: `${password}\n`,
    env: { ...process.env, KEYWARD_DATABASE_URL: `sqlite:${dbPath}`, KEYWARD_LOG_LEVEL: "warn" },
    encoding: "utf8",
  });
  if (run.status !== 0) throw new Error(`keyward users create ${email} failed: ${run.stderr}`);
  return JSON.parse(run.stdout.slice(run.stdout.indexOf("{")));
}

/** Usage counts for the last USAGE_DAYS days, hour by hour, over USAGE_KEYS keys (the usage store's writeUsage). */
function usageCounts(keys, now) {
  const rnd = generator(7);
  const ownerOf = (record) => `${record.owner.type}:${record.owner.id}`;
  const counts = [];
  const first = now - (now % HOUR) - USAGE_DAYS * DAY;
  for (let minute = first; minute <= now; minute += HOUR) {
    for (const record of keys) {
      counts.push({ minute, keyId: record.id, owner: ownerOf(record), outcome: "VALID", count: 1 + Math.floor(rnd() * 60) });
      counts.push({ minute, keyId: record.id, owner: ownerOf(record), outcome: "RATE_LIMITED", count: Math.floor(rnd() * 5) + 1 });
    }
    counts.push({ minute, keyId: "", owner: "", outcome: "NOT_FOUND", count: 1 + Math.floor(rnd() * 10) });
  }
  return counts;
}

/**
 * A SQLite store of `count` keys: the schema, an administrator and a member (`keyward users
 * create`), the shaped keys with MEMBER_SHARE of them the member's, and 30 days of usage.
 */
async function seedStore(dir, count, now) {
  const started = performance.now();
  const dbPath = join(dir, "keyward.db");
  const schema = new SqliteKeyStore({ filename: dbPath });
  await schema.migrate();
  await new SqliteWebhookStore(schema).migrate();
  await schema.close();
  const admin = createUser(dbPath, ADMIN, true);
  const member = createUser(dbPath, MEMBER, false);

  const records = seedRecords(count, now);
  const memberKeys = Math.max(1, Math.round(count * MEMBER_SHARE));
  const stride = count / memberKeys;
  const mine = [];
  for (let j = 0; j < memberKeys; j++) {
    const record = records[Math.floor(j * stride + stride / 2)];
    record.owner = { type: "user", id: member.id };
    mine.push(record);
  }
  // Keys with usage: a fifth of them the member's, the rest spread over the store; live ones
  // only, so the detail page's key shows a timeline of a key that works.
  const live = (r) => !r.revokedAt && r.enabled !== false && !(r.expiresAt && r.expiresAt < now);
  const theirs = records.filter((r) => live(r) && r.owner.id !== member.id);
  const used = [
    ...mine.filter(live).slice(0, USAGE_KEYS / 5),
    ...Array.from({ length: USAGE_KEYS }, (_, i) => theirs[Math.floor((i * theirs.length) / USAGE_KEYS)]),
  ].slice(0, USAGE_KEYS);

  const store = new SqliteKeyStore({ filename: dbPath });
  await store.migrate();
  insertSqlite(store.db, records);
  const { usage } = await storesBeside(store);
  const counts = usageCounts(used, now);
  await usage.writeUsage(
    counts,
    used.map((r, i) => ({ keyId: r.id, at: now - i * 60_000, ip: `203.0.113.${(i % 250) + 1}` })),
  );
  await usage.close?.();
  store.db.pragma("wal_checkpoint(TRUNCATE)");
  await store.close();

  const sample = records[Math.floor(count / 3)];
  const detail = used[used.length - 1];
  return {
    dbPath,
    keys: count,
    admin,
    member: { ...member, keys: memberKeys },
    usageRows: counts.length,
    seedSeconds: (performance.now() - started) / 1000,
    targets: {
      nameWord: "billing",
      refLastFour: sample.ref.slice(-4),
      keyId: records[Math.floor(count * 0.48)].id,
      detailKey: { id: detail.id, name: detail.name },
    },
  };
}

/**
 * Runs one step in the page: marks the tables on screen as old, does `act`, and times (from just
 * before the act) when each mark's conditions first all hold, with a MutationObserver (and a 20 ms
 * poll). A condition: {sel, text?} an element matching `sel` (whose text matches the regular
 * expression `text`), or {none} no element matching. Also returns the fetches the step made
 * (Resource Timing), to say which API call a slow step waited for.
 */
function stepInPage({ act, marks, timeoutMs }) {
  const main = document.getElementById("main");
  for (const table of main.querySelectorAll("table")) table.setAttribute("data-bench-old", "");
  const holds = (c) => {
    if (c.none) return !document.querySelector(c.none);
    const found = document.querySelectorAll(c.sel);
    if (!c.text) return found.length > 0;
    const pattern = new RegExp(c.text);
    for (const el of found) if (pattern.test(el.textContent.trim())) return true;
    return false;
  };
  const names = Object.keys(marks);
  const at = {};
  performance.clearResourceTimings();
  let t0 = 0;
  return new Promise((resolve, reject) => {
    let observer = null;
    let poll = null;
    let timer = null;
    const finish = () => {
      observer.disconnect();
      clearInterval(poll);
      clearTimeout(timer);
    };
    const check = () => {
      const now = performance.now();
      for (const name of names) if (at[name] === undefined && marks[name].every(holds)) at[name] = now - t0;
      if (names.every((name) => at[name] !== undefined)) {
        finish();
        const fetches = performance
          .getEntriesByType("resource")
          .filter((e) => e.initiatorType === "fetch")
          .map((e) => ({ url: e.name, start: e.startTime - t0, end: e.responseEnd - t0 }));
        resolve({ at, fetches, status: main.querySelector(".page-status")?.textContent ?? null });
      }
    };
    observer = new MutationObserver(check);
    observer.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
    poll = setInterval(check, 20);
    timer = setTimeout(() => {
      finish();
      reject(
        new Error(`step timed out waiting for ${names.filter((n) => at[n] === undefined).join(", ")}: ${main.textContent.slice(0, 600)}`),
      );
    }, timeoutMs);
    t0 = performance.now();
    if (act.hash) location.hash = act.hash;
    for (const [sel, value] of act.fill ?? []) document.querySelector(sel).value = value;
    if (act.click) document.querySelector(act.click).click();
    if (act.submit) document.querySelector(act.submit).requestSubmit();
    if (act.change) document.querySelector(act.change).dispatchEvent(new Event("change"));
  });
}

const step = (page, act, marks) => page.evaluate(stepInPage, { act, marks, timeoutMs: STEP_TIMEOUT_MS });

/** "GET /v1/keys?q&limit&include_total": an API call's path (ids as {id}) and parameter names. */
function callName(url) {
  const u = new URL(url);
  const path = u.pathname.replace(/\/(key|usr)_[0-9A-Za-z]+/g, "/{id}");
  const params = [...u.searchParams.keys()].map((name) => (name === "bucket" ? `bucket=${u.searchParams.get(name)}` : name));
  return params.length > 0 ? `${path}?${params.join("&")}` : path;
}

const exactly = (text) => `^${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`;
const idle = [{ none: "#main [aria-busy], #main .loading" }];
const newRows = (scope) => ({ sel: `${scope} table:not([data-bench-old]) tr[data-key-id]` });

/** The journeys, in the order a round runs them. Each: {id, name, before?, act, marks, main (the mark reported)}. */
function journeys(store) {
  const t = store.targets;
  const list = "#main .key-list";
  const search = (q) => ({ fill: [[`${list} input[name=q]`, q]], submit: `${list} form.filters` });
  const firstPage = [newRows(list), { sel: "#main .page-status", text: "^Showing 1–" }, { none: "#main .paged[aria-busy]" }];
  return [
    {
      id: "a",
      name: "All keys: first page, with the total",
      home: true,
      act: { hash: "#/all-keys" },
      marks: { main: [...firstPage, { sel: "#main .page-status", text: "^Showing 1–50 of " }] },
    },
    {
      id: "b",
      name: "All keys: next page",
      act: { click: "#main .pager button:nth-of-type(2)" },
      marks: { main: [newRows(list), { sel: "#main .page-status", text: "^Showing 51–100 of " }, { none: "#main .paged[aria-busy]" }] },
    },
    { id: "c", name: `Search: a name word ("${t.nameWord}")`, act: search(t.nameWord), marks: { main: firstPage } },
    { id: "d", name: `Search: a ref's last four ("${t.refLastFour}")`, act: search(t.refLastFour), marks: { main: firstPage } },
    {
      id: "e",
      name: "Search: a key id",
      act: search(t.keyId),
      marks: { main: [...firstPage, { sel: "#main .page-status", text: "^Showing 1–1 of 1$" }] },
    },
    {
      id: "f",
      name: "Filter: environment=production + status=active",
      act: {
        fill: [
          [`${list} input[name=q]`, ""],
          [`${list} select[name=environment]`, "production"],
          [`${list} select[name=status]`, "active"],
        ],
        change: `${list} select[name=status]`,
      },
      marks: { main: firstPage },
    },
    {
      id: "g",
      name: `The member's page: keys list (${store.member.keys.toLocaleString("en-US")} keys)`,
      home: true,
      act: { hash: `#/users/${store.member.id}` },
      marks: {
        main: firstPage,
        page: [...firstPage, { sel: "#main .chart-body .totals" }, ...idle],
      },
      extra: { page: { id: "g+", name: "The member's page: every section loaded (keys, usage 24 h, requests, activity)" } },
    },
    {
      id: "h0",
      name: "Usage page: whole deployment, 24 hours (the default)",
      home: true,
      act: { hash: "#/usage" },
      marks: { main: [{ sel: "#main .chart-body .totals", text: "^Last 24 hours:" }, { sel: "#main svg.timeline" }, ...idle] },
    },
    {
      id: "h",
      name: "Usage page: whole deployment, 30 days",
      act: { click: '#main .segments button[data-range="30d"]' },
      marks: { main: [{ sel: "#main .chart-body .totals", text: "^Last 30 days:" }, { sel: "#main svg.timeline" }, ...idle] },
    },
    {
      id: "i",
      name: "One key's page: settings",
      home: true,
      act: { hash: `#/keys/${t.detailKey.id}` },
      marks: {
        main: [{ sel: "#main h1", text: exactly(t.detailKey.name) }, { sel: "#main .ref" }],
        page: [{ sel: "#main h1", text: exactly(t.detailKey.name) }, { sel: "#main .chart-body .totals" }, ...idle],
      },
      extra: { page: { id: "i+", name: "One key's page: every section loaded (usage 24 h, recent requests, audit)" } },
    },
  ];
}

/** Back to "Your account" (drawn without an API call), from where the next journey navigates. */
async function goHome(page) {
  await step(page, { hash: "#/account" }, { main: [{ sel: "#main h1", text: "^Your account$" }, ...idle] });
}

async function signIn(context, url) {
  const page = await context.newPage();
  await page.goto(`${url}/dashboard/#/signin`);
  await page.fill("input[name=email]", ADMIN.email);
  await page.fill("input[name=password]", ADMIN.password);
  await page.click("button[type=submit]");
  await page.waitForFunction(() => !location.hash.startsWith("#/signin"), null, { timeout: STEP_TIMEOUT_MS });
  await page.waitForSelector("#main h1");
  return page;
}

/** One round of every journey on one store's page: {id → {ms, fetches}}. */
async function round(page, store) {
  const out = {};
  for (const journey of journeys(store)) {
    if (journey.home) await goHome(page);
    const result = await step(page, journey.act, journey.marks);
    // The calls a mark waited for: those that had answered by then.
    const before = (ms) => result.fetches.filter((f) => f.end <= ms);
    out[journey.id] = { ms: result.at.main, fetches: before(result.at.main), status: result.status };
    for (const [mark, extra] of Object.entries(journey.extra ?? {}))
      out[extra.id] = { ms: result.at[mark], fetches: before(result.at[mark]) };
  }
  return out;
}

function summarize(samples) {
  const ms = samples.map((s) => s.ms);
  const calls = new Map();
  for (const sample of samples)
    for (const f of sample.fetches) {
      const name = callName(f.url);
      if (!calls.has(name)) calls.set(name, []);
      calls.get(name).push(f.end - f.start);
    }
  return {
    samples: ms.length,
    p50Ms: percentile(ms, 50),
    p95Ms: percentile(ms, 95),
    status: samples.find((s) => s.status)?.status ?? null,
    calls: [...calls]
      .map(([call, durations]) => ({ call, count: durations.length / samples.length, p50Ms: percentile(durations, 50) }))
      .sort((a, b) => b.p50Ms - a.p50Ms),
  };
}

const fmt = (v, d = 0) => (Number.isFinite(v) ? v.toFixed(d) : "–");

function markdown(report) {
  const [base, full] = [report.stores.baseline, report.stores.full];
  const k = (n) => n.toLocaleString("en-US");
  const lines = [
    `| journey | p50 ms at ${k(base.keys)} | p95 ms at ${k(base.keys)} | p50 ms at ${k(full.keys)} | p95 ms at ${k(full.keys)} | p50 ratio | slowest API calls at ${k(full.keys)}, p50 ms |`,
    "|---|---|---|---|---|---|---|",
  ];
  for (const j of report.journeys) {
    // The page's calls run at once, on one event loop: each one's time includes waiting for the others.
    const slowest = j.full.calls.slice(0, 2).map((c) => `\`${c.call}\` ${fmt(c.p50Ms)}`);
    lines.push(
      `| ${j.id}. ${j.name} | ${fmt(j.baseline.p50Ms)} | ${fmt(j.baseline.p95Ms)} | ${fmt(j.full.p50Ms)} | ${fmt(j.full.p95Ms)} | ${fmt(j.p50Ratio, 2)}× | ${slowest.join(", ") || "–"} |`,
    );
  }
  return lines.join("\n");
}

async function main() {
  const flags = parseArgs(process.argv.slice(2));
  const report = {
    date: new Date().toISOString(),
    options: { keys: flags.keys, baseline: flags.baseline, rounds: flags.rounds, smoke: flags.smoke },
    machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version },
    loadavg: { start: loadavg() },
    stores: {},
    journeys: [],
  };
  const dirs = [];
  const servers = [];
  let browser = null;
  try {
    const now = Date.now();
    const stores = {};
    for (const [label, count] of [
      ["baseline", flags.baseline],
      ["full", flags.keys],
    ]) {
      const dir = mkdtempSync(join(tmpdir(), `keyward-bench-console-${label}-`));
      dirs.push(dir);
      log(`seeding the ${label} store: ${count} keys`);
      stores[label] = await seedStore(dir, count, now);
      log(`  ${stores[label].seedSeconds.toFixed(1)} s; member ${stores[label].member.id} owns ${stores[label].member.keys} keys`);
      const server = await startServer({
        command: process.execPath,
        args: ["bin/keyward.js", "serve"],
        cwd: ROOT,
        env: {
          KEYWARD_DATABASE_URL: `sqlite:${stores[label].dbPath}`,
          KEYWARD_PORT: "0",
          KEYWARD_HOST: "127.0.0.1",
          KEYWARD_LOG_LEVEL: "warn",
        },
      });
      servers.push(server);
      // The last of what it logs, to show when a step fails (an API error reads "Internal error" on the page).
      server.tail = "";
      for (const stream of [server.child.stdout, server.child.stderr])
        stream.on("data", (chunk) => {
          server.tail = (server.tail + chunk).slice(-4000);
        });
      stores[label].url = `http://127.0.0.1:${server.port}`;
      log(`  serving on ${stores[label].url}`);
    }
    report.loadavg.afterSeeding = loadavg();

    const found = findChromium();
    browser = await chromium.launch({ executablePath: found.executablePath, args: found.args, env: { ...process.env, ...found.env } });
    report.machine.chromium = browser.version();
    // One context per store: their own cookie jars (cookies do not tell ports apart).
    const pages = {};
    for (const label of ["baseline", "full"]) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: "en-US" });
      pages[label] = await signIn(context, stores[label].url);
    }

    const samples = { baseline: {}, full: {} };
    for (let r = 0; r <= flags.rounds; r++) {
      for (const label of ["baseline", "full"]) {
        const started = performance.now();
        const result = await round(pages[label], stores[label]);
        if (r === 0) {
          log(`warm-up round, ${label}: ${((performance.now() - started) / 1000).toFixed(1)} s (not counted)`);
          continue;
        }
        for (const [id, sample] of Object.entries(result)) {
          samples[label][id] ??= [];
          samples[label][id].push(sample);
        }
        log(
          `round ${r}/${flags.rounds}, ${label}: ${Object.entries(result)
            .map(([id, s]) => `${id} ${fmt(s.ms)}`)
            .join(", ")} ms`,
        );
      }
    }
    report.loadavg.end = loadavg();

    for (const label of ["baseline", "full"]) {
      const { dbPath: _db, ...rest } = stores[label];
      report.stores[label] = rest;
    }
    const names = [];
    for (const j of journeys(stores.full)) {
      names.push([j.id, j.name]);
      for (const extra of Object.values(j.extra ?? {})) names.push([extra.id, extra.name]);
    }
    for (const [id, name] of names) {
      const baseline = summarize(samples.baseline[id]);
      const full = summarize(samples.full[id]);
      report.journeys.push({ id, name, baseline, full, p50Ratio: full.p50Ms / baseline.p50Ms, p95Ratio: full.p95Ms / baseline.p95Ms });
    }
  } catch (error) {
    for (const server of servers) if (server.tail) log(`the service on port ${server.port} logged:\n${server.tail}`);
    throw error;
  } finally {
    await browser?.close().catch(() => {});
    for (const server of servers) await server.stop().catch(() => {});
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
  const table = markdown(report);
  process.stdout.write(
    `The console, ${report.date}: ${report.machine.cpu}, ${report.machine.cores} cores, Node ${report.machine.node}, Chromium ${report.machine.chromium}; ` +
      `${flags.rounds} rounds after a warm-up; load average ${report.loadavg.start.join(" ")} at start, ${report.loadavg.end.join(" ")} at the end.\n\n${table}\n`,
  );
  report.markdown = table;
  const out = resolve(flags.out);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  log(`results written to ${flags.out}`);
}

await main();
