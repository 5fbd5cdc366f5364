#!/usr/bin/env node
// The `keyward` command. The TypeScript sources are compiled into dist/ by `npm install` (prepare).

// `serve` loads the service's modules before the command line is built. Built the other way round,
// V8 left a hot inline cache in Node's own process.nextTick megamorphic for the life of the
// process (the tick object's property definitions, seen with %DebugPrint), and every request paid
// for it: node:http schedules several ticks per request. Measured on /v1/authz: ~24 -> ~18 µs of
// CPU a request, +30% requests/s (docs/benchmarks.md, "Profiling").
if (process.argv[2] === "serve") await import("../dist/service/runtime.js");
const { runCli } = await import("../dist/cli/main.js");

await runCli(process.argv);
