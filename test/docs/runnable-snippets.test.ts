/**
 * Runnable documentation snippets (issue 20): every snippet marked runnable in README.md,
 * docs/*.md and examples/*\/README.md is run, in order, against a real `keyward serve`, so a
 * snippet cannot rot.
 *
 * ## The convention
 *
 * Put an HTML comment on the line right before the fence (GitHub renders nothing for it):
 *
 *     <!-- runnable -->
 *     ```sh
 *     curl -s http://127.0.0.1:8080/v1/introspect -H "X-API-Key: $KEY"
 *     ```
 *
 * Languages: `sh`/`bash` (run by bash with `set -eo pipefail`), `ts` (transpiled with the
 * `typescript` devDependency, run by node, and type-checked together with every other TypeScript
 * snippet) and `js` (run by node as an ES module). Options follow a colon, separated by `;`:
 *
 * - `expect <text>`: the snippet's output (stdout and stderr) must contain `<text>`; repeatable.
 * - `server`: the snippet starts a long-running server on the app port (3000 in the docs). For
 *   `sh`, its last command is the server (the lines before it run as usual); for `ts`/`js`, the
 *   whole module. The test waits until the port answers, runs the file's later snippets, and stops
 *   the server when the file is done.
 * - `setup` (`ts`/`js`): the snippet is also prepended to every later TypeScript/JavaScript snippet
 *   of the same file (e.g. the one that creates `keyward`).
 *
 * Lines between `<!-- runnable…` and `-->` are hidden code run before the snippet: what a reader
 * has in scope from the surrounding prose (an `app`, a `presentedKey`).
 *
 *     <!-- runnable
 *     import Fastify from "fastify";
 *     const app = Fastify();
 *     -->
 *
 * ## What the snippets find
 *
 * One `keyward serve`, started on an empty SQLite store in a scratch folder that stands in for the
 * repository root (`./data/keyward.db` is the served store; `examples/` is linked in), serves
 * every document. A document's snippets run in order, from that folder, and share state: the
 * variables a shell snippet sets (every assignment is exported) and its working directory carry to
 * the later snippets, shell or not; the first failure skips the rest of that document. Before its
 * first snippet, the environment holds what a reader has after the quick start: `ADMIN`, `ADMIN_KEY` and
 * `KEYWARD_ADMIN_KEY` (the one-time admin key printed on first start), `KEY` and `ID` (a sandbox
 * key of user `alice` with scope `read`), `KEYWARD_SERVICE_KEY` (a key with `keys:verify`) and
 * `KEYWARD_URL`. `keyward` and `npx keyward` run this repository's `bin/keyward.js`. The documented
 * addresses are rewritten to the real ones: `127.0.0.1:8080`, `localhost:8080` and `keyward:8080`
 * to the server, `127.0.0.1:3000`, `localhost:3000` and `.listen(3000` to a free app port (also in
 * `PORT`).
 *
 * Snippets that need what the test does not have (nginx, PostgreSQL, Redis, Docker, a second
 * machine) stay unmarked.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { delimiter, join } from "node:path";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, CLI, REPO_ROOT } from "../helpers/process.js";

type Lang = "sh" | "ts" | "js";

interface Snippet {
  /** Relative to the repository root. */
  file: string;
  /** The line of the opening fence (1-based). */
  line: number;
  lang: Lang;
  server: boolean;
  setup: boolean;
  expects: string[];
  /** Hidden lines from the marker comment, each with its line in the file. */
  hidden: { text: string; line: number }[];
  code: { text: string; line: number }[];
}

const LANGS: Record<string, Lang> = {
  sh: "sh",
  bash: "sh",
  shell: "sh",
  ts: "ts",
  typescript: "ts",
  js: "js",
  javascript: "js",
  mjs: "js",
};

