// `keyward copy-store` from SQLite to PostgreSQL at scale, alone (issue 23); `npm run bench`
// runs the same measurement as its copy-store group (bench/scenarios/copy-store.js). See
// docs/benchmarks.md, "copy-store".
//
//   npm run build && DATABASE_URL=postgres://… node bench/copy-store.js              # 100,000 keys
//   node bench/copy-store.js --keys 1000000 --batch-size 2000
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { measureCopyStore } from "./scenarios/copy-store.js";

function parseArgs(argv) {
  const flags = { keys: 100_000, batchSize: 1_000, out: "bench/results/copy-store-latest.json", profile: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--keys") flags.keys = Number(argv[++i]);
    else if (arg === "--batch-size") flags.batchSize = Number(argv[++i]);
    else if (arg === "--out") flags.out = argv[++i];
    else if (arg === "--profile") flags.profile = argv[++i];
    else throw new Error(`unknown argument ${arg}: --keys N, --batch-size N, --out file, --profile dir (V8 CPU profiles of the commands)`);
  }
  return flags;
}

const flags = parseArgs(process.argv.slice(2));
const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) throw new Error("set DATABASE_URL (postgres://…): the copy's target");
const result = await measureCopyStore({
  keys: flags.keys,
  batchSize: flags.batchSize,
  databaseUrl,
  profile: flags.profile,
  log: (line) => console.log(line),
});
mkdirSync(join(flags.out, ".."), { recursive: true });
writeFileSync(flags.out, `${JSON.stringify(result, null, 2)}\n`);
