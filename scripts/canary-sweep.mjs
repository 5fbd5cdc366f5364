// Searches everything the test suite's services logged and answered for the keys they issued
// (raw, base64, URL-encoded). A key may appear only in the response that created it.
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

const dir = process.argv[2] ?? ".tmp/canary";
if (!existsSync(dir)) {
  console.error(`canary sweep: nothing recorded in ${dir}`);
  process.exit(1);
}
const records = readdirSync(dir)
  .filter((f) => f.endsWith(".jsonl"))
  .flatMap((f) =>
    readFileSync(join(dir, f), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line)),
  );
const planted = [...new Set(records.filter((r) => r.kind === "planted").flatMap((r) => r.keys))];
const forms = (key) => [
  key,
  Buffer.from(key).toString("base64"),
  Buffer.from(`${key}:`).toString("base64"),
  Buffer.from(`:${key}`).toString("base64"),
  encodeURIComponent(key),
];
const needles = planted.flatMap(forms);
let hits = 0;
for (const record of records) {
  if (record.kind === "database-leak") {
    hits++;
    console.error(`canary sweep: ${record.count} key(s) found in database ${record.dbPath}`);
    continue;
  }
  if (record.kind === "planted") continue;
  const text = record.kind === "logs" ? record.text : `${JSON.stringify(record.headers)}\n${record.body}`;
  for (const needle of needles) {
    if (text.includes(needle)) {
      hits++;
      console.error(
        `canary sweep: a planted key appears in ${record.kind === "logs" ? "the logs" : `the response to ${record.method} ${record.url.split("?")[0]}`}`,
      );
      break;
    }
  }
}
const responses = records.filter((r) => r.kind === "response").length;
console.log(
  `canary sweep: ${planted.length} planted keys, ${responses} responses and ${records.filter((r) => r.kind === "logs").length} log streams searched, ${hits} hits`,
);
rmSync(dir, { recursive: true, force: true });
process.exit(hits === 0 && planted.length > 0 ? 0 : 1);
