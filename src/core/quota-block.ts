import type { QuotaBlockRequest } from "../ports/limits.js";

/**
 * How many uses a block take asks for when `used` of `allowance` are spent (docs/limits.md,
 * "Quota blocks"): at most `max` and at most 1/`share` of what remains, but never fewer than
 * `min` (the uses the request that takes it needs). The store writes it only if it still fits.
 */
export function blockSize(allowance: number, used: number, block: QuotaBlockRequest): number {
  return Math.max(block.min, Math.min(block.max, Math.floor((allowance - used) / block.share)));
}
