// The package as a stranger gets it: `npm pack` of this repository, installed into a fresh
// project outside it, then the README's embedding snippet, two middleware snippets from
// docs/middleware.md over real HTTP, and the `keyward` command, all run there.
//
// Slow (npm pack compiles dist/ through `prepare`; the install compiles better-sqlite3 from
// source, a minute or two on two cores) and it installs from npm's cache, so it runs in
// `npm run test:serial`, not in test:suite or test:quick.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, isAbsolute, join, relative } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);

const REPO = realpathSync(join(import.meta.dirname, "..", ".."));
const PKG = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as {
  name: string;
  version: string;
  bin: Record<string, string>;
  exports: Record<string, { types: string; default: string }>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

/** The first ```ts block after the line `heading` in a Markdown file of this repository. */
function docSnippet(file: string, heading: string): string {
  const lines = readFileSync(join(REPO, file), "utf8").split("\n");
  const at = lines.indexOf(heading);
  if (at < 0) throw new Error(`${file}: no heading "${heading}" (the test copies its snippet)`);
  const open = lines.findIndex((line, i) => i > at && line.startsWith("```"));
  const close = lines.findIndex((line, i) => i > open && line.startsWith("```"));
  if (open < 0 || close < 0 || lines[open] !== "```ts") throw new Error(`${file}: no \`\`\`ts block under "${heading}"`);
  return lines.slice(open + 1, close).join("\n");
}

/**
 * The environment of a stranger's shell: nothing that points back into this repository (npm run
 * puts its node_modules/.bin on PATH and npm_* variables in the environment), no NODE_PATH.
 */
function strangerEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (/^npm_/i.test(name) || ["NODE_PATH", "NODE_OPTIONS", "INIT_CWD"].includes(name) || name.startsWith("KEYWARD_")) continue;
    env[name] = value;
  }
  env.PATH = (process.env.PATH ?? "")
    .split(delimiter)
    .filter((entry) => entry !== "" && !isInside(REPO, entry))
    .join(delimiter);
  return { ...env, ...extra };
}

function isInside(folder: string, path: string): boolean {
  const rel = relative(folder, path);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

let tmp = "";
let app = "";
let tarball = "";
let packed: { path: string; size: number; mode: number }[] = [];
let unpackedSize = 0;
const children = new Set<ChildProcess>();

/** Runs a command in the fresh project; resolves with its stdout, rejects with its stderr. */
async function inApp(command: string, args: string[], options: { timeout?: number; env?: Record<string, string> } = {}) {
  const { stdout } = await run(command, args, {
    cwd: app,
    env: strangerEnv(options.env),
    timeout: options.timeout ?? 60_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}

/** Starts a long-running program in the fresh project and waits for the first stdout line that `match` accepts. */
async function startInApp(
  args: string[],
  match: RegExp,
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  const child = spawn(process.execPath, args, { cwd: app, env: strangerEnv(env), stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  child.once("exit", () => children.delete(child));
  let out = "";
  let err = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    err += chunk.toString();
  });
  const found = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.join(" ")} did not start: ${out}${err}`)), 30_000);
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const m = match.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${args.join(" ")} exited with ${code}: ${out}${err}`));
    });
  });
  return { child, match: found };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "keyward-packed-"));
  tmp = realpathSync(tmp);
  if (isInside(REPO, tmp)) throw new Error(`the temporary folder ${tmp} is inside the repository`);

  // 1. The tarball, exactly as `npm publish` would make it (`prepare` compiles dist/ first).
  const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", tmp], {
    cwd: REPO,
    env: strangerEnv(),
    timeout: 4 * 60_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  const [info] = JSON.parse(stdout) as { filename: string; unpackedSize: number; files: typeof packed }[];
  if (!info) throw new Error(`npm pack printed no package: ${stdout}`);
  tarball = join(tmp, info.filename);
  packed = info.files;
  unpackedSize = info.unpackedSize;

  // 2. A fresh project beside it, with nothing of this repository but the tarball.
  app = join(tmp, "app");
  mkdirSync(app);
  writeFileSync(
    join(app, "package.json"),
    `${JSON.stringify(
      {
        name: "keyward-consumer",
        private: true,
        type: "module",
        // npm 11 lists dependency install scripts it has not been told to run; better-sqlite3 builds its native module in one.
        allowScripts: { "better-sqlite3": true },
      },
      null,
      2,
    )}\n`,
  );
  // This machine downloads no prebuilt binaries: better-sqlite3 compiles against the local Node
  // headers, as in this repository (.prebuild-installrc). Elsewhere a consumer needs no such file.
  writeFileSync(join(app, ".prebuild-installrc"), "buildFromSource=true\n");
  const peer = (name: string) => `${name}@${PKG.dependencies[name] ?? PKG.devDependencies[name]}`;
  await run(
    "npm",
    [
      "install",
      tarball,
      // The snippets' own frameworks, and a TypeScript compiler for the snippets, which are TypeScript.
      peer("fastify"),
      peer("express"),
      peer("typescript"),
      peer("@types/node"),
      peer("@types/express"),
      "--prefer-offline",
      "--no-audit",
      "--no-fund",
    ],
    { cwd: app, env: strangerEnv(), timeout: 9 * 60_000, maxBuffer: 16 * 1024 * 1024 },
  );
}, 10 * 60_000);

