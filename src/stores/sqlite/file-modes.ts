import { accessSync, chmodSync, closeSync, constants, fchmodSync, mkdirSync, openSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";

/**
 * File modes of a SQLite store (docs/hardening.md, files on disk). The database holds webhook
 * secrets, password hashes, session and key digests: its folder is made 0700 and every file
 * 0600, set explicitly with chmod so that no umask widens them (a library cannot rely on the
 * process's umask). Files and folders that already exist are not changed; a wider mode is
 * reported for the service to warn about.
 */

const FOLDER_MODE = 0o700;
const FILE_MODE = 0o600;
const SIDECARS = ["-wal", "-shm"] as const;

const octal = (mode: number) => `0${(mode & 0o777).toString(8)}`;

/** Whether a SQLite filename names a file on disk (not `:memory:`, a temporary or a URI database). */
export function isDiskDatabase(filename: string): boolean {
  return filename !== "" && filename !== ":memory:" && !filename.startsWith("file:");
}

function modeOf(path: string): number | null {
  try {
    return statSync(path).mode & 0o777;
  } catch {
    return null;
  }
}

/**
 * Before the first connection opens the file: creates its folder (0700, every level created)
 * and the empty database file (0600), or, for ones that exist, returns a warning for each that
 * others may read or enter.
 */
export function prepareDatabaseFile(filename: string): string[] {
  const warnings: string[] = [];
  const folder = dirname(resolve(filename));
  const firstCreated = mkdirSync(folder, { recursive: true, mode: FOLDER_MODE });
  if (firstCreated !== undefined) {
    // mkdir's mode passes through the umask: set it on every level this call created.
    for (let level = folder; ; level = dirname(level)) {
      chmodSync(level, FOLDER_MODE);
      if (level === firstCreated || dirname(level) === level) break;
    }
  } else {
    const mode = modeOf(folder);
    if (mode !== null && (mode & 0o077) !== 0)
      warnings.push(`data folder ${folder} is open to other users (mode ${octal(mode)}): chmod 700 ${folder}`);
  }
  try {
    // O_EXCL: made here, with the mode set on the open descriptor, before SQLite ever sees the path.
    const fd = openSync(filename, constants.O_CREAT | constants.O_EXCL | constants.O_RDWR, FILE_MODE);
    try {
      fchmodSync(fd, FILE_MODE);
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    const mode = modeOf(filename);
    if (mode !== null && (mode & 0o077) !== 0)
      warnings.push(`database file ${filename} is readable by other users (mode ${octal(mode)}): chmod 600 ${filename}*`);
  }
  return warnings;
}

/**
 * After a connection opened the file in WAL mode: its `-wal` and `-shm` files are made 0600 when
 * the database file itself is 0600 or narrower (SQLite gives them the database file's mode; one
 * left wider by an older version is narrowed). A wider database file was reported already.
 */
export function narrowSidecars(filename: string): void {
  const main = modeOf(filename);
  if (main === null || (main & 0o077) !== 0) return;
  for (const suffix of SIDECARS) {
    const mode = modeOf(filename + suffix);
    if (mode !== null && (mode & ~FILE_MODE) !== 0) chmodSync(filename + suffix, FILE_MODE);
  }
}

/**
 * Why the database's files cannot be written now, checked without writing (access(2), W_OK on
 * the file, its -wal and -shm and its folder): a read-only file system (EROFS), an immutable
 * file (EPERM, even for root) or a missing permission (EACCES). Null when nothing refuses. A full
 * disk is not seen here: only a write finds it (SqliteKeyStore.probeWrite).
 */
export function writeRefusalOf(filename: string): string | null {
  const paths = [filename, ...SIDECARS.map((suffix) => filename + suffix), dirname(resolve(filename))];
  for (const path of paths) {
    try {
      accessSync(path, constants.W_OK);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "ENOENT") return `${path}: ${code}`;
    }
  }
  return null;
}
