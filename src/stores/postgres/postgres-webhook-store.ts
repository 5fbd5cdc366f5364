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
import { migratePool, WEBHOOK_POSTGRES_MIGRATIONS } from "./migrations.js";
import { appendChained, type PostgresKeyStore } from "./postgres-key-store.js";

const numbered = (count: number) => Array.from({ length: count }, (_, i) => `$${i + 1}`);
const INSERT_ENDPOINT = `INSERT INTO webhook_endpoints (${WEBHOOK_ENDPOINT_COLUMNS}) VALUES (${numbered(6).join(", ")}) RETURNING seq`;
const INSERT_DELIVERY = `INSERT INTO webhook_deliveries (${WEBHOOK_DELIVERY_COLUMNS}) VALUES (${numbered(9).join(", ")}) ON CONFLICT DO NOTHING`;

/**
 * WebhookStore on the key store's PostgreSQL pool: endpoint changes share a transaction with
 * their audit events. With `secrets`, endpoint secrets are sealed at rest (docs/webhooks.md).
 */
export class PostgresWebhookStore implements WebhookStore {
  private readonly keys: PostgresKeyStore;
  private readonly box: SecretBox | null;

  constructor(keys: PostgresKeyStore, options: { secrets?: SecretBox | null } = {}) {
    this.keys = keys;
    this.box = options.secrets ?? null;
  }

  async migrate(): Promise<void> {
    await migratePool(this.keys.pool, WEBHOOK_POSTGRES_MIGRATIONS);
  }

  async createEndpoint(endpoint: NewWebhookEndpoint, audit: AuditEvent): Promise<WebhookEndpoint> {
    return this.keys.transaction(async (client) => {
      const { rows } = await client.query<{ seq: string }>(INSERT_ENDPOINT, webhookEndpointValues(endpoint, this.box));
      await appendChained(client, audit);
      return { ...endpoint, seq: Number(rows[0]?.seq) };
    });
  }

  async getEndpoint(id: string): Promise<WebhookEndpoint | null> {
    const row = (await this.keys.pool.query<WebhookEndpointRow>("SELECT * FROM webhook_endpoints WHERE id = $1", [id])).rows[0];
    return row ? rowToWebhookEndpoint(row, this.box) : null;
  }

  async listEndpoints(limit: number, afterSeq: number | null): Promise<WebhookEndpoint[]> {
    const { rows } = await this.keys.pool.query<WebhookEndpointRow>(
      "SELECT * FROM webhook_endpoints WHERE seq > $1 ORDER BY seq LIMIT $2",
      [afterSeq ?? 0, limit],
    );
    return rows.map((row) => rowToWebhookEndpoint(row, this.box));
  }

  async deleteEndpoint(id: string, audit: AuditEvent): Promise<boolean> {
    return this.keys.transaction(async (client) => {
      const deleted = await client.query("DELETE FROM webhook_endpoints WHERE id = $1", [id]);
      if (deleted.rowCount === 0) return false;
      await appendChained(client, audit);
      return true;
    });
  }

  async ingestAuditEvents(limit: number, plan: PlanDeliveries): Promise<number> {
    // A plain read first: an idle poll opens no transaction and takes no lock.
    const pending = await this.keys.pool.query(
      "SELECT 1 FROM audit_events WHERE seq > (SELECT audit_seq FROM webhook_cursor WHERE id = 1) LIMIT 1",
    );
    if (pending.rowCount === 0) return 0;
    return this.keys.transaction(async (client) => {
      // The row lock makes instances take turns; audit seqs commit in order (appends hold an advisory lock to commit).
      const cursor = Number(
        (await client.query<{ audit_seq: string }>("SELECT audit_seq FROM webhook_cursor WHERE id = 1 FOR UPDATE")).rows[0]?.audit_seq ?? 0,
      );
      const { rows } = await client.query<AuditRow>("SELECT * FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2", [cursor, limit]);
      const last = rows[rows.length - 1];
      if (!last) return 0;
      const events = rows.map(rowToAudit);
      const endpoints = (await client.query<WebhookEndpointRow>("SELECT * FROM webhook_endpoints ORDER BY seq")).rows.map((row) =>
        rowToWebhookEndpoint(row, this.box),
      );
      if (endpoints.length > 0) {
        const ids = [...new Set(events.filter((e) => e.targetType === "key").map((e) => e.targetId))];
        const keys = new Map<string, WebhookKeySummary>();
        if (ids.length > 0) {
          const found = await client.query<KeySummaryRow>(`SELECT ${KEY_SUMMARY_COLUMNS} FROM keys WHERE id = ANY($1)`, [ids]);
          for (const row of found.rows) keys.set(row.id, rowToKeySummary(row));
        }
        for (const delivery of plan(events, endpoints, keys)) await client.query(INSERT_DELIVERY, webhookDeliveryValues(delivery));
      }
      await client.query("UPDATE webhook_cursor SET audit_seq = $1 WHERE id = 1", [Number(last.seq)]);
      return rows.length;
    });
  }

