import type { ClientBase, Pool } from "pg";
import { recentRequestsSchema } from "../recent-requests-sql.js";

/** One schema change for PostgreSQL: applied once, by name, in a transaction. Never edit an applied one. */
export interface PostgresMigration {
  name: string;
  sql: string;
}

// One advisory lock id for all Keyward migrations: instances starting together migrate one at a time.
const MIGRATION_LOCK = 0x6b657977;

/**
 * Migration statements are not bound by the per-query KEYWARD_STORE_TIMEOUT_MS (5 s, meant for
 * requests): one may build an index over every key (minutes at millions), and a start beside a
 * loaded database must not fail on it (one did, in the kill -9 loop at a load average of 12).
 * This still ends a hung one. node-postgres takes a per-query `query_timeout`.
 */
const MIGRATION_TIMEOUT_MS = 15 * 60_000;
const migrationStatement = (text: string, values?: unknown[]) => ({
  text,
  query_timeout: MIGRATION_TIMEOUT_MS,
  ...(values ? { values } : {}),
});

/**
 * Applies the migrations of one module that are not yet recorded in `schema_migrations`,
 * holding an advisory lock so that several instances starting at once do not race.
 */
export async function applyPostgresMigrations(client: ClientBase, migrations: readonly PostgresMigration[]): Promise<void> {
  await client.query("BEGIN");
  try {
    await client.query(migrationStatement("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]));
    await client.query(
      migrationStatement("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)"),
    );
    const applied = new Set((await client.query<{ name: string }>("SELECT name FROM schema_migrations")).rows.map((r) => r.name));
    for (const migration of migrations) {
      if (applied.has(migration.name)) continue;
      await client.query(migrationStatement(migration.sql));
      await client.query("INSERT INTO schema_migrations (name, applied_at) VALUES ($1, $2)", [migration.name, Date.now()]);
    }
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK");
    throw error;
  }
}

/**
 * The trigram index behind name search (`GET /v1/keys?q=`, a substring anywhere in the name): a
 * btree cannot serve `ILIKE '%…%'`, a GIN index of pg_trgm can. Checked at every start rather
 * than as a one-time migration, so a database where pg_trgm could not be created (no CREATE
 * privilege, the contrib package missing) gets the index on the first start after an operator
 * runs `CREATE EXTENSION pg_trgm`. The extension is created if missing (it is a trusted
 * extension: a database owner may); the opclass is named by the extension's own schema, which
 * need not be on the search path. Answers whether the index exists.
 */
export async function ensureNameSearchIndex(client: ClientBase): Promise<boolean> {
  const exists = async () =>
    (await client.query<{ found: boolean }>("SELECT to_regclass('keys_name_trgm') IS NOT NULL AS found")).rows[0]?.found;
  if (await exists()) return true;
  await client.query("BEGIN");
  try {
    await client.query(migrationStatement("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]));
    await client.query(
      migrationStatement(`
    DO $$
    DECLARE trgm name;
    BEGIN
      IF to_regclass('keys_name_trgm') IS NOT NULL THEN RETURN; END IF;
      SELECT extnamespace::regnamespace::name INTO trgm FROM pg_extension WHERE extname = 'pg_trgm';
      IF trgm IS NULL THEN
        BEGIN
          CREATE EXTENSION IF NOT EXISTS pg_trgm;
        EXCEPTION WHEN OTHERS THEN
          RETURN;
        END;
        SELECT extnamespace::regnamespace::name INTO trgm FROM pg_extension WHERE extname = 'pg_trgm';
      END IF;
      EXECUTE format('CREATE INDEX keys_name_trgm ON keys USING gin (name %I.gin_trgm_ops)', trgm);
    END $$;`),
    );
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK");
    throw error;
  }
  return Boolean(await exists());
}

/** Applies one module's migrations on a connection taken from `pool` (for stores that share the key store's pool). */
export async function migratePool(pool: Pool, migrations: readonly PostgresMigration[]): Promise<void> {
  const client = await pool.connect();
  try {
    await applyPostgresMigrations(client, migrations);
  } finally {
    client.release();
  }
}

/** The core schema, as for SQLite: owners, keys, audit events, meta. JSON kept as text so both stores share row mapping. */
export const CORE_POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    name: "core/0001_keys",
    sql: `
    CREATE TABLE owners (
      type TEXT NOT NULL CHECK (type IN ('user', 'application')),
      id TEXT NOT NULL,
      disabled BOOLEAN NOT NULL DEFAULT FALSE,
      created_at BIGINT NOT NULL,
      PRIMARY KEY (type, id)
    );
    CREATE TABLE keys (
      id TEXT PRIMARY KEY,
      digest TEXT NOT NULL UNIQUE,
      hash_version INTEGER NOT NULL,
      ref TEXT NOT NULL,
      name TEXT NOT NULL,
      owner_type TEXT NOT NULL,
      owner_id TEXT NOT NULL,
      environment TEXT NOT NULL CHECK (environment IN ('sandbox', 'production')),
      scopes TEXT NOT NULL,
      enabled BOOLEAN NOT NULL,
      created_at BIGINT NOT NULL,
      updated_at BIGINT NOT NULL,
      expires_at BIGINT,
      revoked_at BIGINT,
      revoked_reason TEXT,
      last_used_at BIGINT,
      rate_limit TEXT,
      concurrency INTEGER,
      quota TEXT,
      allowed_cidrs TEXT NOT NULL,
      metadata TEXT NOT NULL,
      rotated_from TEXT,
      replaced_by TEXT,
      grace_ends_at BIGINT,
      lineage_id TEXT NOT NULL,
      FOREIGN KEY (owner_type, owner_id) REFERENCES owners (type, id)
    );
    CREATE INDEX keys_owner ON keys (owner_type, owner_id, created_at DESC, id DESC);
    CREATE INDEX keys_created ON keys (created_at DESC, id DESC);
    CREATE INDEX keys_environment ON keys (environment, created_at DESC, id DESC);
    CREATE TABLE audit_events (
      seq BIGSERIAL PRIMARY KEY,
      id TEXT NOT NULL UNIQUE,
      at BIGINT NOT NULL,
      actor_type TEXT NOT NULL,
      actor_id TEXT NOT NULL,
      action TEXT NOT NULL,
      target_type TEXT NOT NULL,
      target_id TEXT NOT NULL,
      ip TEXT,
      user_agent TEXT,
      request_id TEXT,
      changes TEXT,
      details TEXT,
      prev_hash TEXT NOT NULL,
      hash TEXT NOT NULL
    );
    CREATE INDEX audit_target ON audit_events (target_id, seq);
    CREATE INDEX audit_actor ON audit_events (actor_id, seq);
    CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    `,
  },
  {
    name: "core/0002_last_used_ip",
    sql: "ALTER TABLE keys ADD COLUMN last_used_ip TEXT;",
  },
  {
    // The authority model (docs/authority.md): delegation ceilings and keys awaiting pickup.
    name: "core/0003_authority",
    sql: `
    ALTER TABLE keys ADD COLUMN delegation TEXT;
    ALTER TABLE keys ADD COLUMN awaiting_pickup BOOLEAN NOT NULL DEFAULT false;
    `,
  },
  {
    // The console's key search (GET /v1/keys: q, status filters; docs/benchmarks.md, key search):
    // the last four characters of a ref, and the rare statuses (disabled, awaiting pickup). The
    // name's trigram index needs pg_trgm: ensureNameSearchIndex, at every start.
    name: "core/key-search",
    sql: `
    CREATE INDEX keys_ref_last4 ON keys (right(ref, 4), created_at DESC, id DESC);
    CREATE INDEX keys_disabled ON keys (created_at DESC, id DESC) WHERE NOT enabled;
    CREATE INDEX keys_awaiting_pickup ON keys (created_at DESC, id DESC) WHERE awaiting_pickup;
    `,
  },
  {
    // Imports (docs/migrating.md): a key in a declared legacy format (its digest is the old
    // system's, `legacy:…`), and the id it had there, which a repeated import matches on.
    name: "core/imports",
    sql: `
    ALTER TABLE keys ADD COLUMN legacy_format TEXT;
    ALTER TABLE keys ADD COLUMN external_id TEXT;
    CREATE UNIQUE INDEX keys_external_id ON keys (external_id) WHERE external_id IS NOT NULL;
    `,
  },
  {
    // The change feed (docs/architecture.md): one row per changed key or owner, written by
    // triggers in the transaction of the change, with that transaction's id, so a reader can
    // tell which rows its last snapshot could not see. Last uses (last_used_at, last_used_ip,
    // the usage flush) are left out by the UPDATE OF list; a new column belongs in it
    // (test/stores/postgres-change-feed.test.ts checks). New keys need no row: no instance
    // has a cached entry for a digest that did not exist.
    name: "core/key-changes",
    sql: `
    CREATE TABLE key_changes (
      seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
      key_id TEXT,
      digest TEXT,
      owner_type TEXT,
      owner_id TEXT,
      changed_at BIGINT NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint
    );
    CREATE INDEX key_changes_xid ON key_changes (xid);
    CREATE INDEX key_changes_changed_at ON key_changes (changed_at);
    CREATE FUNCTION keyward_key_changed() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
    BEGIN
      IF TG_OP <> 'INSERT' THEN
        INSERT INTO key_changes (key_id, digest) VALUES (OLD.id, OLD.digest);
      END IF;
      IF TG_OP = 'UPDATE' AND NEW.digest IS DISTINCT FROM OLD.digest THEN
        INSERT INTO key_changes (key_id, digest) VALUES (NEW.id, NEW.digest);
      END IF;
      RETURN NULL;
    END $$;
    CREATE TRIGGER keys_changed_update AFTER UPDATE OF id, digest, hash_version, ref, name, owner_type, owner_id,
      environment, scopes, enabled, created_at, updated_at, expires_at, revoked_at, revoked_reason, rate_limit,
      concurrency, quota, allowed_cidrs, metadata, rotated_from, replaced_by, grace_ends_at, lineage_id, delegation,
      awaiting_pickup, legacy_format, external_id
      ON keys FOR EACH ROW EXECUTE FUNCTION keyward_key_changed();
    CREATE TRIGGER keys_changed_delete AFTER DELETE ON keys FOR EACH ROW EXECUTE FUNCTION keyward_key_changed();
    CREATE FUNCTION keyward_owner_changed() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
    BEGIN
      INSERT INTO key_changes (owner_type, owner_id) VALUES (OLD.type, OLD.id);
      RETURN NULL;
    END $$;
    CREATE TRIGGER owners_changed AFTER UPDATE OR DELETE ON owners FOR EACH ROW EXECUTE FUNCTION keyward_owner_changed();
    `,
  },
  {
    // Organizations (docs/organizations.md): a third owner type, with a name and limits its keys share.
    name: "core/organizations",
    sql: `
    ALTER TABLE owners DROP CONSTRAINT owners_type_check;
    ALTER TABLE owners ADD CONSTRAINT owners_type_check CHECK (type IN ('user', 'application', 'organization'));
    ALTER TABLE owners ADD COLUMN name TEXT;
    ALTER TABLE owners ADD COLUMN limits TEXT;
    CREATE INDEX owners_listing ON owners (type, created_at DESC, id DESC);
    `,
  },
];

/** Quota counters: one row per key lineage and window (see src/core/quota-window.ts). */
export const LIMITS_POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    name: "limits/0001_quota_counters",
    sql: `
    CREATE TABLE quota_counters (
      lineage_id TEXT NOT NULL,
      "window" TEXT NOT NULL,
      used BIGINT NOT NULL,
      expires_at BIGINT,
      PRIMARY KEY (lineage_id, "window")
    );
    CREATE INDEX quota_counters_expiry ON quota_counters (expires_at) WHERE expires_at IS NOT NULL;
    `,
  },
];

