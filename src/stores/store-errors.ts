/**
 * Whether an error from a store means "the database cannot be reached or is busy right now"
 * (retry later) rather than a bug: connection refused or dropped, a connect timeout, a server
 * shutting down (SQLSTATE class 08 and 57P0x), or SQLite's busy lock. These become
 * `503 STORE_UNAVAILABLE` with `Retry-After`, never a 500.
 */
export function isStoreUnavailableError(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (isStoreUnwritableError(error)) return true;
  if (typeof code === "string") {
    if (["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EAI_AGAIN", "SQLITE_BUSY", "SQLITE_LOCKED"].includes(code))
      return true;
    if (/^08[0-9A-Z]{3}$/.test(code) || /^57P0[1-3]$/.test(code)) return true;
  }
  return (
    typeof message === "string" &&
    /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Query read timeout/i.test(
      message,
    )
  );
}

/**
 * The store answers but cannot be written: a full disk, a read-only file or file system, an I/O
 * error (SQLite), or PostgreSQL out of disk or in read-only mode. An outage for writes, never a
 * bug: 503 with a clear log line, and /readyz fails until a write succeeds again (docs/deploy.md).
 */
export function isStoreUnwritableError(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code !== "string") return false;
  return /^SQLITE_(FULL|READONLY|IOERR|CANTOPEN|PROTOCOL)/.test(code) || /^53[0-9A-Z]{3}$/.test(code) || code === "25006";
}