  async findExpiringKeys(now: number, until: number, limit: number): Promise<WebhookKeySummary[]> {
    const { rows } = await this.keys.pool.query<KeySummaryRow>(EXPIRING_KEYS_SQL(["$1", "$2", "$3", "$4"]), [now, until, true, limit]);
    return rows.map(rowToKeySummary);
  }

  async enqueueExpiryNotice(keyId: string, expiresAt: number, deliveries: NewWebhookDelivery[]): Promise<boolean> {
    return this.keys.transaction(async (client) => {
      const noticed = await client.query(
        "INSERT INTO webhook_expiry_notices (key_id, expires_at, noticed_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        [keyId, expiresAt, Date.now()],
      );
      if (noticed.rowCount === 0) return false;
      for (const delivery of deliveries) await client.query(INSERT_DELIVERY, webhookDeliveryValues(delivery));
      return true;
    });
  }

  async claimDueDeliveries(now: number, limit: number, leaseMs: number): Promise<ClaimedWebhookDelivery[]> {
    const due = await this.keys.pool.query("SELECT 1 FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 LIMIT 1", [
      now,
    ]);
    if (due.rowCount === 0) return [];
    // SKIP LOCKED: instances claiming at once take different rows instead of waiting on each other.
    const { rows } = await this.keys.pool.query<WebhookDeliveryRow & { url: string; secret: string }>(
      `WITH due AS (
         SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1
         ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED
       )
       UPDATE webhook_deliveries d SET next_attempt_at = $3 FROM due, webhook_endpoints e
       WHERE d.id = due.id AND e.id = d.endpoint_id
       RETURNING d.*, e.url, e.secret`,
      [now, limit, now + leaseMs],
    );
    return rows.map((row) => rowToClaimedDelivery(row, this.box));
  }

  async recordAttempt(id: string, result: WebhookAttemptResult): Promise<void> {
    await this.keys.pool.query(RECORD_ATTEMPT_SQL(numbered(7)), [
      result.status,
      result.nextAttemptAt,
      result.at,
      result.statusCode,
      result.error,
      result.status === "delivered" ? result.at : null,
      id,
    ]);
  }

  async listDeliveries(endpointId: string, limit: number, beforeSeq: number | null): Promise<WebhookDelivery[]> {
    const { rows } = await this.keys.pool.query<WebhookDeliveryRow>(
      "SELECT * FROM webhook_deliveries WHERE endpoint_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
      [endpointId, beforeSeq ?? Number.MAX_SAFE_INTEGER, limit],
    );
    return rows.map(rowToWebhookDelivery);
  }

  async pruneDeliveries(before: number): Promise<number> {
    return (await this.keys.pool.query(PRUNE_DELIVERIES_SQL("$1"), [before])).rowCount ?? 0;
  }

  async resealSecrets(): Promise<number> {
    const box = this.box;
    if (!box) return 0;
    const { rows } = await this.keys.pool.query<{ id: string; secret: string }>("SELECT id, secret FROM webhook_endpoints ORDER BY seq");
    let rewritten = 0;
    for (const { id, secret } of rows) {
      const sealed = resealedWebhookSecret(secret, id, box);
      if (sealed === null) continue;
      const updated = await this.keys.pool.query("UPDATE webhook_endpoints SET secret = $1 WHERE id = $2 AND secret = $3", [
        sealed,
        id,
        secret,
      ]);
      rewritten += updated.rowCount ?? 0;
    }
    return rewritten;
  }
}
