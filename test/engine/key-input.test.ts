import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isKeywardError } from "../../src/core/errors.js";
import { type CreateKeyInput, validateCreateKeyInput, validateGraceSeconds, validateKeyChanges } from "../../src/engine/key-input.js";
import { fuzz } from "../helpers/fuzz.js";

// SECURITY.md 6: management payloads. Whatever an embedding app or a buggy client passes, the
// validators answer with a VALIDATION_FAILED KeywardError naming fields, or accept; nothing else.

const NOW = Date.UTC(2026, 0, 1);

/** Passes, or throws VALIDATION_FAILED with at least one field error; any other outcome fails the property. */
function validatesCleanly(run: () => void): boolean {
  try {
    run();
    return true;
  } catch (error) {
    return isKeywardError(error) && error.code === "VALIDATION_FAILED" && (error.errors?.length ?? 0) > 0 && error.status === 400;
  }
}

const hostile = fc.oneof(
  fc.anything({
    maxDepth: 4,
    withNullPrototype: true,
    withBigInt: true,
    withDate: true,
    withMap: true,
    withSet: true,
    withTypedArray: true,
  }),
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, -1, 1e308, 2 ** 53, "", "\r\n", "<script>", "__proto__"),
  fc.jsonValue({ maxDepth: 8 }),
);

const validScope = fc
  .array(fc.oneof(fc.stringMatching(/^[a-z0-9_.-]{1,8}$/), fc.constant("*")), { minLength: 1, maxLength: 3 })
  .map((s) => s.join(":"));
const validInput: fc.Arbitrary<CreateKeyInput> = fc.record(
  {
    owner: fc.record({ type: fc.constantFrom("user", "application"), id: fc.stringMatching(/^[A-Za-z0-9_.@:-]{1,40}$/) }),
    name: fc.stringMatching(/^[A-Za-z0-9 ._-]{0,99}[A-Za-z0-9]$/),
    environment: fc.constantFrom("sandbox", "production"),
    scopes: fc.array(validScope, { maxLength: 64 }),
    expiresAt: fc.option(fc.integer({ min: NOW + 1, max: NOW + 10 * 365 * 86_400_000 }), { nil: undefined }),
    rateLimit: fc.option(
      fc.record({ requests: fc.integer({ min: 1, max: 1_000_000 }), per_seconds: fc.integer({ min: 1, max: 86_400 }) }),
      { nil: undefined },
    ),
    concurrency: fc.option(fc.integer({ min: 1, max: 10_000 }), { nil: undefined }),
    quota: fc.option(
      fc.oneof(
        fc.record({
          limit: fc.integer({ min: 1, max: 1_000_000 }),
          period: fc.constantFrom("day", "month") as fc.Arbitrary<"day" | "month">,
        }),
        fc.record({ remaining: fc.integer({ min: 0, max: 1_000_000 }) }),
      ),
      { nil: undefined },
    ),
    allowedCidrs: fc.option(
      fc.array(
        fc.oneof(
          fc.ipV4(),
          fc.ipV4().map((ip) => `${ip}/24`),
          fc.ipV6(),
        ),
        { maxLength: 64 },
      ),
      { nil: undefined },
    ),
    metadata: fc.option(
      fc.dictionary(
        fc.stringMatching(/^[a-z]{1,10}$/).filter((k) => !["constructor", "prototype"].includes(k)),
        fc.oneof(fc.string({ maxLength: 20 }), fc.integer(), fc.boolean()),
        {
          maxKeys: 10,
        },
      ),
      {
        nil: undefined,
      },
    ),
  },
  { requiredKeys: ["owner", "name", "environment", "scopes"] },
) as fc.Arbitrary<CreateKeyInput>;

describe("management payload validators (property)", () => {
  it("random values of any type as a whole create payload: VALIDATION_FAILED or accepted, never another error", () => {
    fuzz(
      fc.property(hostile, (input) => validatesCleanly(() => validateCreateKeyInput(input as CreateKeyInput, NOW))),
      { numRuns: 500 },
    );
  });

  it("a valid payload with one field replaced by anything: VALIDATION_FAILED or accepted, never another error", () => {
    const field = fc.constantFrom(
      "owner",
      "name",
      "environment",
      "scopes",
      "expiresAt",
      "rateLimit",
      "concurrency",
      "quota",
      "allowedCidrs",
      "metadata",
    );
    fuzz(
      fc.property(validInput, field, hostile, (input, name, value) =>
        validatesCleanly(() => validateCreateKeyInput({ ...input, [name]: value } as CreateKeyInput, NOW)),
      ),
      { numRuns: 500 },
    );
  });

  it("random changes: VALIDATION_FAILED or accepted, never another error", () => {
    fuzz(
      fc.property(
        fc.dictionary(
          fc.constantFrom("name", "scopes", "expiresAt", "rateLimit", "concurrency", "quota", "allowedCidrs", "metadata", "enabled"),
          hostile,
        ),
        (changes) => validatesCleanly(() => validateKeyChanges(changes as never, NOW)),
      ),
      { numRuns: 300 },
    );
  });

  it("valid payloads pass", () => {
    fuzz(
      fc.property(validInput, (input) => {
        validateCreateKeyInput(input, NOW);
        return true;
      }),
      { numRuns: 300 },
    );
  });

  it("grace periods: any number is accepted or refused cleanly", () => {
    fuzz(fc.property(fc.oneof(fc.double(), fc.integer()), (grace) => validatesCleanly(() => validateGraceSeconds(grace))));
  });

  it("__proto__, NaN and CR/LF are refused with named fields", () => {
    const base: CreateKeyInput = { owner: { type: "user", id: "a" }, name: "n", environment: "sandbox", scopes: [] };
    const withProto = JSON.parse('{"a":{"__proto__":{"polluted":true}}}') as Record<string, unknown>;
    const cases: [Partial<CreateKeyInput>, string][] = [
      [{ metadata: withProto }, "metadata.a.__proto__"],
      [{ metadata: { n: Number.NaN } }, "metadata.n"],
      [{ name: "a\r\nb" }, "name"],
      [{ concurrency: Number.NaN }, "concurrency"],
    ];
    for (const [change, fieldName] of cases) {
      try {
        validateCreateKeyInput({ ...base, ...change }, NOW);
        expect.unreachable(`accepted ${fieldName}`);
      } catch (error) {
        expect(isKeywardError(error) && error.errors?.map((e) => e.field)).toContain(fieldName);
      }
    }
  });
});