/** Usage: counts per minute, key and outcome. */
export const USAGE_POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    name: "usage/0001_usage_counts",
    sql: `
    CREATE TABLE usage_counts (
      minute BIGINT NOT NULL,
      key_id TEXT NOT NULL,
      owner TEXT NOT NULL,
      outcome TEXT NOT NULL,
      count BIGINT NOT NULL,
      PRIMARY KEY (minute, key_id, outcome)
    );
    CREATE INDEX usage_counts_key ON usage_counts (key_id, minute);
    CREATE INDEX usage_counts_owner ON usage_counts (owner, minute);
    `,
  },
  {
    // Each key's recent requests (docs/usage.md): a ring of slots per key, overwritten in place.
    name: "usage/0002_recent_requests",
    sql: recentRequestsSchema("BIGINT", "", true),
  },
];

/** The audit module: audit events are append-only (UPDATE, DELETE and TRUNCATE are refused). */
export const AUDIT_POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    name: "audit/0001_append_only",
    sql: `
    CREATE FUNCTION keyward_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'audit events are append-only'; END $$;
    CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
      FOR EACH ROW EXECUTE FUNCTION keyward_audit_append_only();
    CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
      FOR EACH STATEMENT EXECUTE FUNCTION keyward_audit_append_only();
    `,
  },
];

