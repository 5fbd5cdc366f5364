import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { OUTCOME_CODES } from "../../src/core/outcomes.js";
import type { LastUse, UsageCount } from "../../src/ports/usage-recorder.js";
import { decodeUsageBatch, encodeUsageBatch, UsageMerge } from "../../src/usage/usage-merge.js";
import { fuzz } from "../helpers/fuzz.js";

// The journal row format: what a recovery reads back must be exactly what the flush wrote,
// whatever the order, the minutes, the outcomes or the addresses a caller passed.

const MINUTE = 60_000;
const keyId = fc.stringMatching(/^key_[0-9A-Za-z]{22}$/);
const count = fc.record({
  minute: fc.integer({ min: 28_000_000, max: 30_000_000 }).map((m) => m * MINUTE),
  keyId: fc.oneof(keyId, fc.constant("")),
  owner: fc.oneof(fc.constant(""), fc.stringMatching(/^(user|application):[A-Za-z0-9_.@:-]{1,20}$/), fc.string()),
  outcome: fc.constantFrom(...OUTCOME_CODES),
  count: fc.integer({ min: -1_000_000, max: 1_000_000 }),
}) satisfies fc.Arbitrary<UsageCount>;
// Addresses come from POST /v1/keys/verify as any string: tabs, newlines, backslashes, "=", "".
const address = fc.oneof(fc.constant(null), fc.constant("127.0.0.1"), fc.constantFrom("", "=", "-", "\\", "\t", "\n", "\\t"), fc.string());
const lastUse = fc.record({ keyId, at: fc.integer({ min: 0, max: 2 ** 45 }), ip: address }) satisfies fc.Arbitrary<LastUse>;

/** What merging a batch gives: the sums per row and the latest use per key. */
function merged(counts: readonly UsageCount[], uses: readonly LastUse[]): UsageMerge {
  const merge = new UsageMerge();
  for (const c of counts) merge.addCount(c);
  for (const use of uses) merge.addLastUse(use);
  return merge;
}

function decoded(payload: string): UsageMerge {
  const merge = new UsageMerge();
  decodeUsageBatch(payload, merge);
  return merge;
}

describe("journal rows", () => {
  it("decode to exactly what was encoded", () => {
    fuzz(
      fc.property(fc.array(count, { maxLength: 40 }), fc.array(lastUse, { maxLength: 40 }), (counts, uses) => {
        const back = decoded(encodeUsageBatch(counts, uses));
        const expected = merged(counts, uses);
        expect([...back.counts.entries()]).toEqual([...expected.counts.entries()]);
        expect([...back.lastUses.entries()]).toEqual([...expected.lastUses.entries()]);
      }),
    );
  });

  it("keep each count line's own minute, outcome and owner when they change from row to row", () => {
    const counts: UsageCount[] = [
      { minute: 0, keyId: "key_a", owner: "user:alice", outcome: "VALID", count: 2 },
      { minute: MINUTE, keyId: "key_a", owner: "user:alice", outcome: "VALID", count: 1 },
      { minute: MINUTE, keyId: "key_a", owner: "user:alice", outcome: "REVOKED", count: 3 },
      { minute: MINUTE, keyId: "key_b", owner: "application:ci", outcome: "VALID", count: -4 },
      { minute: 0, keyId: "", owner: "", outcome: "MALFORMED", count: 7 },
    ];
    expect([...decoded(encodeUsageBatch(counts, [])).counts.values()]).toEqual(counts);
  });

  it("tell a missing address from the one before, and from an empty one", () => {
    const uses: LastUse[] = [
      { keyId: "key_a", at: 1_000, ip: "10.0.0.1" },
      { keyId: "key_b", at: 900, ip: "10.0.0.1" },
      { keyId: "key_c", at: 2_000, ip: null },
      { keyId: "key_d", at: 2_000, ip: "" },
      { keyId: "key_e", at: 5, ip: "a\tb\nc\\d" },
    ];
    expect([...decoded(encodeUsageBatch([], uses)).lastUses.values()]).toEqual(uses);
  });

  it("are a fraction of the size of the JSON rows they replace", () => {
    const counts = Array.from({ length: 1_000 }, (_, i) => ({
      minute: 29_000_000 * MINUTE,
      keyId: `key_${String(i).padStart(22, "0")}`,
      owner: `user:person-${i % 50}@example.com`,
      outcome: "VALID" as const,
      count: 1,
    }));
    const uses = counts.map((c, i) => ({ keyId: c.keyId, at: 29_000_000 * MINUTE + i, ip: "192.0.2.10" }));
    const json = JSON.stringify({
      c: counts.map((c) => [c.minute, c.keyId, c.owner, c.outcome, c.count]),
      u: uses.map((u) => [u.keyId, u.at, u.ip]),
    });
    expect(encodeUsageBatch(counts, uses).length).toBeLessThan(json.length * 0.7);
  });

  it("written by an earlier version (JSON) still decode, so a journal left before an upgrade is recovered", () => {
    const payload = JSON.stringify({
      c: [
        [0, "key_a", "user:alice", "VALID", 3],
        [0, "key_a", "user:alice", "VALID", 2],
      ],
      u: [
        ["key_a", 10, "10.0.0.1"],
        ["key_a", 20, null],
      ],
    });
    const back = decoded(payload);
    expect([...back.counts.values()]).toEqual([{ minute: 0, keyId: "key_a", owner: "user:alice", outcome: "VALID", count: 5 }]);
    expect([...back.lastUses.values()]).toEqual([{ keyId: "key_a", at: 20, ip: null }]);
  });
});
