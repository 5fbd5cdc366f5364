import { KeywardError } from "./errors.js";

// RFC 3339 `date-time`: date, `T`, time with optional fraction, `Z` or a numeric offset.
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** What a timestamp field must look like, in every refusal. */
export const TIMESTAMP_RULE = "must be an RFC 3339 date-time such as 2026-01-31T12:00:00Z (no leap second, year 0001–9999)";

const daysIn = (year: number, month: number): number =>
  month === 2 ? (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31;

/**
 * The one timestamp parser of the API (docs/hardening.md, timestamps): milliseconds since the
 * epoch, or null for anything it does not accept. Every field is range-checked here rather than
 * left to `Date.parse`, which returns NaN for a leap second (`23:59:60`) and quietly shifts
 * impossible values; a leap second is refused, not rounded. Fractions beyond milliseconds are
 * truncated.
 */
export function parseTimestamp(text: string): number | null {
  if (text.length > 40) return null;
  const m = RFC3339.exec(text);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return null;
  if (hour > 23 || minute > 59 || second > 59) return null;
  let offsetMinutes = 0;
  if (m[8] === undefined) {
    const offsetHours = Number(m[10]);
    const offsetMins = Number(m[11]);
    if (offsetHours > 23 || offsetMins > 59) return null;
    offsetMinutes = (m[9] === "-" ? -1 : 1) * (offsetHours * 60 + offsetMins);
  }
  const millis = m[7] === undefined ? 0 : Number(m[7].padEnd(3, "0").slice(0, 3));
  // setUTCFullYear, not Date.UTC: Date.UTC reads years 0–99 as 1900–1999.
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, millis);
  const ms = date.getTime() - offsetMinutes * 60_000;
  return Number.isFinite(ms) ? ms : null;
}

/** Whether `parseTimestamp` accepts the text: the `date-time` format of request schemas. */
export const isTimestamp = (text: string): boolean => parseTimestamp(text) !== null;

/** A timestamp parameter's value, or `400 VALIDATION_FAILED` naming `field`. */
export function timestampField(text: string, field: string): number {
  const ms = parseTimestamp(text);
  if (ms === null)
    throw new KeywardError("VALIDATION_FAILED", `${field}: ${TIMESTAMP_RULE}`, { errors: [{ field, message: TIMESTAMP_RULE }] });
  return ms;
}
