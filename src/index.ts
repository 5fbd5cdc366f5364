export { type DistinctHeaders, type ExtractedCredential, extractCredential } from "./core/carriers.js";
export { ERROR_REGISTRY, type ErrorCode, KeywardError } from "./core/errors.js";
export { type HashSecret, hashApiKey, parseHashSecrets } from "./core/hashing.js";
export { API_KEY_PATTERN, type Environment, formatKeyRef, generateApiKey, parseApiKey } from "./core/key-format.js";
export { type PublicKey, toPublicKey, toVerifiedKey, type VerifiedKey } from "./core/key-view.js";
export { DIGEST_VARIANTS, type DigestVariant, type LegacyFormat, parseLegacyFormats } from "./core/legacy-formats.js";
export type { AuditEvent, KeyRecord, KeyStatus, OwnerRecord, OwnerRef, QuotaSpec, RateLimitSpec, RequestContext } from "./core/model.js";
export { type DenialCode, OUTCOME_CODES, OUTCOME_HTTP_STATUS, type OutcomeCode } from "./core/outcomes.js";
export { findMissingScopes, isValidScope, MANAGEMENT_SCOPES, scopeCovers } from "./core/scopes.js";
export { WEBHOOK_EVENT_TYPES, type WebhookEventType, type WebhookPayload } from "./core/webhook-events.js";
export {
  signWebhookPayload,
  type VerifyWebhookSignatureOptions,
  verifyWebhookSignature,
  WEBHOOK_SIGNATURE_HEADER,
} from "./core/webhook-signature.js";
export { type ImportInputFormat, type ImportItem, readImportRecords } from "./engine/import-records.js";
export type { ImportOptions, ImportProgress, ImportRecordError, ImportReport } from "./engine/key-import.js";
export type { CreateKeyInput } from "./engine/key-input.js";
export {
  type CommittedListener,
  type InvalidationMessage,
  Keyward,
  type KeywardOptions,
  type Page,
  type VerifyOptions,
  type VerifyResult,
} from "./engine/keyward.js";
export type { VerifyCacheOptions } from "./engine/verify-cache.js";
export { KeyLimitEnforcer, type KeyLimitEnforcerOptions } from "./limits/key-limit-enforcer.js";
export { MemoryRateLimiter } from "./limits/memory-rate-limiter.js";
export { BlockQuotaCounter, type BlockQuotaCounterOptions, type BlockQuotaStats } from "./limits/quota-blocks.js";
export { type Clock, ManualClock, systemClock } from "./ports/clock.js";
export type { CacheLookupResult, EngineObserver } from "./ports/engine-observer.js";
export type { KeyStore } from "./ports/key-store.js";
export type {
  Lease,
  LimitDecision,
  LimitEnforcer,
  LimiterMode,
  LimitsSnapshot,
  QuotaBlock,
  QuotaBlockRequest,
  QuotaCounter,
  RateLimiter,
  RateLimitState,
} from "./ports/limits.js";
export type { UsageEvent, UsageRecorder, UsageStore } from "./ports/usage-recorder.js";
export { MemoryKeyStore } from "./stores/memory/memory-key-store.js";
export { MemoryQuotaCounter } from "./stores/memory/memory-quota-counter.js";
export { MemoryUsageStore } from "./stores/memory/memory-usage-store.js";
export { BufferedUsageRecorder, type BufferedUsageRecorderOptions } from "./usage/buffered-usage-recorder.js";
