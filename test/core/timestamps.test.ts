import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isKeywardError } from "../../src/core/errors.js";
import { parseTimestamp, TIMESTAMP_RULE, timestampField } from "../../src/core/timestamps.js";
import { fuzz, timestampText } from "../helpers/fuzz.js";

const FIRST = new Date("0001-01-01T00:00:00.000Z").getTime();
const LAST = new Date("9999-12-31T23:59:59.999Z").getTime();

describe("parseTimestamp: the API's one timestamp parser", () => {
  it("refuses a leap second, which Date.parse turns into NaN", () => {
    expect(Number.isNaN(Date.parse("2026-12-31T23:59:60Z"))).toBe(true);
    expect(parseTimestamp("2026-12-31T23:59:60Z")).toBeNull();
    expect(parseTimestamp("2026-06-30T23:59:60+00:00")).toBeNull();
  });

  it("refuses impossible dates and times, and what is not RFC 3339", () => {
    for (const text of [
      "2023-02-29T00:00:00Z",
      "2026-04-31T00:00:00Z",
      "2026-13-01T00:00:00Z",
      "2026-00-10T00:00:00Z",
      "2026-01-00T00:00:00Z",
      "2026-01-01T24:00:00Z",
      "2026-01-01T23:60:00Z",
      "2026-01-01T00:00:00+24:00",
      "2026-01-01T00:00:00+05:60",
      "2026-01-01T00:00:00",
      "2026-01-01 00:00:00Z",
      "2026-01-01T00:00:00.Z",
      "2026-01-01T00:00:00.1234567890Z",
      "0000-01-01T00:00:00Z",
      "+002026-01-01T00:00:00Z",
      "2026-01-01",
      "",
      "now",
    ])
      expect(parseTimestamp(text), text).toBeNull();
  });

  it("reads offsets, lower-case t and z, fractions (truncated to ms), leap days and early years", () => {
    expect(parseTimestamp("2026-01-01T00:00:00Z")).toBe(Date.UTC(2026, 0, 1));
    expect(parseTimestamp("2026-01-01t00:00:00z")).toBe(Date.UTC(2026, 0, 1));
    expect(parseTimestamp("2026-01-01T05:30:00+05:30")).toBe(Date.UTC(2026, 0, 1));
    expect(parseTimestamp("2025-12-31T19:00:00-05:00")).toBe(Date.UTC(2026, 0, 1));
    expect(parseTimestamp("2026-01-01T00:00:00.123456789Z")).toBe(Date.UTC(2026, 0, 1) + 123);
    expect(parseTimestamp("2026-01-01T00:00:00.5Z")).toBe(Date.UTC(2026, 0, 1) + 500);
    expect(parseTimestamp("2024-02-29T12:00:00Z")).toBe(Date.UTC(2024, 1, 29, 12));
    expect(parseTimestamp("2000-02-29T00:00:00Z")).toBe(Date.UTC(2000, 1, 29));
    expect(parseTimestamp("1900-02-29T00:00:00Z")).toBeNull();
    expect(parseTimestamp("0099-03-01T00:00:00Z")).toBe(new Date("0099-03-01T00:00:00Z").getTime());
  });

  it("agrees with Date for every instant from 0001 to 9999, in UTC and at any offset", () => {
    fuzz(
      fc.property(
        fc.date({ min: new Date(FIRST + 86_400_000), max: new Date(LAST - 86_400_000), noInvalidDate: true }),
        fc.integer({ min: -(23 * 60 + 59), max: 23 * 60 + 59 }),
        (date, offset) => {
          const ms = date.getTime();
          const iso = new Date(ms).toISOString();
          if (parseTimestamp(iso) !== ms) return false;
          // The same instant written at another offset.
          const local = new Date(ms + offset * 60_000).toISOString().slice(0, 23);
          const sign = offset < 0 ? "-" : "+";
          const abs = Math.abs(offset);
          const zone = `${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
          return parseTimestamp(`${local}${zone}`) === ms;
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it("any text: a finite instant or null, never an exception, and never an instant Date cannot print", () => {
    fuzz(
      fc.property(timestampText, (text) => {
        const ms = parseTimestamp(text);
        if (ms === null) return true;
        return Number.isFinite(ms) && typeof new Date(ms).toISOString() === "string";
      }),
      { numRuns: 5_000 },
    );
  });

  it("timestampField names the field in a VALIDATION_FAILED error", () => {
    expect(timestampField("2026-01-01T00:00:00Z", "body.expires_at")).toBe(Date.UTC(2026, 0, 1));
    try {
      timestampField("2026-12-31T23:59:60Z", "querystring.since");
      expect.unreachable();
    } catch (error) {
      expect(isKeywardError(error)).toBe(true);
      expect(error).toMatchObject({ code: "VALIDATION_FAILED", errors: [{ field: "querystring.since", message: TIMESTAMP_RULE }] });
    }
  });
});
