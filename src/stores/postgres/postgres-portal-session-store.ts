import type { AuditEvent } from "../../core/model.js";
import type { PortalSessionRecord } from "../../core/portal-policy.js";
import type { PortalSessionStore } from "../../ports/portal-session-store.js";
import { PORTAL_COLUMNS, type PortalSessionRow, portalSessionValues, rowToPortalSession } from "../portal-rows.js";
import { migratePool, PORTAL_POSTGRES_MIGRATIONS } from "./migrations.js";
import { appendChained, ENSURE_OWNER, type PostgresKeyStore } from "./postgres-key-store.js";

const INSERT = `INSERT INTO portal_sessions (${PORTAL_COLUMNS}) VALUES (${PORTAL_COLUMNS.split(",")
  .map((_, i) => `$${i + 1}`)
  .join(", ")})`;

/** Portal sessions on the key store's PostgreSQL pool (docs/embedding.md). */
export class PostgresPortalSessionStore implements PortalSessionStore {
  constructor(private readonly keys: PostgresKeyStore) {}

  async migrate(): Promise<void> {
    await migratePool(this.keys.pool, PORTAL_POSTGRES_MIGRATIONS);
  }

  async insert(session: PortalSessionRecord, audit: AuditEvent): Promise<void> {
    await this.keys.transaction(async (client) => {
      await client.query(ENSURE_OWNER, [session.owner.type, session.owner.id, session.createdAt]);
      await client.query(INSERT, portalSessionValues(session));
      await appendChained(client, audit);
    });
  }

  async get(id: string): Promise<PortalSessionRecord | null> {
    const row = (await this.keys.pool.query<PortalSessionRow>("SELECT * FROM portal_sessions WHERE id = $1", [id])).rows[0];
    return row ? rowToPortalSession(row) : null;
  }

  async findByDigest(digest: string): Promise<PortalSessionRecord | null> {
    const row = (await this.keys.pool.query<PortalSessionRow>("SELECT * FROM portal_sessions WHERE digest = $1", [digest])).rows[0];
    return row ? rowToPortalSession(row) : null;
  }

  async revoke(id: string, at: number, audit: AuditEvent): Promise<PortalSessionRecord | null> {
    return this.keys.transaction(async (client) => {
      const changed = await client.query("UPDATE portal_sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL", [at, id]);
      if ((changed.rowCount ?? 0) > 0) await appendChained(client, audit);
      const row = (await client.query<PortalSessionRow>("SELECT * FROM portal_sessions WHERE id = $1", [id])).rows[0];
      return row ? rowToPortalSession(row) : null;
    });
  }

  async purgeEnded(before: number): Promise<number> {
    const result = await this.keys.pool.query("DELETE FROM portal_sessions WHERE expires_at < $1 OR revoked_at < $1", [before]);
    return result.rowCount ?? 0;
  }
}
