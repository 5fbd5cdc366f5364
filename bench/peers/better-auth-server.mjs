// The peer: better-auth with its api-key plugin on SQLite, verifying the presented key on every
// request with `auth.api.verifyApiKey`, as its docs show. Two configurations:
//   default: the plugin's defaults (rate limit on), SQLite's default journal (rollback, not WAL)
//   best:    WAL journal and the plugin's rate limit off (its fastest database configuration)
// Seeds BENCH_PEER_KEYS keys (one created through the plugin's own API, the rest copied from its
// row with fresh ids and digests, hashed the plugin's way: SHA-256, base64url without padding),
// writes their plaintexts to BENCH_PEER_KEYS_FILE, then prints `READY <port>`.
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { apiKey } from "@better-auth/api-key";
import { betterAuth } from "better-auth";
import { getMigrations } from "better-auth/db/migration";

// The SQLite driver is the repository's own better-sqlite3 (the one Keyward runs on): the same
// SQLite build for both, and no second native compile in the bench setup.
const require = createRequire(new URL("../../package.json", import.meta.url));
const Database = require("better-sqlite3");

const mode = process.argv[2] === "best" ? "best" : "default";
const count = Number(process.env.BENCH_PEER_KEYS ?? 100_000);
const keysFile = process.env.BENCH_PEER_KEYS_FILE;
const dbFile = process.env.BENCH_PEER_DB ?? ":memory:";

const db = new Database(dbFile);
if (mode === "best") db.pragma("journal_mode = WAL");

const auth = betterAuth({
  database: db,
  secret: "bench-only-secret-bench-only-secret-0123456789",
  baseURL: "http://127.0.0.1",
  logger: { disabled: true },
  telemetry: { enabled: false },
  plugins: [apiKey(mode === "best" ? { rateLimit: { enabled: false } } : {})],
});

const { runMigrations } = await getMigrations(auth.options);
await runMigrations();

const now = new Date();
const userId = "benchuser0000000000000000000000";
db.prepare('INSERT INTO "user" (id, name, email, "emailVerified", "createdAt", "updatedAt") VALUES (?, ?, ?, ?, ?, ?)').run(
  userId,
  "bench",
  "bench@example.com",
  0,
  now.toISOString(),
  now.toISOString(),
);
const created = await auth.api.createApiKey({ body: { userId, name: "bench" } });
const template = db.prepare("SELECT * FROM apikey WHERE id = ?").get(created.id);
const columns = Object.keys(template);
const insert = db.prepare(`INSERT INTO apikey (${columns.map((c) => `"${c}"`).join(", ")}) VALUES (${columns.map(() => "?").join(", ")})`);
const plaintexts = [created.key];
db.transaction(() => {
  for (let i = 1; i < count; i++) {
    const key = randomBytes(48).toString("base64url");
    plaintexts.push(key);
    const row = { ...template, id: randomBytes(16).toString("hex"), key: createHash("sha256").update(key).digest("base64url") };
    if ("start" in row) row.start = key.slice(0, 6);
    insert.run(...columns.map((c) => row[c]));
  }
})();
if (keysFile) writeFileSync(keysFile, `${plaintexts.join("\n")}\n`);

const server = createServer(async (req, res) => {
  const key = req.headers["x-api-key"];
  try {
    const result = await auth.api.verifyApiKey({ body: { key: typeof key === "string" ? key : "" } });
    if (result.valid) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ id: result.key?.id }));
      return;
    }
    res.writeHead(401, { "content-type": "application/json" });
    res.end(JSON.stringify({ code: result.error?.code ?? "INVALID" }));
  } catch (error) {
    res.writeHead(500);
    res.end(String(error?.message ?? error));
  }
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
