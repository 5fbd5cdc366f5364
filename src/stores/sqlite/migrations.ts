import type Database from "better-sqlite3";
import { recentRequestsSchema } from "../recent-requests-sql.js";

/** One schema change: applied once, by name, inside a transaction. Never edit an applied one: add the next. */
export interface SqliteMigration {
  name: string;
  sql: string;
  /**
   * Rebuilds a table other tables refer to (SQLite cannot change a CHECK in place): foreign keys
   * are off while it runs, as SQLite's documented table rebuild asks, and checked before commit.
   */
  rebuildsTable?: true;
}

/**
 * Applies the migrations of one module (`core`, `limits`, `accounts`, …) that are not yet
 * recorded in `schema_migrations`. Modules own their tables and their migration lists, so
 * features add schema without renumbering each other.
 */
export function applySqliteMigrations(db: Database.Database, migrations: readonly SqliteMigration[]): void {
  db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT");
  const applied = new Set(
    db
      .prepare<[], { name: string }>("SELECT name FROM schema_migrations")
      .all()
      .map((row) => row.name),
  );
  const record = db.prepare("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)");
  for (const migration of migrations) {
    if (applied.has(migration.name)) continue;
    const foreignKeys = db.pragma("foreign_keys", { simple: true }) as number;
    if (migration.rebuildsTable) db.pragma("foreign_keys = OFF");
    try {
      db.transaction(() => {
        db.exec(migration.sql);
        if (migration.rebuildsTable && (db.pragma("foreign_key_check") as unknown[]).length > 0)
          throw new Error(`migration ${migration.name} left rows whose foreign keys point nowhere`);
        record.run(migration.name, Date.now());
      })();
    } finally {
      if (migration.rebuildsTable) db.pragma(`foreign_keys = ${foreignKeys ? "ON" : "OFF"}`);
    }
  }
}

