import { LRUCache } from "lru-cache";
import { type ParsedCidr, parseCidr } from "../core/cidr.js";
import type { KeyLookup } from "../ports/key-store.js";

export interface VerifyCacheOptions {
  /** Positive entries kept at most. Default 100,000 (about 2 KB each). */
  maxEntries?: number;
  /** After this age an entry is re-read from the store. Default 5,000 ms: the cross-instance staleness bound when the invalidation channel is down. */
  maxAgeMs?: number;
  /** Unknown digests remembered at most. Default 100,000: a flood of random keys stays O(1) and bounded. */
  negativeMaxEntries?: number;
  /** Default 5,000 ms. A key created on this instance clears its negative entry at once. */
  negativeMaxAgeMs?: number;
  /** How long a verified key keeps working from cache while the store is unreachable. Default 300,000 ms. */
  staleWindowMs?: number;
}

export interface CachedKey {
  lookup: KeyLookup;
  /** CIDRs parsed once per fetch, not per request. */
  cidrs: ParsedCidr[];
  fetchedAt: number;
}

/**
 * The verification cache: digest → key, with a short maximum age so revocations made elsewhere
 * are seen within it, and a negative LRU for unknown digests. Changes made through this process
 * delete entries at once.
 */
export class VerifyCache {
  readonly maxAgeMs: number;
  readonly negativeMaxAgeMs: number;
  readonly staleWindowMs: number;
  private readonly positive: LRUCache<string, CachedKey>;
  private readonly negative: LRUCache<string, number>;
  private readonly digestsById = new Map<string, string>();

  constructor(options: VerifyCacheOptions = {}) {
    this.maxAgeMs = options.maxAgeMs ?? 5_000;
    this.negativeMaxAgeMs = options.negativeMaxAgeMs ?? 5_000;
    this.staleWindowMs = options.staleWindowMs ?? 300_000;
    this.positive = new LRUCache({
      max: options.maxEntries ?? 100_000,
      dispose: (entry) => {
        if (this.digestsById.get(entry.lookup.key.id) === entry.lookup.key.digest) this.digestsById.delete(entry.lookup.key.id);
      },
    });
    this.negative = new LRUCache({ max: options.negativeMaxEntries ?? 100_000 });
  }

  /** The entry for `digest`, fresh or not; the caller decides by `fetchedAt`. */
  get(digest: string): CachedKey | undefined {
    return this.positive.get(digest);
  }

  isKnownMissing(digest: string, now: number): boolean {
    const at = this.negative.get(digest);
    return at !== undefined && now - at < this.negativeMaxAgeMs;
  }

  setFound(digest: string, lookup: KeyLookup, now: number): CachedKey {
    const entry: CachedKey = {
      lookup,
      cidrs: lookup.key.allowedCidrs.map(parseCidr).filter((c): c is ParsedCidr => c !== null),
      fetchedAt: now,
    };
    this.positive.set(digest, entry);
    this.digestsById.set(lookup.key.id, digest);
    this.negative.delete(digest);
    return entry;
  }

  setMissing(digest: string, now: number): void {
    this.negative.set(digest, now);
  }

  invalidateKey(keyId: string, digest?: string): void {
    const known = digest ?? this.digestsById.get(keyId);
    if (known !== undefined) {
      this.positive.delete(known);
      this.negative.delete(known);
    }
    this.digestsById.delete(keyId);
  }

  /** Owner changes touch many keys; they are rare, so dropping every positive entry is simplest and safe. */
  invalidateAll(): void {
    this.positive.clear();
    this.digestsById.clear();
  }

  get size(): { positive: number; negative: number } {
    return { positive: this.positive.size, negative: this.negative.size };
  }
}
