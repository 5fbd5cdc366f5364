import type { KeyStore } from "../ports/key-store.js";

/**
 * Whether the store can be written (docs/deploy.md, "Store faults"). A write that failed for lack
 * of space or permission marks it unwritable until a probe write works again; files that refuse
 * writes (a read-only file system, an immutable file) are seen without writing, on every check.
 *
 * SQLite opened while its files refused writes falls back to a read-only connection, for good:
 * once the files accept writes again, only a new connection can write. That process is told
 * (`onReadOnlyConnection`): a worker is replaced, a single process says it needs a restart.
 */
export class StoreHealth {
  unwritableSince: number | null = null;

  constructor(
    private readonly store: KeyStore,
    private readonly onReadOnlyConnection: () => void = () => {},
  ) {}

  /** A write failed for lack of space or permission (errors.ts). */
  writeFailed(error: unknown): void {
    this.unwritableSince ??= Date.now();
    const code = (error as { code?: unknown } | null)?.code;
    if (code === "SQLITE_READONLY" && this.store.writeRefusal?.() === null) this.onReadOnlyConnection();
  }

  /** Readiness: whether the store can be written now, probing with a write only after one failed. */
  async writable(): Promise<boolean> {
    if ((this.store.writeRefusal?.() ?? null) !== null) {
      this.unwritableSince ??= Date.now();
      return false;
    }
    if (this.unwritableSince === null || !this.store.probeWrite) return true;
    try {
      await this.store.probeWrite();
      this.unwritableSince = null;
      return true;
    } catch (error) {
      this.writeFailed(error);
      return false;
    }
  }
}
