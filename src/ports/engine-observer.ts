import type { OutcomeCode } from "../core/outcomes.js";

/** How a verification found its key: fresh cache entry, remembered-unknown entry, or a store read. */
export type CacheLookupResult = "hit" | "negative_hit" | "miss";

/**
 * What the engine reports about itself, for metrics. Called on the hot path: implementations
 * only bump counters. The default does nothing.
 */
export interface EngineObserver {
  /** One verification ended with `code`, `seconds` after it started. */
  verified(code: OutcomeCode, seconds: number): void;
  cacheLookup(result: CacheLookupResult): void;
  /** A store call failed (`lookup` on the verify path; management writes are counted at the edge). */
  storeError(operation: string): void;
  /** A client address over its failed attempts was refused before any lookup. */
  failedAttemptRefused?(): void;
  /** A key of a declared legacy format (docs/migrating.md) was verified, with `code`: legacy use, counted apart. */
  legacyVerified?(format: string, code: OutcomeCode): void;
}

export const noopEngineObserver: EngineObserver = { verified: () => {}, cacheLookup: () => {}, storeError: () => {} };
