import type { AuditEvent } from "../../core/model.js";
import type { SecretBox } from "../../core/secret-box.js";
import type { WebhookKeySummary } from "../../core/webhook-events.js";
import type {
  ClaimedWebhookDelivery,
  NewWebhookDelivery,
  NewWebhookEndpoint,
  PlanDeliveries,
  WebhookAttemptResult,
  WebhookDelivery,
  WebhookEndpoint,
  WebhookStore,
} from "../../ports/webhook-store.js";
import { type AuditRow, rowToAudit } from "../rows.js";
import {
  EXPIRING_KEYS_SQL,
  KEY_SUMMARY_COLUMNS,
  type KeySummaryRow,
  PRUNE_DELIVERIES_SQL,
  RECORD_ATTEMPT_SQL,
  resealedWebhookSecret,
  rowToClaimedDelivery,
  rowToKeySummary,
  rowToWebhookDelivery,
  rowToWebhookEndpoint,
  WEBHOOK_DELIVERY_COLUMNS,
  WEBHOOK_ENDPOINT_COLUMNS,
  type WebhookDeliveryRow,
  type WebhookEndpointRow,
  webhookDeliveryValues,
  webhookEndpointValues,
} from "../webhook-rows.js";
import { applySqliteMigrations, WEBHOOK_SQLITE_MIGRATIONS } from "./migrations.js";
import type { SqliteKeyStore } from "./sqlite-key-store.js";

const marks = (columns: string) =>
  columns
    .split(",")
    .map(() => "?")
    .join(", ");

/**
 * WebhookStore on the key store's SQLite database: endpoint changes share a transaction with
 * their audit events. With `secrets`, endpoint secrets are sealed at rest (docs/webhooks.md).
 */
export class SqliteWebhookStore implements WebhookStore {
  private readonly keys: SqliteKeyStore;
  private readonly box: SecretBox | null;
  private prepared: ReturnType<SqliteWebhookStore["prepareStatements"]> | undefined;

  constructor(keys: SqliteKeyStore, options: { secrets?: SecretBox | null } = {}) {
    this.keys = keys;
    this.box = options.secrets ?? null;
  }

  private get db() {
    return this.keys.db;
  }

  private get s(): ReturnType<SqliteWebhookStore["prepareStatements"]> {
    this.prepared ??= this.prepareStatements();
    return this.prepared;
  }

  private prepareStatements() {
    const db = this.db;
    return {
      insertEndpoint: db.prepare<unknown[], { seq: number }>(
        `INSERT INTO webhook_endpoints (${WEBHOOK_ENDPOINT_COLUMNS}) VALUES (${marks(WEBHOOK_ENDPOINT_COLUMNS)}) RETURNING seq`,
      ),
      getEndpoint: db.prepare<[string], WebhookEndpointRow>("SELECT * FROM webhook_endpoints WHERE id = ?"),
      listEndpoints: db.prepare<[number, number], WebhookEndpointRow>("SELECT * FROM webhook_endpoints WHERE seq > ? ORDER BY seq LIMIT ?"),
      allEndpoints: db.prepare<[], WebhookEndpointRow>("SELECT * FROM webhook_endpoints ORDER BY seq"),
      deleteEndpoint: db.prepare("DELETE FROM webhook_endpoints WHERE id = ?"),
      insertDelivery: db.prepare(
        `INSERT INTO webhook_deliveries (${WEBHOOK_DELIVERY_COLUMNS}) VALUES (${marks(WEBHOOK_DELIVERY_COLUMNS)}) ON CONFLICT DO NOTHING`,
      ),
      cursor: db.prepare<[], { audit_seq: number }>("SELECT audit_seq FROM webhook_cursor WHERE id = 1"),
      anyNew: db.prepare<[], { n: number }>(
        "SELECT 1 AS n FROM audit_events WHERE seq > (SELECT audit_seq FROM webhook_cursor WHERE id = 1) LIMIT 1",
      ),
      anyDue: db.prepare<[number], { n: number }>(
        "SELECT 1 AS n FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ? LIMIT 1",
      ),
      setCursor: db.prepare("UPDATE webhook_cursor SET audit_seq = ? WHERE id = 1"),
      auditAfter: db.prepare<[number, number], AuditRow>("SELECT * FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?"),
      keySummary: db.prepare<[string], KeySummaryRow>(`SELECT ${KEY_SUMMARY_COLUMNS} FROM keys WHERE id = ?`),
      expiring: db.prepare<[number, number, number, number], KeySummaryRow>(EXPIRING_KEYS_SQL(["?", "?", "?", "?"])),
      insertNotice: db.prepare(
        "INSERT INTO webhook_expiry_notices (key_id, expires_at, noticed_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
      ),
      due: db.prepare<[number, number], WebhookDeliveryRow & { url: string; secret: string }>(
        `SELECT d.*, e.url, e.secret FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
         WHERE d.status = 'pending' AND d.next_attempt_at <= ? ORDER BY d.next_attempt_at LIMIT ?`,
      ),
      lease: db.prepare("UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ?"),
      recordAttempt: db.prepare(RECORD_ATTEMPT_SQL(["?", "?", "?", "?", "?", "?", "?"])),
      listDeliveries: db.prepare<[string, number, number], WebhookDeliveryRow>(
        "SELECT * FROM webhook_deliveries WHERE endpoint_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
      ),
      prune: db.prepare(PRUNE_DELIVERIES_SQL("?")),
      secrets: db.prepare<[], { id: string; secret: string }>("SELECT id, secret FROM webhook_endpoints ORDER BY seq"),
      rewriteSecret: db.prepare<[string, string, string]>("UPDATE webhook_endpoints SET secret = ? WHERE id = ? AND secret = ?"),
    };
  }

