import { appendFileSync, mkdirSync } from "node:fs";
import { dirname, relative } from "node:path";
import { expect } from "vitest";
import { REPO_ROOT, reasonsFile } from "../../scripts/skips.mjs";

/** Something a suite needs that `npm install` does not bring, and how a person gets it. */
export interface Prerequisite {
  missing: string;
  obtain: string;
}

/**
 * Called by the check that found `prerequisite` missing, in the test file being loaded: the suites
 * that file then skips are listed with this reason at the end of the run. Under CI a missing
 * prerequisite is a failure, never a skip: the checks throw there, and the summary fails the run
 * on any skip.
 */
export function lacking(prerequisite: Prerequisite): void {
  const testPath = expect.getState().testPath;
  if (!testPath) return;
  const file = reasonsFile(relative(REPO_ROOT, testPath));
  mkdirSync(dirname(file), { recursive: true });
  appendFileSync(file, `${JSON.stringify(prerequisite)}\n`);
}

const DEBIAN = "Debian/Ubuntu, as root";

export const nginxPrerequisite: Prerequisite = {
  missing: "nginx (/usr/sbin/nginx)",
  obtain: `apt-get install nginx-light (${DEBIAN}; .ci/run installs it)`,
};

export const postgresServerPrerequisite: Prerequisite = {
  missing: "the PostgreSQL server binaries (/usr/lib/postgresql/<version>/bin/postgres), for a private server",
  obtain: `apt-get install postgresql (${DEBIAN})`,
};

export const redisServerPrerequisite: Prerequisite = {
  missing: "redis-server on PATH, for a private server",
  obtain: `apt-get install redis-server (${DEBIAN})`,
};

/** PostgreSQL and Redis that answer at DATABASE_URL and REDIS_URL; `why` is the connection error. */
export const backendsPrerequisite = (databaseUrl: string, redisUrl: string, why: string): Prerequisite => ({
  missing: `PostgreSQL at ${databaseUrl} and Redis at ${redisUrl} (${why})`,
  obtain:
    "start both: bash .ci/run does on a Debian machine as root (pg_ctlcluster, redis-server); " +
    "or set DATABASE_URL and REDIS_URL to a PostgreSQL database and a Redis you run",
});

export const rootPrerequisite = (why: string, toDo = "mount a 4 MB tmpfs"): Prerequisite => ({
  missing: `root, to ${toDo} (${why})`,
  obtain: "run the serial suites as root (sudo npm run test:serial), as .ci/run does",
});