/** Where a runnable snippet may live. */
function docFiles(): string[] {
  const files = ["README.md"];
  for (const name of readdirSync(join(REPO_ROOT, "docs")).sort()) if (name.endsWith(".md")) files.push(`docs/${name}`);
  for (const dir of readdirSync(join(REPO_ROOT, "examples")).sort())
    if (existsSync(join(REPO_ROOT, "examples", dir, "README.md"))) files.push(`examples/${dir}/README.md`);
  return files;
}

/** The marked snippets of one Markdown file; malformed markers go to `problems`. */
function parseSnippets(file: string, text: string, problems: string[]): Snippet[] {
  const lines = text.split("\n");
  const snippets: Snippet[] = [];
  let inFence = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (/^\s*```/.test(line)) {
      inFence = !inFence;
      continue;
    }
    const marker = inFence ? null : /^\s*<!--\s*runnable\b(.*)$/.exec(line);
    if (!marker) continue;
    const markerLine = i + 1;
    let head = marker[1] as string;
    const hidden: Snippet["hidden"] = [];
    if (head.includes("-->")) head = head.slice(0, head.indexOf("-->"));
    else {
      for (i++; i < lines.length && !(lines[i] as string).includes("-->"); i++) hidden.push({ text: lines[i] as string, line: i + 1 });
      if (i >= lines.length) {
        problems.push(`${file}:${markerLine}: the runnable comment is never closed (-->)`);
        break;
      }
      const last = (lines[i] as string).slice(0, (lines[i] as string).indexOf("-->"));
      if (last.trim()) hidden.push({ text: last, line: i + 1 });
    }
    const fence = /^```(\S*)\s*$/.exec(lines[i + 1] ?? "");
    if (!fence) {
      problems.push(`${file}:${markerLine}: a runnable marker must be followed, on the next line, by a fence`);
      continue;
    }
    const lang = LANGS[fence[1] as string];
    if (!lang) {
      problems.push(`${file}:${i + 2}: runnable snippets are sh, ts or js, not "${fence[1]}"`);
      continue;
    }
    const snippet: Snippet = { file, line: i + 2, lang, server: false, setup: false, expects: [], hidden, code: [] };
    for (const clause of head.replace(/^\s*:/, "").split(";")) {
      const option = clause.trim();
      if (option === "") continue;
      if (option === "server") snippet.server = true;
      else if (option === "setup" && lang !== "sh") snippet.setup = true;
      else if (/^expect\s/.test(option)) snippet.expects.push(option.slice("expect".length).trim());
      else problems.push(`${file}:${markerLine}: unknown runnable option "${option}"`);
    }
    if (snippet.server && snippet.expects.length > 0) problems.push(`${file}:${markerLine}: a server snippet cannot expect output`);
    for (i += 2; i < lines.length && !/^\s*```\s*$/.test(lines[i] as string); i++)
      snippet.code.push({ text: lines[i] as string, line: i + 1 });
    if (i >= lines.length) problems.push(`${file}:${snippet.line}: the fence is never closed`);
    snippets.push(snippet);
  }
  return snippets;
}

const problems: string[] = [];
const byFile = new Map<string, Snippet[]>();
for (const file of docFiles()) {
  const snippets = parseSnippets(file, readFileSync(join(REPO_ROOT, file), "utf8"), problems);
  if (snippets.length > 0) byFile.set(file, snippets);
}

/** Code lines with the doc line each came from, for error messages. */
interface Assembled {
  text: string[];
  origin: string[];
}

/** A TypeScript/JavaScript snippet as run: the file's earlier `setup` snippets, its hidden lines, its code. */
function assembleModule(snippet: Snippet): Assembled {
  const parts = (byFile.get(snippet.file) ?? []).filter((s) => s.setup && s.lang !== "sh" && s.line < snippet.line);
  const out: Assembled = { text: [], origin: [] };
  for (const part of [...parts, snippet])
    for (const { text, line } of [...part.hidden, ...part.code]) {
      out.text.push(text);
      out.origin.push(`${snippet.file}:${line}`);
    }
  return out;
}

/** The scratch repository root and the `keyward serve` in it, shared by every document. */
interface Server {
  workdir: string;
  scripts: string;
  url: string;
  /** The reader's environment before the first snippet of a document. */
  env: Record<string, string>;
  serve: ChildProcess;
}

/** One document's run: what its snippets hand on to the next. */
interface Session {
  scripts: string;
  url: string;
  appPort: number;
  env: Record<string, string>;
  cwd: string;
  background: { child: ChildProcess; output: () => string }[];
}

/** Process groups still running, stopped if the test process ends before `afterAll`. */
const running = new Set<number>();
process.once("exit", () => {
  for (const pid of running)
    try {
      process.kill(-pid, "SIGKILL");
    } catch {}
});

function spawnGroup(command: string, args: string[], cwd: string, env: Record<string, string>) {
  const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  if (child.pid) running.add(child.pid);
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.once("exit", () => {
    if (child.pid) running.delete(child.pid);
  });
  return { child, output: () => output };
}

async function stopGroup(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || !child.pid) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    process.kill(-child.pid, "SIGTERM");
  } catch {}
  const timer = setTimeout(() => {
    try {
      if (child.pid) process.kill(-child.pid, "SIGKILL");
    } catch {}
  }, 5_000);
  await exited;
  clearTimeout(timer);
}

/** Runs a command to its end (or kills its process group after `timeoutMs`). */
async function run(command: string, args: string[], cwd: string, env: Record<string, string>, timeoutMs = 30_000) {
  const { child, output } = spawnGroup(command, args, cwd, env);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void stopGroup(child);
  }, timeoutMs);
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (exitCode) => resolve(exitCode));
  });
  clearTimeout(timer);
  // The rest of its output; then whatever it left running in the background goes too.
  await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 2_000))]);
  try {
    if (child.pid) process.kill(-child.pid, "SIGKILL");
  } catch {}
  return { code, timedOut, output: output() };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** The real npx, for commands other than `keyward`. */
function realNpx(): string {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) if (dir && existsSync(join(dir, "npx"))) return join(dir, "npx");
  return "npx";
}

/** A scratch folder standing in for the repository root, a `keyward serve` in it, and the reader's environment. */
async function startServer(): Promise<Server> {
  assertBuilt();
  const base = join(REPO_ROOT, ".tmp", "docs-snippets");
  mkdirSync(base, { recursive: true });
  // Inside the repository, so `import … from "keyward"` resolves through the package's own exports.
  const workdir = mkdtempSync(join(base, "run-"));
  const bin = join(workdir, ".bin");
  const scripts = join(workdir, ".snippets");
  mkdirSync(bin);
  mkdirSync(scripts);
  mkdirSync(join(workdir, "data"));
  symlinkSync(join(REPO_ROOT, "examples"), join(workdir, "examples"));
  writeFileSync(join(bin, "keyward"), `#!/bin/sh\nexec '${process.execPath}' '${CLI}' "$@"\n`);
  writeFileSync(
    join(bin, "npx"),
    [
      "#!/bin/sh",
      "# `npx keyward …` (and `npx --no-install keyward …`) is this repository's CLI; anything else goes to npx.",
      'if [ "$1" = keyward ]; then shift; exec keyward "$@"; fi',
      'if [ "$1" = --no-install ] && [ "$2" = keyward ]; then shift 2; exec keyward "$@"; fi',
      `exec '${realNpx()}' "$@"`,
      "",
    ].join("\n"),
  );
  chmodSync(join(bin, "keyward"), 0o755);
  chmodSync(join(bin, "npx"), 0o755);

  // Nothing of the developer's own Keyward settings leaks in: the docs' defaults apply.
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter((entry): entry is [string, string] => !entry[0].startsWith("KEYWARD_") && entry[1] !== undefined),
  );
  const { child: serve, output: serveOutput } = spawnGroup(
    process.execPath,
    [CLI, "serve", "--port", "0", "--host", "127.0.0.1"],
    workdir,
    inherited,
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`keyward serve did not start:\n${serveOutput()}`)), 20_000);
    const check = () => {
      const match = /Keyward listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(serveOutput());
      if (match) {
        clearTimeout(timer);
        resolve(match[1] as string);
      }
    };
    serve.stdout?.on("data", check);
    serve.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`keyward serve exited with ${code}:\n${serveOutput()}`));
    });
  });
  const adminKey = /\bkw_live_[0-9A-Za-z]{38}\b/.exec(serveOutput())?.[0];
  if (!adminKey) throw new Error(`keyward serve printed no admin key on first start:\n${serveOutput()}`);
  const createKey = async (body: Record<string, unknown>) => {
    const response = await fetch(`${url}/v1/keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (response.status !== 201) throw new Error(`creating a key for the docs failed: ${response.status} ${await response.text()}`);
    return (await response.json()) as { key: string; id: string };
  };
  const reader = await createKey({ owner: { type: "user", id: "alice" }, name: "docs reader", environment: "sandbox", scopes: ["read"] });
  const service = await createKey({
    owner: { type: "application", id: "gateway" },
    name: "docs service key",
    environment: "production",
    scopes: ["keys:verify"],
  });
  return {
    workdir,
    scripts,
    url,
    serve,
    env: {
      ...inherited,
      PATH: `${bin}${delimiter}${process.env.PATH ?? ""}`,
      KEYWARD_URL: url,
      ADMIN: adminKey,
      ADMIN_KEY: adminKey,
      KEYWARD_ADMIN_KEY: adminKey,
      KEY: reader.key,
      ID: reader.id,
      KEYWARD_SERVICE_KEY: service.key,
    },
  };
}

async function stopServer(server: Server | undefined): Promise<void> {
  if (!server) return;
  await stopGroup(server.serve);
  rmSync(server.workdir, { recursive: true, force: true });
}

/** A document starts where a reader of the quick start is: in the repository root, with its environment. */
async function openSession(server: Server): Promise<Session> {
  const appPort = await freePort();
  return {
    scripts: server.scripts,
    url: server.url,
    appPort,
    cwd: server.workdir,
    env: { ...server.env, PORT: String(appPort) },
    background: [],
  };
}

async function closeSession(session: Session | undefined): Promise<void> {
  for (const { child } of session?.background ?? []) await stopGroup(child);
}

/** The documented addresses, pointed at this session's server and app port. */
function localize(text: string, session: Session): string {
  const host = session.url.slice("http://".length);
  return text
    .replace(/\b(?:127\.0\.0\.1|localhost|keyward):8080\b/g, host)
    .replace(/\b(?:127\.0\.0\.1|localhost):3000\b/g, `127.0.0.1:${session.appPort}`)
    .replace(/\.listen\(3000\b/g, `.listen(${session.appPort}`);
}

/** Replaces `<script>:<line>` in the output with the doc line it came from. */
function attribute(output: string, script: string, origin: (string | undefined)[]): string {
  const escaped = script.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return output.replace(new RegExp(`(?:file://)?${escaped}:(\\d+)(?::\\d+)?`, "g"), (whole, n: string) => origin[Number(n) - 1] ?? whole);
}

const MAX_OUTPUT = 12_000;
const clip = (output: string) =>
  output.length > MAX_OUTPUT ? `${output.slice(0, MAX_OUTPUT)}\n… (${output.length - MAX_OUTPUT} more characters)` : output;

function failure(snippet: Snippet, why: string, output: string): Error {
  return new Error(`${snippet.file}:${snippet.line} (${snippet.lang}): ${why}\n----- output -----\n${clip(output)}------------------`);
}

function checkExpectations(snippet: Snippet, output: string): void {
  for (const text of snippet.expects)
    if (!output.includes(text)) throw failure(snippet, `the output lacks ${JSON.stringify(text)}`, output);
}

let counter = 0;

/** Runs shell lines in a fresh bash that starts from, and hands back, the session's variables and folder. */
async function runShell(session: Session, snippet: Snippet, lines: { text: string; line: number }[]): Promise<string> {
  const name = join(session.scripts, `${String(++counter).padStart(2, "0")}-${snippet.line}`);
  const state = `${name}.env`;
  const preamble = [
    "set -a",
    `trap 'env -0 > ${JSON.stringify(state)}; pwd > ${JSON.stringify(`${state}.cwd`)}' EXIT`,
    `trap 'echo "__SNIPPET_ERROR__ \${LINENO} exit $?: \${BASH_COMMAND}" >&2' ERR`,
    "set -eo pipefail",
  ];
  const origin: (string | undefined)[] = preamble.map(() => undefined);
  const text = [...preamble];
  for (const { text: line, line: docLine } of lines) {
    text.push(localize(line, session));
    origin.push(`${snippet.file}:${docLine}`);
  }
  writeFileSync(`${name}.sh`, `${text.join("\n")}\n`);
  const result = await run("bash", ["--noprofile", "--norc", `${name}.sh`], session.cwd, session.env);
  const output = result.output.replace(
    /__SNIPPET_ERROR__ (\d+) (exit \d+: .*)/g,
    (_whole, n: string, rest: string) => `${origin[Number(n) - 1] ?? `${name}.sh:${n}`}: ${rest}`,
  );
  if (result.timedOut) throw failure(snippet, "timed out (a server? mark it `server`)", output);
  if (result.code !== 0) throw failure(snippet, `bash exited with ${result.code}`, output);
  const env: Record<string, string> = {};
  for (const entry of readFileSync(state, "utf8").split("\0")) {
    const eq = entry.indexOf("=");
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  for (const shellOwn of ["PWD", "OLDPWD", "SHLVL", "_"]) delete env[shellOwn];
  session.env = env;
  session.cwd = readFileSync(`${state}.cwd`, "utf8").trim();
  return output;
}

/** Writes a TypeScript/JavaScript snippet as an ES module (with an inline source map to the .ts) and returns its path and line origins. */
function writeModule(session: Session, snippet: Snippet): { path: string; source: string; origin: string[] } {
  const assembled = assembleModule(snippet);
  const name = join(session.scripts, `${String(++counter).padStart(2, "0")}-${snippet.line}`);
  const code = assembled.text.map((line) => localize(line, session)).join("\n");
  if (snippet.lang === "js") {
    writeFileSync(`${name}.mjs`, code);
    return { path: `${name}.mjs`, source: `${name}.mjs`, origin: assembled.origin };
  }
  writeFileSync(`${name}.ts`, code);
  const js = ts.transpileModule(code, {
    fileName: `${name}.ts`,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, inlineSourceMap: true, inlineSources: true },
  });
  writeFileSync(`${name}.mjs`, js.outputText);
  return { path: `${name}.mjs`, source: `${name}.ts`, origin: assembled.origin };
}

async function waitForAppPort(session: Session, snippet: Snippet, server: { child: ChildProcess; output: () => string }) {
  const deadline = Date.now() + 20_000;
  while (!(await portAnswers(session.appPort))) {
    if (server.child.exitCode !== null || server.child.signalCode !== null)
      throw failure(
        snippet,
        `the server exited (${server.child.exitCode ?? server.child.signalCode}) before port ${session.appPort} answered`,
        server.output(),
      );
    if (Date.now() > deadline) throw failure(snippet, `nothing answered on the app port (${session.appPort}) within 20 s`, server.output());
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function runSnippet(session: Session, snippet: Snippet): Promise<void> {
  if (snippet.lang === "sh") {
    if (!snippet.server) {
      checkExpectations(snippet, await runShell(session, snippet, [...snippet.hidden, ...snippet.code]));
      return;
    }
    // The last command (with its `\` continuations) is the server; the lines before it run as usual.
    let start = snippet.code.length - 1;
    while (start >= 0 && /^\s*(#.*)?$/.test(snippet.code[start]?.text ?? "")) start--;
    while (start > 0 && /\\\s*$/.test(snippet.code[start - 1]?.text ?? "")) start--;
    const before = [...snippet.hidden, ...snippet.code.slice(0, start)];
    if (before.some((line) => line.text.trim() !== "")) await runShell(session, snippet, before);
    const command = snippet.code
      .slice(start)
      .map((line) => localize(line.text, session))
      .join("\n");
    const server = spawnGroup("bash", ["--noprofile", "--norc", "-c", command], session.cwd, session.env);
    session.background.push(server);
    await waitForAppPort(session, snippet, server);
    return;
  }
  const module = writeModule(session, snippet);
  const args = ["--enable-source-maps", module.path];
  if (snippet.server) {
    const server = spawnGroup(process.execPath, args, session.cwd, session.env);
    session.background.push(server);
    await waitForAppPort(session, snippet, server);
    return;
  }
  const result = await run(process.execPath, args, session.cwd, session.env);
  const output = attribute(result.output, module.source, module.origin);
  if (result.timedOut) throw failure(snippet, "timed out (a server? mark it `server`)", output);
  if (result.code !== 0) throw failure(snippet, `node exited with ${result.code}`, output);
  checkExpectations(snippet, output);
}

it("runnable markers are well-formed", () => {
  expect(problems).toEqual([]);
});

it("the README, the middleware guide and the example have runnable snippets", () => {
  for (const file of ["README.md", "docs/middleware.md", "examples/approvals-api/README.md"])
    expect(byFile.get(file)?.length ?? 0, file).toBeGreaterThan(0);
});

it("the TypeScript snippets type-check", () => {
  assertBuilt();
  const modules = [...byFile.values()].flat().filter((snippet) => snippet.lang === "ts");
  const base = join(REPO_ROOT, ".tmp", "docs-snippets");
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(join(base, "typecheck-"));
  try {
    const origins = new Map<string, string[]>();
    for (const snippet of modules) {
      const assembled = assembleModule(snippet);
      const path = join(dir, `${snippet.file.replace(/[^A-Za-z0-9]+/g, "-")}-${snippet.line}.ts`);
      writeFileSync(path, assembled.text.join("\n"));
      origins.set(path, assembled.origin);
    }
    const program = ts.createProgram([...origins.keys()], {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      lib: ["lib.es2023.d.ts"],
      types: ["node"],
      strict: true,
      esModuleInterop: true,
      skipLibCheck: true,
      noEmit: true,
    });
    const messages = ts.getPreEmitDiagnostics(program).map((diagnostic) => {
      const text = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n");
      if (!diagnostic.file || diagnostic.start === undefined) return text;
      const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
      const where = origins.get(diagnostic.file.fileName)?.[line] ?? `${diagnostic.file.fileName}:${line + 1}`;
      return `${where}: TS${diagnostic.code}: ${text}`;
    });
    expect(messages).toEqual([]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

let server: Server | undefined;
beforeAll(async () => {
  if (byFile.size > 0) server = await startServer();
}, 40_000);
afterAll(async () => {
  await stopServer(server);
}, 20_000);

for (const [file, snippets] of byFile) {
  describe(file, () => {
    let session: Session | undefined;
    let broken: string | undefined;
    beforeAll(async () => {
      if (server) session = await openSession(server);
    });
    afterAll(async () => {
      await closeSession(session);
    }, 20_000);
    for (const snippet of snippets) {
      const label = [snippet.lang, snippet.server ? "server" : "", snippet.setup ? "setup" : ""].filter(Boolean).join(", ");
      it(`${file}:${snippet.line} (${label})`, async (context) => {
        if (broken) context.skip(`${broken} failed before it`);
        if (!session) throw new Error("no session");
        try {
          await runSnippet(session, snippet);
        } catch (error) {
          broken = `${file}:${snippet.line}`;
          throw error;
        }
      }, 60_000);
    }
  });
}