  async migrate(): Promise<void> {
    applySqliteMigrations(this.db, WEBHOOK_SQLITE_MIGRATIONS);
  }

  async createEndpoint(endpoint: NewWebhookEndpoint, audit: AuditEvent): Promise<WebhookEndpoint> {
    return this.db
      .transaction(() => {
        const { seq } = this.s.insertEndpoint.get(...webhookEndpointValues(endpoint, this.box)) as { seq: number };
        this.keys.appendChained(audit);
        return { ...endpoint, seq };
      })
      .immediate();
  }

  async getEndpoint(id: string): Promise<WebhookEndpoint | null> {
    const row = this.s.getEndpoint.get(id);
    return row ? rowToWebhookEndpoint(row, this.box) : null;
  }

  async listEndpoints(limit: number, afterSeq: number | null): Promise<WebhookEndpoint[]> {
    return this.s.listEndpoints.all(afterSeq ?? 0, limit).map((row) => rowToWebhookEndpoint(row, this.box));
  }

  async deleteEndpoint(id: string, audit: AuditEvent): Promise<boolean> {
    return this.db
      .transaction(() => {
        if (this.s.deleteEndpoint.run(id).changes === 0) return false;
        this.keys.appendChained(audit);
        return true;
      })
      .immediate();
  }

  async ingestAuditEvents(limit: number, plan: PlanDeliveries): Promise<number> {
    // A plain read first: an idle poll never takes the write lock.
    if (!this.s.anyNew.get()) return 0;
    return this.db
      .transaction(() => {
        const cursor = this.s.cursor.get()?.audit_seq ?? 0;
        const rows = this.s.auditAfter.all(cursor, limit);
        const last = rows[rows.length - 1];
        if (!last) return 0;
        const events = rows.map(rowToAudit);
        const endpoints = this.s.allEndpoints.all().map((row) => rowToWebhookEndpoint(row, this.box));
        const keys = new Map<string, WebhookKeySummary>();
        if (endpoints.length > 0)
          for (const event of events) {
            if (event.targetType !== "key" || keys.has(event.targetId)) continue;
            const row = this.s.keySummary.get(event.targetId);
            if (row) keys.set(row.id, rowToKeySummary(row));
          }
        for (const delivery of endpoints.length > 0 ? plan(events, endpoints, keys) : [])
          this.s.insertDelivery.run(...webhookDeliveryValues(delivery));
        this.s.setCursor.run(Number(last.seq));
        return rows.length;
      })
      .immediate();
  }

  async findExpiringKeys(now: number, until: number, limit: number): Promise<WebhookKeySummary[]> {
    return this.s.expiring.all(now, until, 1, limit).map(rowToKeySummary);
  }

  async enqueueExpiryNotice(keyId: string, expiresAt: number, deliveries: NewWebhookDelivery[]): Promise<boolean> {
    return this.db
      .transaction(() => {
        if (this.s.insertNotice.run(keyId, expiresAt, Date.now()).changes === 0) return false;
        for (const delivery of deliveries) this.s.insertDelivery.run(...webhookDeliveryValues(delivery));
        return true;
      })
      .immediate();
  }

  async claimDueDeliveries(now: number, limit: number, leaseMs: number): Promise<ClaimedWebhookDelivery[]> {
    if (!this.s.anyDue.get(now)) return [];
    return this.db
      .transaction(() => {
        const rows = this.s.due.all(now, limit);
        for (const row of rows) this.s.lease.run(now + leaseMs, row.id);
        return rows.map((row) => rowToClaimedDelivery(row, this.box));
      })
      .immediate();
  }

  async recordAttempt(id: string, result: WebhookAttemptResult): Promise<void> {
    this.s.recordAttempt.run(
      result.status,
      result.nextAttemptAt,
      result.at,
      result.statusCode,
      result.error,
      result.status === "delivered" ? result.at : null,
      id,
    );
  }

  async listDeliveries(endpointId: string, limit: number, beforeSeq: number | null): Promise<WebhookDelivery[]> {
    return this.s.listDeliveries.all(endpointId, beforeSeq ?? Number.MAX_SAFE_INTEGER, limit).map(rowToWebhookDelivery);
  }

  async pruneDeliveries(before: number): Promise<number> {
    return this.s.prune.run(before).changes;
  }

  async resealSecrets(): Promise<number> {
    const box = this.box;
    if (!box) return 0;
    const rewrites = this.s.secrets
      .all()
      .map(({ id, secret }) => ({ id, secret, sealed: resealedWebhookSecret(secret, id, box) }))
      .filter((row): row is { id: string; secret: string; sealed: string } => row.sealed !== null);
    if (rewrites.length === 0) return 0;
    // secure_delete zeroes the old cells, and a truncating checkpoint drops old WAL frames, so the
    // plaintext does not linger in the file's free space (best effort: a busy reader skips the truncation).
    const before = this.db.pragma("secure_delete", { simple: true });
    this.db.pragma("secure_delete = ON");
    try {
      const rewritten = this.db
        .transaction(() => rewrites.reduce((n, row) => n + this.s.rewriteSecret.run(row.sealed, row.id, row.secret).changes, 0))
        .immediate();
      this.db.pragma("wal_checkpoint(TRUNCATE)");
      return rewritten;
    } finally {
      this.db.pragma(`secure_delete = ${before ? "ON" : "OFF"}`);
    }
  }
}
