import { hash } from "node:crypto";

/** The first event of a chain links to this. */
export const AUDIT_GENESIS_HASH = "0".repeat(64);

/** One stored audit event as the chain sees it: the values its hash covers, and its links. */
export interface AuditChainEntry {
  seq: number;
  id: string;
  /** Stored column values in insert order: id, at, actor type/id, action, target type/id, ip, user agent, request id, changes, details. */
  values: readonly unknown[];
  prevHash: string;
  hash: string;
}

/**
 * The hash that chains an audit event to the one before it: SHA-256 over the previous hash and
 * the event's stored column values (as stored, so a verifier recomputes it from the row alone).
 * Changing, removing or reordering any event breaks every hash after it.
 */
export function computeAuditHash(prevHash: string, values: readonly unknown[]): string {
  // `at` is normalised: SQLite returns integers, PostgreSQL BIGINT as text.
  const canonical = JSON.stringify([prevHash, ...values.map((v, i) => (i === 1 ? String(Number(v)) : (v ?? null)))]);
  return hash("sha256", canonical, "hex");
}

export type AuditChainReport =
  | { ok: true; events: number }
  | { ok: false; events: number; brokenAt: { seq: number; id: string; reason: string } };

/** Walks the chain in order and reports the first event whose link or hash does not hold. */
export async function verifyAuditChain(read: (afterSeq: number, limit: number) => Promise<AuditChainEntry[]>): Promise<AuditChainReport> {
  let previous = AUDIT_GENESIS_HASH;
  let afterSeq = 0;
  let count = 0;
  for (;;) {
    const page = await read(afterSeq, 1_000);
    for (const entry of page) {
      if (entry.prevHash !== previous)
        return {
          ok: false,
          events: count,
          brokenAt: { seq: entry.seq, id: entry.id, reason: "does not link to the event before it (an event was removed or reordered)" },
        };
      if (computeAuditHash(entry.prevHash, entry.values) !== entry.hash)
        return {
          ok: false,
          events: count,
          brokenAt: { seq: entry.seq, id: entry.id, reason: "its content does not match its hash (it was changed)" },
        };
      previous = entry.hash;
      afterSeq = entry.seq;
      count++;
    }
    if (page.length < 1_000) return { ok: true, events: count };
  }
}
