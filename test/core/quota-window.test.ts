import { describe, expect, it } from "vitest";
import { quotaRetryAfterSeconds, quotaWindow } from "../../src/core/quota-window.js";

const at = (iso: string) => Date.parse(iso);

describe("quota windows", () => {
  it("a daily quota resets at the UTC day boundary", () => {
    const w = quotaWindow({ limit: 100, period: "day" }, at("2026-11-23T23:59:30Z"), 0);
    expect(w).toEqual({ name: "d:2026-11-23", allowance: 100, resetsAt: at("2026-11-24T00:00:00Z") });
    expect(quotaRetryAfterSeconds(w, at("2026-11-23T23:59:30Z"))).toBe(30);
  });

  it("a monthly quota resets on the first of the next month, also across a year", () => {
    expect(quotaWindow({ limit: 5, period: "month" }, at("2026-12-31T12:00:00Z"), 0)).toEqual({
      name: "m:2026-12",
      allowance: 5,
      resetsAt: at("2027-01-01T00:00:00Z"),
    });
  });

  it("remaining uses without refill never come back", () => {
    const w = quotaWindow({ remaining: 7 }, at("2026-11-23T00:00:00Z"), 0);
    expect(w).toEqual({ name: "total", allowance: 7, resetsAt: null });
    expect(quotaRetryAfterSeconds(w, 0)).toBe(86_400);
  });

  it("with refill, the creation window allows `remaining` and later windows `amount`", () => {
    const spec = { remaining: 3, refill: { amount: 10, every_seconds: 3_600 } };
    const created = at("2026-11-23T10:15:00Z");
    expect(quotaWindow(spec, at("2026-11-23T10:59:00Z"), created)).toMatchObject({ allowance: 3, resetsAt: at("2026-11-23T11:00:00Z") });
    const later = quotaWindow(spec, at("2026-11-23T11:00:00Z"), created);
    expect(later.allowance).toBe(10);
    expect(later.name).not.toBe(quotaWindow(spec, at("2026-11-23T10:59:00Z"), created).name);
  });
});