afterAll(async () => {
  await Promise.all([...children].map(stop));
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe("the packed tarball", () => {
  it("holds the build, the command and the dashboard, and nothing else", () => {
    const paths = packed.map((f) => f.path);
    const junk = paths.filter(
      (p) => !(/^(dist|bin|dashboard)\//.test(p) || ["package.json", "README.md"].includes(p) || /^LICEN[CS]E/i.test(p)),
    );
    expect(junk, "files outside dist/, bin/, dashboard/ (tests, data, bench, sources?)").toEqual([]);
    expect(
      paths.filter((p) => p.endsWith(".map") || p.endsWith(".tsbuildinfo")),
      "source maps point at src/, which is not packed",
    ).toEqual([]);
    // Build output left over from a source file that is gone would ship too.
    const stale = paths.filter((p) => p.startsWith("dist/") && p.endsWith(".js") && !existsSync(join(REPO, "src", `${p.slice(5, -3)}.ts`)));
    expect(stale, "stale build output in dist/: rm -rf dist && npm run build").toEqual([]);
    for (const [subpath, target] of Object.entries(PKG.exports)) {
      for (const file of [target.types, target.default])
        expect(paths, `exports["${subpath}"] names ${file}`).toContain(file.replace(/^\.\//, ""));
    }
    for (const file of Object.values(PKG.bin)) {
      const entry = packed.find((f) => f.path === file);
      expect(entry, `bin ${file}`).toBeDefined();
      expect((entry?.mode ?? 0) & 0o111, `bin ${file} is executable`).not.toBe(0);
      expect(readFileSync(join(REPO, file), "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true);
    }
    // A guard against packing what is not the product (bench results, tests, stale builds), not a
    // feature budget: 1.6 MB unpacked with SSO, portal sessions and the embeddable element.
    expect(unpackedSize, "the unpacked package stays small").toBeLessThan(2_000_000);
  });

  it("installs as a real copy that the fresh project resolves inside its own node_modules", async () => {
    const installed = join(app, "node_modules", "keyward");
    expect(lstatSync(installed).isSymbolicLink(), "node_modules/keyward is a copy, not a link").toBe(false);
    expect(JSON.parse(readFileSync(join(installed, "package.json"), "utf8")).version).toBe(PKG.version);
    const resolved = JSON.parse(
      await inApp(process.execPath, [
        "--input-type=module",
        "-e",
        `import { createRequire } from "node:module";
         const require = createRequire(process.cwd() + "/package.json");
         console.log(JSON.stringify([import.meta.resolve("keyward"), require.resolve("keyward"), import.meta.resolve("better-sqlite3")]));`,
      ]),
    ) as string[];
    for (const found of resolved) {
      const path = found.startsWith("file:") ? new URL(found).pathname : found;
      expect(isInside(join(app, "node_modules"), realpathSync(path)), `${found} is inside the fresh project`).toBe(true);
      expect(isInside(REPO, realpathSync(path)), `${found} is outside the repository`).toBe(false);
    }
  });

  it("loads every subpath in package.json's exports", async () => {
    const specifiers = Object.keys(PKG.exports).map((subpath) => (subpath === "." ? "keyward" : `keyward/${subpath.slice(2)}`));
    const out = await inApp(process.execPath, [
      "--input-type=module",
      "-e",
      `const loaded = {};
       for (const s of ${JSON.stringify(specifiers)}) loaded[s] = Object.keys(await import(s)).length;
       console.log(JSON.stringify(loaded));`,
    ]);
    const loaded = JSON.parse(out) as Record<string, number>;
    for (const s of specifiers) expect(loaded[s], `${s} exports something`).toBeGreaterThan(0);
  });

  it("`npx keyward --version` prints package.json's version", async () => {
    // --no-install: the bin installed here or nothing, never a package of that name from the registry.
    expect((await inApp("npx", ["--no-install", "keyward", "--version"])).trim()).toBe(PKG.version);
  });

  describe("the documented snippets, as the files a user would write", () => {
    const ctx = '{ actor: { type: "cli", id: "packed-tarball-test" } }';
    beforeAll(async () => {
      const inProcess = docSnippet("docs/middleware.md", "## In process");
      writeFileSync(
        join(app, "embed.ts"),
        [
          "// What the README leaves to the reader: the presented key and the client address.",
          "const presentedKey = process.argv[2];",
          'const ip = "127.0.0.1";',
          docSnippet("README.md", "## Embedding"),
          'if (result.valid) console.log("VALID", result.key.owner.id);',
          "",
        ].join("\n"),
      );
      writeFileSync(
        join(app, "fastify-app.ts"),
        [
          'import Fastify from "fastify";',
          "const app = Fastify();",
          inProcess,
          docSnippet("docs/middleware.md", "### Fastify — `keyward/fastify`"),
          `const { key } = await keyward.createKey({ owner: { type: "user", id: "alice" }, name: "fastify", environment: "sandbox", scopes: ["read"] }, ${ctx});`,
          'const address = await app.listen({ port: 0, host: "127.0.0.1" });',
          "console.log(JSON.stringify({ address, key }));",
          "",
        ].join("\n"),
      );
      writeFileSync(
        join(app, "express-app.ts"),
        [
          'import express from "express";',
          "const app = express();",
          inProcess,
          docSnippet("docs/middleware.md", "### Express — `keyward/express`"),
          `const { key } = await keyward.createKey({ owner: { type: "user", id: "bob" }, name: "express", environment: "production", scopes: ["write"] }, ${ctx});`,
          'const server = app.listen(0, "127.0.0.1", () => {',
          '  const { port } = server.address() as import("node:net").AddressInfo;',
          '  console.log(JSON.stringify({ address: "http://127.0.0.1:" + port, key }));',
          "});",
          "",
        ].join("\n"),
      );
      // A strict consumer: skipLibCheck off, so Keyward's declarations must compile with what it installs.
      writeFileSync(
        join(app, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: {
            target: "ES2022",
            module: "NodeNext",
            moduleResolution: "NodeNext",
            strict: true,
            skipLibCheck: false,
            types: ["node"],
            outDir: "out",
            rootDir: ".",
          },
          include: ["*.ts"],
        }),
      );
      await inApp(process.execPath, [join("node_modules", "typescript", "bin", "tsc"), "-p", "."], { timeout: 120_000 }).catch(
        (error: { stdout?: string; message: string }) => {
          throw new Error(`the snippets do not compile against the packed types:\n${error.stdout ?? ""}${error.message}`);
        },
      );
    }, 150_000);

    it("README, Embedding: verifies a key the CLI created in the same store, then sees it revoked", async () => {
      const created = JSON.parse(
        await inApp("npx", [
          "--no-install",
          "keyward",
          "keys",
          "create",
          "--owner",
          "user:alice",
          "--name",
          "embedding",
          "--environment",
          "production",
          "--scopes",
          "read",
          "--json",
        ]),
      ) as { key: string; id: string };
      expect(await inApp(process.execPath, ["out/embed.js", created.key])).toBe("VALID alice\n");
      await inApp("npx", ["--no-install", "keyward", "keys", "revoke", created.id]);
      expect(await inApp(process.execPath, ["out/embed.js", created.key])).toBe("REVOKED\n");
      expect(await inApp(process.execPath, ["out/embed.js", "not-a-key"])).toBe("MALFORMED\n");
    });

    // The Fastify route answers the key's owner, the Express route the whole key.
    for (const [name, file, method, owner] of [
      ["Fastify", "out/fastify-app.js", "GET", (body: unknown) => body],
      ["Express", "out/express-app.js", "POST", (body: unknown) => (body as { owner?: unknown }).owner],
    ] as const) {
      it(`docs/middleware.md, ${name}: 200 with the key it created, 401 without, over HTTP`, async () => {
        const { child, match } = await startInApp([file], /^(\{.*\})$/m);
        const { address, key } = JSON.parse(match[1] as string) as { address: string; key: string };
        expect(address).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
        const withKey = await fetch(`${address}/approvals`, { method, headers: { authorization: `Bearer ${key}` } });
        expect(withKey.status).toBe(200);
        expect(owner(await withKey.json())).toEqual({ type: "user", id: name === "Fastify" ? "alice" : "bob" });
        const without = await fetch(`${address}/approvals`, { method });
        expect(without.status).toBe(401);
        expect(without.headers.get("www-authenticate")).toMatch(/^ApiKey/);
        await without.arrayBuffer();
        await stop(child);
      });
    }

    it("`keyward serve` starts from the installed package and serves the dashboard", async () => {
      const { child, match } = await startInApp(
        [join("node_modules", ".bin", "keyward"), "serve", "--port", "0", "--host", "127.0.0.1"],
        /Keyward listening on (http:\/\/127\.0\.0\.1:\d+)/,
        { KEYWARD_DATABASE_URL: "sqlite:./data/serve.db" },
      );
      const url = match[1] as string;
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
      const dashboard = await fetch(`${url}/dashboard/`);
      expect(dashboard.status).toBe(200);
      expect(await dashboard.text()).toContain("<html");
      await stop(child);
    });
  });
});
