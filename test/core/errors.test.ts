import { describe, expect, it } from "vitest";
import { isKeywardError, KeywardError, refusalError } from "../../src/core/errors.js";
import { generateApiKey } from "../../src/core/key-format.js";
import { Keyward } from "../../src/engine/keyward.js";
import { FailedAttemptLimiter } from "../../src/limits/failed-attempt-limiter.js";
import { MemoryKeyStore } from "../../src/stores/memory/memory-key-store.js";

describe("refusalError", () => {
  it("is a KeywardError with its code, status and Retry-After, made without stack frames, and leaves the stack limit as it was", () => {
    const before = Error.stackTraceLimit;
    const error = refusalError("TOO_MANY_FAILED_ATTEMPTS", "too many", { retryAfterSeconds: 7 });
    expect(error).toBeInstanceOf(KeywardError);
    expect(isKeywardError(error)).toBe(true);
    expect([error.code, error.status, error.retryAfterSeconds, error.message]).toEqual(["TOO_MANY_FAILED_ATTEMPTS", 429, 7, "too many"]);
    expect(error.stack).toBe("KeywardError: too many");
    expect(Error.stackTraceLimit).toBe(before);
    // An ordinary KeywardError still has its frames.
    expect(new KeywardError("NOT_FOUND").stack).toMatch(/\n\s+at /);
  });

  it("is what a blocked address gets from verify(): 429 without a stack trace captured for each refusal", async () => {
    const keyward = new Keyward({ store: new MemoryKeyStore(), failedAttempts: new FailedAttemptLimiter({ limit: 2, windowMs: 60_000 }) });
    const ip = "203.0.113.9";
    for (let i = 0; i < 2; i++) expect((await keyward.verify(generateApiKey({ environment: "sandbox" }), { ip })).code).toBe("NOT_FOUND");
    const refused = await keyward.verify(generateApiKey({ environment: "sandbox" }), { ip }).catch((error: unknown) => error);
    expect(isKeywardError(refused) && refused.code).toBe("TOO_MANY_FAILED_ATTEMPTS");
    expect((refused as KeywardError).stack).not.toMatch(/\n\s+at /);
    await keyward.close();
  });
});
