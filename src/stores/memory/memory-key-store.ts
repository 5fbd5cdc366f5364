import { AUDIT_GENESIS_HASH, type AuditChainEntry } from "../../core/audit-chain.js";
import {
  type AuditEvent,
  computeKeyStatus,
  type KeyLifecycleChanges,
  type KeyRecord,
  type OwnerRecord,
  type OwnerRef,
} from "../../core/model.js";
import type {
  AlsoChanged,
  AuditFilter,
  AuditPage,
  CreationCap,
  ImportMatch,
  KeyImportSession,
  KeyListFilter,
  KeyLookup,
  KeyPage,
  KeyPageCursor,
  KeyStore,
  OwnerFields,
  OwnerListFilter,
  OwnerPage,
  RotateResult,
} from "../../ports/key-store.js";
import { sharedLimitsFromJson, sharedLimitsToJson } from "../owner-rows.js";
import { chainedAuditRowValues } from "../rows.js";

const ownerKey = (owner: OwnerRef): string => `${owner.type}:${owner.id}`;
// Records are copied in and out so callers can never mutate what the store holds.
const copy = <T>(value: T): T => structuredClone(value);

/** What the SQL stores' `buildKeyListWhere` selects (src/stores/sql-filters.ts), on a record. */
function matchesFilter(k: KeyRecord, filter: KeyListFilter): boolean {
  if (filter.ownerType && k.owner.type !== filter.ownerType) return false;
  if (filter.ownerId && k.owner.id !== filter.ownerId) return false;
  if (filter.environment && k.environment !== filter.environment) return false;
  if (filter.status && computeKeyStatus(k, filter.now) !== filter.status) return false;
  if (filter.expiresBy !== undefined && (k.expiresAt === null || k.expiresAt <= filter.now || k.expiresAt > filter.expiresBy)) return false;
  const search = filter.search;
  if (search && (search.id || search.ref || search.last4 || search.name)) {
    const found =
      (search.id !== undefined && k.id === search.id) ||
      (search.ref !== undefined && k.ref === search.ref) ||
      (search.last4 !== undefined && k.ref.slice(-4) === search.last4) ||
      (search.name !== undefined && k.name.toLowerCase().includes(search.name.toLowerCase()));
    if (!found) return false;
  }
  return true;
}

/** KeyStore in process memory: for tests and embedded use without persistence. */
export class MemoryKeyStore implements KeyStore {
  private readonly keys = new Map<string, KeyRecord>();
  private readonly byDigest = new Map<string, string>();
  private readonly owners = new Map<string, OwnerRecord>();
  private readonly audit: AuditEvent[] = [];
  private readonly chain: AuditChainEntry[] = [];
  private readonly meta = new Map<string, string>();

  async migrate(): Promise<void> {}

  async findKeyByDigest(digest: string): Promise<KeyLookup | null> {
    const id = this.byDigest.get(digest);
    const key = id === undefined ? undefined : this.keys.get(id);
    if (!key) return null;
    const owner = this.owners.get(ownerKey(key.owner));
    const ownerLimits = owner?.limits ? { ...copy(owner.limits), owner: key.owner, createdAt: owner.createdAt } : null;
    return { key: copy(key), ownerDisabled: owner?.disabled ?? false, ownerLimits };
  }

  async getKey(id: string): Promise<KeyRecord | null> {
    const key = this.keys.get(id);
    return key ? copy(key) : null;
  }

  async listKeys(filter: KeyListFilter, limit: number, after: KeyPageCursor | null): Promise<KeyPage> {
    const matching = [...this.keys.values()]
      .filter(
        (k) =>
          matchesFilter(k, filter) && (!after || k.createdAt < after.createdAt || (k.createdAt === after.createdAt && k.id < after.id)),
      )
      .sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    const keys = matching.slice(0, limit).map(copy);
    const last = keys[keys.length - 1];
    return { keys, next: matching.length > limit && last ? { createdAt: last.createdAt, id: last.id } : null };
  }

