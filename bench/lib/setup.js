import { spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";

const PEERS = fileURLToPath(new URL("../peers/", import.meta.url));

export function has(command) {
  return spawnSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" }).status === 0;
}

/** wrk from Debian, installed when missing (as root with apt-get); otherwise a clear error. */
export function ensureWrk(log) {
  if (has("wrk")) return;
  if (!has("apt-get") || process.getuid?.() !== 0) {
    throw new Error("wrk is needed for the HTTP scenarios: install it (Debian/Ubuntu: apt-get install wrk) and run again");
  }
  log("setup: installing wrk (apt-get install wrk)");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  let result = spawnSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", "wrk"], { stdio: "inherit", env });
  if (result.status !== 0) {
    spawnSync("apt-get", ["update", "-qq"], { stdio: "inherit", env });
    result = spawnSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", "wrk"], { stdio: "inherit", env });
  }
  if (result.status !== 0 || !has("wrk")) throw new Error("could not install wrk");
}

/** The peers' own package set (bench/peers), installed when missing or older than its package.json. */
export function ensurePeers(log) {
  if (peersReady()) return;
  log("setup: installing the peers (bench/peers: npm install --legacy-peer-deps)");
  // The api-key plugin pins peer versions a patch behind the latest better-auth.
  const args = existsSync(`${PEERS}package-lock.json`) ? ["ci", "--legacy-peer-deps"] : ["install", "--legacy-peer-deps"];
  const result = spawnSync("npm", [...args, "--no-audit", "--no-fund"], { cwd: PEERS, stdio: "inherit" });
  if (result.status !== 0) throw new Error("npm install in bench/peers failed");
}

/** Whether the peers' packages are installed and current (what `npm run bench:setup` does). */
export function peersReady() {
  const marker = `${PEERS}node_modules/.package-lock.json`;
  return existsSync(marker) && statSync(marker).mtimeMs >= statSync(`${PEERS}package.json`).mtimeMs;
}