/** The core schema: owners, keys, audit events, meta. */
export const CORE_SQLITE_MIGRATIONS: readonly SqliteMigration[] = [
  {
    name: "core/0001_keys",
    sql: `
  CREATE TABLE owners (
    type TEXT NOT NULL CHECK (type IN ('user', 'application')),
    id TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (type, id)
  ) STRICT;

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
    enabled INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    revoked_reason TEXT,
    last_used_at INTEGER,
    rate_limit TEXT,
    concurrency INTEGER,
    quota TEXT,
    allowed_cidrs TEXT NOT NULL,
    metadata TEXT NOT NULL,
    rotated_from TEXT,
    replaced_by TEXT,
    grace_ends_at INTEGER,
    lineage_id TEXT NOT NULL,
    FOREIGN KEY (owner_type, owner_id) REFERENCES owners (type, id)
  ) STRICT;
  CREATE INDEX keys_owner ON keys (owner_type, owner_id, created_at DESC, id DESC);
  CREATE INDEX keys_created ON keys (created_at DESC, id DESC);
  CREATE INDEX keys_environment ON keys (environment, created_at DESC, id DESC);

  CREATE TABLE audit_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    at INTEGER NOT NULL,
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
  ) STRICT;
  CREATE INDEX audit_target ON audit_events (target_id, seq);
  CREATE INDEX audit_actor ON audit_events (actor_id, seq);

  CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
  ) STRICT;
  `,
  },
  {
    name: "core/0002_last_used_ip",
    sql: "ALTER TABLE keys ADD COLUMN last_used_ip TEXT;",
  },
  {
    // A counter bumped in the same transaction as any change to a key or an owner, by any
    // connection or process (the CLI, another worker): the store's change token. Usage columns
    // (last_used_at) do not bump it. See KeyStore.changeToken.
    name: "core/change-seq",
    sql: `
  INSERT INTO meta (name, value) VALUES ('change_seq', '0') ON CONFLICT DO NOTHING;
  CREATE TRIGGER keys_change_seq_insert AFTER INSERT ON keys BEGIN UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'change_seq'; END;
  CREATE TRIGGER keys_change_seq_update AFTER UPDATE OF id, digest, hash_version, ref, name, owner_type, owner_id, environment, scopes, enabled, expires_at, revoked_at, revoked_reason, rate_limit, concurrency, quota, allowed_cidrs, metadata, rotated_from, replaced_by, grace_ends_at, lineage_id ON keys BEGIN UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'change_seq'; END;
  CREATE TRIGGER keys_change_seq_delete AFTER DELETE ON keys BEGIN UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'change_seq'; END;
  CREATE TRIGGER owners_change_seq_insert AFTER INSERT ON owners BEGIN UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'change_seq'; END;
  CREATE TRIGGER owners_change_seq_update AFTER UPDATE ON owners BEGIN UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'change_seq'; END;
  CREATE TRIGGER owners_change_seq_delete AFTER DELETE ON owners BEGIN UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'change_seq'; END;
  `,
  },
  {
    // Last uses move to a narrow table of their own (src/stores/sqlite/sqlite-key-rows.ts): usage
    // folds rewrite them every minute, and a rewrite of the wide keys row cost a page per key.
    name: "core/0003_key_last_use",
    sql: `
  CREATE TABLE key_last_use (
    key_id TEXT PRIMARY KEY,
    at INTEGER NOT NULL,
    ip TEXT
  ) STRICT, WITHOUT ROWID;
  INSERT INTO key_last_use (key_id, at, ip) SELECT id, last_used_at, last_used_ip FROM keys WHERE last_used_at IS NOT NULL;
  ALTER TABLE keys DROP COLUMN last_used_ip;
  ALTER TABLE keys DROP COLUMN last_used_at;
  `,
  },
  {
    // The authority model (docs/authority.md): delegation ceilings and keys awaiting pickup. The
    // change-seq trigger is remade to cover the two new columns.
    name: "core/0004_authority",
    sql: `
  ALTER TABLE keys ADD COLUMN delegation TEXT;
  ALTER TABLE keys ADD COLUMN awaiting_pickup INTEGER NOT NULL DEFAULT 0;
  DROP TRIGGER keys_change_seq_update;
  CREATE TRIGGER keys_change_seq_update AFTER UPDATE OF id, digest, hash_version, ref, name, owner_type, owner_id, environment, scopes, enabled, expires_at, revoked_at, revoked_reason, rate_limit, concurrency, quota, allowed_cidrs, metadata, rotated_from, replaced_by, grace_ends_at, lineage_id, delegation, awaiting_pickup ON keys BEGIN UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'change_seq'; END;
  `,
  },
  {
    // The console's key search (GET /v1/keys: q, status filters; docs/benchmarks.md, key search).
    // keys_listing replaces keys_created (its first two columns): a scan for a name or a ref in
    // newest-first order reads these narrow entries, not the wide rows (~4x faster at 100,000
    // keys), and touches a row only when it matches. The last four characters of a ref, and the
    // rare statuses (disabled, awaiting pickup), are found through their own indexes.
    name: "core/key-search",
    sql: `
  CREATE INDEX keys_listing ON keys (created_at DESC, id DESC, name, ref);
  DROP INDEX keys_created;
  CREATE INDEX keys_ref_last4 ON keys (substr(ref, -4), created_at DESC, id DESC);
  CREATE INDEX keys_disabled ON keys (created_at DESC, id DESC) WHERE enabled = 0;
  CREATE INDEX keys_awaiting_pickup ON keys (created_at DESC, id DESC) WHERE awaiting_pickup = 1;
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
    // triggers in the transaction of the change. SQLite has one writer at a time, so rows
    // commit in seq order and a reader needs only the last seq it read. Last uses live in
    // key_last_use and write no row; new keys need none (nothing cached a digest that did not exist).
    name: "core/key-changes",
    sql: `
  CREATE TABLE key_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id TEXT,
    digest TEXT,
    owner_type TEXT,
    owner_id TEXT,
    changed_at INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
  );
  CREATE INDEX key_changes_changed_at ON key_changes (changed_at);
  CREATE TRIGGER keys_changed_update AFTER UPDATE OF id, digest, hash_version, ref, name, owner_type, owner_id, environment, scopes, enabled, created_at, updated_at, expires_at, revoked_at, revoked_reason, rate_limit, concurrency, quota, allowed_cidrs, metadata, rotated_from, replaced_by, grace_ends_at, lineage_id, delegation, awaiting_pickup, legacy_format, external_id ON keys BEGIN
    INSERT INTO key_changes (key_id, digest) VALUES (OLD.id, OLD.digest);
    INSERT INTO key_changes (key_id, digest) SELECT NEW.id, NEW.digest WHERE NEW.digest IS NOT OLD.digest;
  END;
  CREATE TRIGGER keys_changed_delete AFTER DELETE ON keys BEGIN INSERT INTO key_changes (key_id, digest) VALUES (OLD.id, OLD.digest); END;
  CREATE TRIGGER owners_changed_update AFTER UPDATE ON owners BEGIN INSERT INTO key_changes (owner_type, owner_id) VALUES (OLD.type, OLD.id); END;
  CREATE TRIGGER owners_changed_delete AFTER DELETE ON owners BEGIN INSERT INTO key_changes (owner_type, owner_id) VALUES (OLD.type, OLD.id); END;
  `,
  },
  {
    // Organizations (docs/organizations.md): a third owner type, with a name and limits its keys
    // share. SQLite cannot widen a CHECK in place: the table is rebuilt, and its triggers (the
    // change token and the change feed) are made again on the new table.
    name: "core/organizations",
    rebuildsTable: true,
    sql: `
  CREATE TABLE owners_new (
    type TEXT NOT NULL CHECK (type IN ('user', 'application', 'organization')),
    id TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    name TEXT,
    limits TEXT,
    PRIMARY KEY (type, id)
  ) STRICT;
  INSERT INTO owners_new (type, id, disabled, created_at) SELECT type, id, disabled, created_at FROM owners;
  DROP TABLE owners;
  ALTER TABLE owners_new RENAME TO owners;
  CREATE INDEX owners_listing ON owners (type, created_at DESC, id DESC);
  CREATE TRIGGER owners_change_seq_insert AFTER INSERT ON owners BEGIN UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'change_seq'; END;
  CREATE TRIGGER owners_change_seq_update AFTER UPDATE ON owners BEGIN UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'change_seq'; END;
  CREATE TRIGGER owners_change_seq_delete AFTER DELETE ON owners BEGIN UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'change_seq'; END;
  CREATE TRIGGER owners_changed_update AFTER UPDATE ON owners BEGIN INSERT INTO key_changes (owner_type, owner_id) VALUES (OLD.type, OLD.id); END;
  CREATE TRIGGER owners_changed_delete AFTER DELETE ON owners BEGIN INSERT INTO key_changes (owner_type, owner_id) VALUES (OLD.type, OLD.id); END;
  `,
  },
];

/** Quota counters: one row per key lineage and window (see src/core/quota-window.ts). */
export const LIMITS_SQLITE_MIGRATIONS: readonly SqliteMigration[] = [
  {
    name: "limits/0001_quota_counters",
    sql: `
  CREATE TABLE quota_counters (
    lineage_id TEXT NOT NULL,
    window TEXT NOT NULL,
    used INTEGER NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (lineage_id, window)
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX quota_counters_expiry ON quota_counters (expires_at) WHERE expires_at IS NOT NULL;
  `,
  },
];

/** Usage: counts per minute, key and outcome. */
export const USAGE_SQLITE_MIGRATIONS: readonly SqliteMigration[] = [
  {
    name: "usage/0001_usage_counts",
    sql: `
  CREATE TABLE usage_counts (
    minute INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    outcome TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (minute, key_id, outcome)
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX usage_counts_key ON usage_counts (key_id, minute);
  CREATE INDEX usage_counts_owner ON usage_counts (owner, minute);
  `,
  },
  {
    // Each flush is one row here; folds add many of them to usage_counts at once (docs/usage.md).
    name: "usage/0002_usage_journal",
    sql: `
  CREATE TABLE usage_journal (
    id INTEGER PRIMARY KEY,
    writer TEXT NOT NULL,
    -- Null for a flush; the fold's number for a row that cancels what one slice of it added.
    fold INTEGER,
    payload TEXT NOT NULL
  ) STRICT;
  CREATE INDEX usage_journal_writer ON usage_journal (writer, id);
  CREATE TABLE usage_writers (
    writer TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    seen_at INTEGER NOT NULL
  ) STRICT;
  `,
  },
  {
    // A fold ends by moving its writer's watermarks instead of deleting its rows in one
    // statement (hundreds of MB a minute under heavy traffic); rows under them are dead and are
    // deleted afterwards in short paced chunks (docs/usage.md).
    name: "usage/0003_journal_watermarks",
    sql: `
  ALTER TABLE usage_writers ADD COLUMN folded_to INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE usage_writers ADD COLUMN folded_fold INTEGER NOT NULL DEFAULT 0;
  `,
  },
  {
    // Each key's recent requests (docs/usage.md): a ring of slots per key, overwritten in place,
    // so the table never holds more than the configured number a key and needs no delete.
    name: "usage/0004_recent_requests",
    sql: recentRequestsSchema("INTEGER", " STRICT, WITHOUT ROWID", false),
  },
];

/**
 * The audit module: audit events are append-only in the database too. The hash chain catches
 * edits made around these triggers (someone with the file can drop them); the triggers stop
 * accidents and casual edits.
 */
export const AUDIT_SQLITE_MIGRATIONS: readonly SqliteMigration[] = [
  {
    name: "audit/0001_append_only",
    sql: `
  CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
  BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
  CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
  BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
  `,
  },
];

/** The webhooks module: endpoints, the delivery outbox and log, the audit cursor, expiry notices. */
export const WEBHOOK_SQLITE_MIGRATIONS: readonly SqliteMigration[] = [
  {
    name: "webhooks/0001_endpoints_deliveries",
    sql: `
  CREATE TABLE webhook_endpoints (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    description TEXT,
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL
  ) STRICT;
  CREATE TABLE webhook_deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER,
    last_attempt_at INTEGER,
    last_status_code INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER,
    UNIQUE (endpoint_id, event_id)
  ) STRICT;
  CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
  CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, seq);
  CREATE TABLE webhook_cursor (id INTEGER PRIMARY KEY CHECK (id = 1), audit_seq INTEGER NOT NULL) STRICT;
  -- Events committed before webhooks existed are not replayed.
  INSERT INTO webhook_cursor (id, audit_seq) SELECT 1, COALESCE(MAX(seq), 0) FROM audit_events;
  CREATE TABLE webhook_expiry_notices (
    key_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    noticed_at INTEGER NOT NULL,
    PRIMARY KEY (key_id, expires_at)
  ) STRICT;
  CREATE INDEX keys_expires_at ON keys (expires_at) WHERE expires_at IS NOT NULL;
  `,
  },
];

/** Portal sessions (docs/embedding.md): their token is stored as a SHA-256 digest only. */
export const PORTAL_SQLITE_MIGRATIONS: readonly SqliteMigration[] = [
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
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    allowed_origin TEXT,
    return_url TEXT,
    app_name TEXT
  ) STRICT;
  CREATE INDEX portal_sessions_expires_at ON portal_sessions (expires_at);
  `,
  },
  {
    // Portal sessions for organizations (docs/organizations.md): the owner CHECK widened, by a rebuild.
    name: "portal/0002_organizations",
    rebuildsTable: true,
    sql: `
  CREATE TABLE portal_sessions_new (
    id TEXT PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    owner_type TEXT NOT NULL CHECK (owner_type IN ('user', 'application', 'organization')),
    owner_id TEXT NOT NULL,
    policy TEXT NOT NULL,
    host_actor_id TEXT NOT NULL,
    host_actor_email TEXT,
    created_by_type TEXT NOT NULL,
    created_by_id TEXT NOT NULL,
    created_by_owner_type TEXT,
    created_by_owner_id TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    allowed_origin TEXT,
    return_url TEXT,
    app_name TEXT
  ) STRICT;
  INSERT INTO portal_sessions_new SELECT * FROM portal_sessions;
  DROP TABLE portal_sessions;
  ALTER TABLE portal_sessions_new RENAME TO portal_sessions;
  CREATE INDEX portal_sessions_expires_at ON portal_sessions (expires_at);
  `,
  },
];