  async insertKey(key: KeyRecord, audit: AuditEvent, cap?: CreationCap): Promise<boolean> {
    if (this.keys.has(key.id) || this.byDigest.has(key.digest)) throw new Error("duplicate key id or digest");
    if (cap) {
      let created = 0;
      for (const existing of this.keys.values())
        if (
          existing.owner.type === cap.owner.type &&
          existing.owner.id === cap.owner.id &&
          existing.createdAt >= cap.since &&
          existing.rotatedFrom === null
        )
          created++;
      if (created >= cap.max) return false;
    }
    await this.ensureOwner(key.owner, key.createdAt);
    this.keys.set(key.id, copy(key));
    this.byDigest.set(key.digest, key.id);
    this.appendChained(audit);
    return true;
  }

  async updateKey(
    id: string,
    changes: KeyLifecycleChanges,
    audit: AuditEvent | null,
    also: readonly AlsoChanged[] = [],
  ): Promise<KeyRecord | null> {
    const key = this.keys.get(id);
    if (!key) return null;
    for (const update of [{ id, changes }, ...also]) {
      const current = this.keys.get(update.id);
      if (!current) continue;
      const defined = Object.fromEntries(Object.entries(update.changes).filter(([, v]) => v !== undefined));
      this.keys.set(update.id, { ...current, ...copy(defined), updatedAt: audit?.at ?? Date.now() });
    }
    if (audit) this.appendChained(audit);
    return copy(this.keys.get(id) as KeyRecord);
  }

  async rotateKey(oldId: string, oldChanges: KeyLifecycleChanges, successor: KeyRecord, audit: AuditEvent): Promise<RotateResult> {
    const old = this.keys.get(oldId);
    if (!old) return "not_found";
    if (old.replacedBy !== null || old.revokedAt !== null) return "conflict";
    this.keys.set(oldId, { ...old, ...copy(oldChanges), replacedBy: successor.id, updatedAt: audit.at });
    this.keys.set(successor.id, copy(successor));
    this.byDigest.set(successor.digest, successor.id);
    this.appendChained(audit);
    return "rotated";
  }

  async getOwner(owner: OwnerRef): Promise<OwnerRecord | null> {
    const found = this.owners.get(ownerKey(owner));
    return found ? copy(found) : null;
  }

  async ensureOwner(owner: OwnerRef, now: number): Promise<void> {
    if (!this.owners.has(ownerKey(owner)))
      this.owners.set(ownerKey(owner), { type: owner.type, id: owner.id, disabled: false, createdAt: now, name: null, limits: null });
  }

  async createOwner(owner: OwnerRef, fields: OwnerFields, audit: AuditEvent, now: number): Promise<OwnerRecord | null> {
    if (this.owners.has(ownerKey(owner))) return null;
    const record: OwnerRecord = {
      type: owner.type,
      id: owner.id,
      disabled: false,
      createdAt: now,
      name: fields.name ?? null,
      limits: null,
    };
    record.limits = sharedLimitsFromJson(sharedLimitsToJson(fields.limits ?? null));
    this.owners.set(ownerKey(owner), record);
    this.appendChained(audit);
    return copy(record);
  }

  async updateOwner(owner: OwnerRef, fields: OwnerFields, audit: AuditEvent): Promise<OwnerRecord | null> {
    const record = this.owners.get(ownerKey(owner));
    if (!record) return null;
    if (fields.name !== undefined) record.name = fields.name;
    // Through the stored spelling, as the SQL stores do: limits with nothing in them are none.
    if (fields.limits !== undefined) record.limits = sharedLimitsFromJson(sharedLimitsToJson(fields.limits));
    this.appendChained(audit);
    return copy(record);
  }

  async listOwners(filter: OwnerListFilter, limit: number, after: KeyPageCursor | null): Promise<OwnerPage> {
    const q = filter.q?.toLowerCase();
    const rows = [...this.owners.values()]
      .filter(
        (o) =>
          o.type === filter.type &&
          (!filter.ids || filter.ids.includes(o.id)) &&
          (!q || o.id.toLowerCase().includes(q) || (o.name ?? "").toLowerCase().includes(q)) &&
          (!after || o.createdAt < after.createdAt || (o.createdAt === after.createdAt && o.id < after.id)),
      )
      .sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    const owners = rows.slice(0, limit).map(copy);
    const last = owners[owners.length - 1];
    return { owners, next: rows.length > limit && last ? { createdAt: last.createdAt, id: last.id } : null };
  }

