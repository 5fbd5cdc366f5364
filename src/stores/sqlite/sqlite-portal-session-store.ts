import type { AuditEvent } from "../../core/model.js";
import type { PortalSessionRecord } from "../../core/portal-policy.js";
import type { PortalSessionStore } from "../../ports/portal-session-store.js";
import { PORTAL_COLUMNS, type PortalSessionRow, portalSessionValues, rowToPortalSession } from "../portal-rows.js";
import { applySqliteMigrations, PORTAL_SQLITE_MIGRATIONS } from "./migrations.js";
import type { SqliteKeyStore } from "./sqlite-key-store.js";

/** Portal sessions on the key store's SQLite database (docs/embedding.md). */
export class SqlitePortalSessionStore implements PortalSessionStore {
  private prepared: ReturnType<SqlitePortalSessionStore["prepareStatements"]> | undefined;

  constructor(private readonly keys: SqliteKeyStore) {}

  private get db() {
    return this.keys.db;
  }

  private get s(): ReturnType<SqlitePortalSessionStore["prepareStatements"]> {
    this.prepared ??= this.prepareStatements();
    return this.prepared;
  }

  private prepareStatements() {
    const db = this.db;
    return {
      insert: db.prepare(
        `INSERT INTO portal_sessions (${PORTAL_COLUMNS}) VALUES (${PORTAL_COLUMNS.split(",")
          .map(() => "?")
          .join(", ")})`,
      ),
      ensureOwner: db.prepare("INSERT INTO owners (type, id, disabled, created_at) VALUES (?, ?, 0, ?) ON CONFLICT DO NOTHING"),
      get: db.prepare<[string], PortalSessionRow>("SELECT * FROM portal_sessions WHERE id = ?"),
      byDigest: db.prepare<[string], PortalSessionRow>("SELECT * FROM portal_sessions WHERE digest = ?"),
      revoke: db.prepare<[number, string]>("UPDATE portal_sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"),
      purge: db.prepare<[number, number]>("DELETE FROM portal_sessions WHERE expires_at < ? OR revoked_at < ?"),
    };
  }

  async migrate(): Promise<void> {
    applySqliteMigrations(this.db, PORTAL_SQLITE_MIGRATIONS);
  }

  async insert(session: PortalSessionRecord, audit: AuditEvent): Promise<void> {
    this.db
      .transaction(() => {
        this.s.ensureOwner.run(session.owner.type, session.owner.id, session.createdAt);
        this.s.insert.run(...portalSessionValues(session));
        this.keys.appendChained(audit);
      })
      .immediate();
  }

  async get(id: string): Promise<PortalSessionRecord | null> {
    const row = this.s.get.get(id);
    return row ? rowToPortalSession(row) : null;
  }

  async findByDigest(digest: string): Promise<PortalSessionRecord | null> {
    const row = this.s.byDigest.get(digest);
    return row ? rowToPortalSession(row) : null;
  }

  async revoke(id: string, at: number, audit: AuditEvent): Promise<PortalSessionRecord | null> {
    return this.db
      .transaction(() => {
        if (this.s.revoke.run(at, id).changes > 0) this.keys.appendChained(audit);
        const row = this.s.get.get(id);
        return row ? rowToPortalSession(row) : null;
      })
      .immediate();
  }

  async purgeEnded(before: number): Promise<number> {
    return this.s.purge.run(before, before).changes;
  }
}