/** The webhooks module, as for SQLite: endpoints, the delivery outbox and log, the audit cursor, expiry notices. */
export const WEBHOOK_POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    name: "webhooks/0001_endpoints_deliveries",
    sql: `
    CREATE TABLE webhook_endpoints (
      seq BIGSERIAL PRIMARY KEY,
      id TEXT NOT NULL UNIQUE,
      url TEXT NOT NULL,
      events TEXT NOT NULL,
      description TEXT,
      secret TEXT NOT NULL,
      created_at BIGINT NOT NULL
    );
    CREATE TABLE webhook_deliveries (
      seq BIGSERIAL PRIMARY KEY,
      id TEXT NOT NULL UNIQUE,
      endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
      event_id TEXT NOT NULL,
      event_type TEXT NOT NULL,
      payload TEXT NOT NULL,
      status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
      attempts INTEGER NOT NULL,
      next_attempt_at BIGINT,
      last_attempt_at BIGINT,
      last_status_code INTEGER,
      last_error TEXT,
      created_at BIGINT NOT NULL,
      delivered_at BIGINT,
      UNIQUE (endpoint_id, event_id)
    );
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
    CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, seq);
    CREATE TABLE webhook_cursor (id INTEGER PRIMARY KEY CHECK (id = 1), audit_seq BIGINT NOT NULL);
    INSERT INTO webhook_cursor (id, audit_seq) SELECT 1, COALESCE(MAX(seq), 0) FROM audit_events;
    CREATE TABLE webhook_expiry_notices (
      key_id TEXT NOT NULL,
      expires_at BIGINT NOT NULL,
      noticed_at BIGINT NOT NULL,
      PRIMARY KEY (key_id, expires_at)
    );
    CREATE INDEX keys_expires_at ON keys (expires_at) WHERE expires_at IS NOT NULL;
    `,
  },
];

