// The import benchmark (issue 23, docs/benchmarks.md "Import"): `keyward import` of N records
// into a fresh SQLite file and a fresh PostgreSQL schema, through the real CLI (`node
// bin/keyward.js import`), timed from the command's start to its exit, with its peak RSS.
// Records carry sha256_hex digests (what a migration from a SHA-256-hex table imports), so no
// per-record key hashing is measured; a second run of the same file (everything matched,
// nothing written) and a sample of keys verified afterwards complete each row. `npm run bench`
// runs the same measurement as its `import` group (bench/scenarios/import.js).
//
//   npm run build && node bench/import.js [--records 1000000] [--stores sqlite,postgres]
//     [--input jsonl|csv] [--owners-every 10] [--batch-size 5000] [--out file.json]
//
// PostgreSQL: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test); a schema of its own,
// dropped at the end.

import { writeFileSync } from "node:fs";
import { measureImport } from "./scenarios/import.js";

function parseArgs(argv) {
  const flags = { records: "1000000", stores: "sqlite,postgres", input: "jsonl", "owners-every": "10", "batch-size": "5000" };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith("--")) throw new Error(`unexpected argument ${arg}`);
    const [name, inline] = arg.slice(2).split("=", 2);
    flags[name] = inline ?? argv[++i];
  }
  return {
    records: Number(flags.records),
    stores: flags.stores.split(","),
    input: flags.input,
    ownersEvery: Number(flags["owners-every"]),
    batchSize: Number(flags["batch-size"]),
    out: flags.out,
  };
}

const options = parseArgs(process.argv.slice(2));
const result = await measureImport({ ...options, databaseUrl: process.env.DATABASE_URL });
if (options.out) writeFileSync(options.out, `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