  async setOwnerDisabled(owner: OwnerRef, disabled: boolean, audit: AuditEvent, now: number): Promise<OwnerRecord> {
    await this.ensureOwner(owner, now);
    const record = this.owners.get(ownerKey(owner)) as OwnerRecord;
    record.disabled = disabled;
    this.appendChained(audit);
    return copy(record);
  }

  /** Keeps the same hash chain as the SQL stores, over the values they would store. */
  private appendChained(event: AuditEvent): void {
    const values = chainedAuditRowValues(event, this.chain[this.chain.length - 1]?.hash ?? AUDIT_GENESIS_HASH);
    this.chain.push({
      seq: this.chain.length + 1,
      id: event.id,
      values: values.slice(0, -2),
      prevHash: values.at(-2) as string,
      hash: values.at(-1) as string,
    });
    this.audit.push(copy(event));
  }

  async appendAuditEvent(event: AuditEvent): Promise<void> {
    this.appendChained(event);
  }

  async readAuditChain(afterSeq: number, limit: number): Promise<AuditChainEntry[]> {
    return this.chain.slice(afterSeq, afterSeq + limit);
  }

  async listAuditEvents(filter: AuditFilter, limit: number, after: string | null): Promise<AuditPage> {
    const start = after === null ? this.audit.length : Number(after) - 1;
    const events: AuditEvent[] = [];
    let index = start - 1;
    for (; index >= 0 && events.length <= limit; index--) {
      const e = this.audit[index] as AuditEvent;
      if (filter.actorId && e.actor.id !== filter.actorId) continue;
      if (filter.targetId && e.targetId !== filter.targetId) continue;
      if (filter.action && e.action !== filter.action) continue;
      if (filter.since !== undefined && e.at < filter.since) continue;
      if (filter.until !== undefined && e.at >= filter.until) continue;
      events.push(e);
    }
    const page = events.slice(0, limit);
    const last = page[page.length - 1];
    // The cursor is the 1-based position of the last event returned, as `seq` is in the SQL stores.
    return { events: page.map(copy), next: events.length > limit && last ? String(this.audit.indexOf(last) + 1) : null };
  }

  async getMeta(name: string): Promise<string | null> {
    return this.meta.get(name) ?? null;
  }

  async setMetaOnce(name: string, value: string): Promise<boolean> {
    if (this.meta.has(name)) return false;
    this.meta.set(name, value);
    return true;
  }

  async countKeys(filter?: KeyListFilter): Promise<number> {
    if (!filter) return this.keys.size;
    let count = 0;
    for (const key of this.keys.values()) if (matchesFilter(key, filter)) count++;
    return count;
  }

  /** Imports (docs/migrating.md), as the SQL stores do them; a dry run remembers its would-be keys in a map of its own. */
  async openImport(options: { dryRun: boolean }): Promise<KeyImportSession> {
    const scratch = new Map<string, ImportMatch>();
    const stored = (): Iterable<ImportMatch> =>
      options.dryRun
        ? [...this.keys.values(), ...scratch.values()].map((k) => ({ id: k.id, externalId: k.externalId, digest: k.digest }))
        : [...this.keys.values()].map((k) => ({ id: k.id, externalId: k.externalId, digest: k.digest }));
    return {
      findMatches: async (externalIds, digests) => {
        const ids = new Set(externalIds);
        const wanted = new Set(digests);
        return [...stored()].filter((k) => (k.externalId !== null && ids.has(k.externalId)) || wanted.has(k.digest));
      },
      insert: async (keys) => {
        const skipped = new Set<string>();
        for (const key of keys) {
          const taken = [...stored()].some(
            (k) => k.id === key.id || k.digest === key.digest || (key.externalId !== null && k.externalId === key.externalId),
          );
          if (taken) skipped.add(key.id);
          else if (options.dryRun) scratch.set(key.id, { id: key.id, externalId: key.externalId, digest: key.digest });
          else {
            await this.ensureOwner(key.owner, key.updatedAt);
            this.keys.set(key.id, copy(key));
            this.byDigest.set(key.digest, key.id);
          }
        }
        return skipped;
      },
      close: async () => {},
    };
  }

  async close(): Promise<void> {}
}