/** Portal sessions (docs/embedding.md): their token is stored as a SHA-256 digest only. */
export const PORTAL_POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    name: "portal/0001_sessions",
    sql: `
    CREATE TABLE portal_sessions (
      id TEXT PRIMARY KEY,
      digest TEXT NOT NULL UNIQUE,
      owner_type TEXT NOT NULL CHECK (owner_type IN ('user', 'application')),
      owner_id TEXT NOT NULL,
      policy TEXT NOT NULL,
      host_actor_id TEXT NOT NULL,
      host_actor_email TEXT,
      created_by_type TEXT NOT NULL,
      created_by_id TEXT NOT NULL,
      created_by_owner_type TEXT,
      created_by_owner_id TEXT,
      created_at BIGINT NOT NULL,
      expires_at BIGINT NOT NULL,
      revoked_at BIGINT,
      allowed_origin TEXT,
      return_url TEXT,
      app_name TEXT
    );
    CREATE INDEX portal_sessions_expires_at ON portal_sessions (expires_at);
    `,
  },
  {
    // Portal sessions for organizations (docs/organizations.md).
    name: "portal/0002_organizations",
    sql: `
    ALTER TABLE portal_sessions DROP CONSTRAINT portal_sessions_owner_type_check;
    ALTER TABLE portal_sessions ADD CONSTRAINT portal_sessions_owner_type_check CHECK (owner_type IN ('user', 'application', 'organization'));
    `,
  },
];
