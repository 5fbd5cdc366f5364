// The usage timeline: requests per minute, hour or day from GET /v1/usage, on a real time axis
// (a slot for every bucket, empty ones included), stacked by outcome code, with a y-axis, a
// legend, totals, and the same numbers as a table for screen readers and copying.
import { api, query } from "../lib/api.js";
import { append, h, svg, uid } from "../lib/dom.js";
import { num } from "../lib/format.js";
import { errorState, loading } from "./states.js";

export const RANGES = {
  "1h": { label: "Last hour", bucket: "minute", ms: 60_000, count: 60, per: "minute" },
  "24h": { label: "Last 24 hours", bucket: "hour", ms: 3_600_000, count: 24, per: "hour" },
  "30d": { label: "Last 30 days", bucket: "day", ms: 86_400_000, count: 30, per: "day" },
};

/** Outcome codes in stacking order (bottom first), with the words for them. */
export const OUTCOMES = [
  ["VALID", "Valid"],
  ["RATE_LIMITED", "Rate limited"],
  ["CONCURRENCY_LIMITED", "Concurrency limited"],
  ["QUOTA_EXCEEDED", "Quota exceeded"],
  ["INSUFFICIENT_SCOPE", "Missing scope"],
  ["ENVIRONMENT_MISMATCH", "Wrong environment"],
  ["IP_NOT_ALLOWED", "Address not allowed"],
  ["DISABLED", "Disabled"],
  ["REVOKED", "Revoked"],
  ["EXPIRED", "Expired"],
  ["NOT_FOUND", "Unknown key"],
  ["MALFORMED", "Malformed key"],
  ["MISSING", "No key"],
];
const OUTCOME_LABEL = new Map(OUTCOMES);
const ORDER = new Map(OUTCOMES.map(([code], i) => [code, i]));
const outcomeLabel = (code) => OUTCOME_LABEL.get(code) ?? code;

const ROW_LIMIT = 10_000;

/** The bucket starts of a range ending with the bucket that holds `now` (epoch-aligned, as the server buckets). */
export function bucketStarts(range, now = Date.now()) {
  const last = now - (now % range.ms);
  return Array.from({ length: range.count }, (_, i) => last - (range.count - 1 - i) * range.ms);
}

/** A round axis maximum at or above `max`: 1, 2, 5 × 10^n. */
function niceMax(max) {
  if (max <= 4) return 4;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= max) return step * power;
  return 10 * power;
}

const TIME = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const DAY = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
/** Day buckets are UTC days, as the server counts them. */
const UTC_DAY = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", timeZone: "UTC" });
const DAY_TIME = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });

function slotLabel(range, start) {
  if (range.bucket === "day") return `${UTC_DAY.format(start)} (UTC)`;
  return range.bucket === "hour" ? DAY_TIME.format(start) : TIME.format(start);
}

/** Which slots get an x-axis label: every 10 minutes, every 3 hours (with the date at midnight), every 5 days. */
function tickLabel(range, start, index) {
  const d = new Date(start);
  if (range.bucket === "minute") return d.getMinutes() % 10 === 0 ? TIME.format(d) : null;
  if (range.bucket === "hour") {
    if (d.getHours() === 0) return DAY.format(d);
    return d.getHours() % 3 === 0 ? TIME.format(d) : null;
  }
  return index % 5 === 0 || index === range.count - 1 ? UTC_DAY.format(d) : null;
}

/** Sums rows into {start → {outcome → count}} over the range's slots. */
export function aggregate(rows, starts) {
  const slots = new Map(starts.map((s) => [s, new Map()]));
  const totals = new Map();
  for (const row of rows) {
    const start = new Date(row.start).getTime();
    const slot = slots.get(start);
    const count = Number(row.count) || 0;
    if (!slot) continue;
    slot.set(row.outcome, (slot.get(row.outcome) ?? 0) + count);
    totals.set(row.outcome, (totals.get(row.outcome) ?? 0) + count);
  }
  return { slots, totals };
}

function drawChart(range, starts, slots, title) {
  const width = 960;
  const height = 260;
  const left = 52;
  const bottom = 26;
  const top = 8;
  const plotH = height - bottom - top;
  const plotW = width - left - 8;
  const slotW = plotW / starts.length;
  const barW = Math.max(1, slotW * 0.78);
  const sums = starts.map((s) => [...slots.get(s).values()].reduce((a, b) => a + b, 0));
  const highest = Math.max(0, ...sums);
  const max = niceMax(highest);
  const y = (value) => top + plotH - (value / max) * plotH;
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `${title}: ${num(sums.reduce((a, b) => a + b, 0))} requests, at most ${num(highest)} in one ${range.per}`,
    class: "timeline",
  });
  for (const tick of [0, max / 2, max]) {
    chart.append(
      svg("line", { x1: left, x2: width - 8, y1: y(tick), y2: y(tick), class: tick === 0 ? "axis" : "grid" }),
      svg("text", { x: left - 6, y: y(tick) + 4, "text-anchor": "end", class: "tick" }, num(tick)),
    );
  }
  starts.forEach((start, i) => {
    const group = svg("g", { class: "bucket", "data-start": new Date(start).toISOString(), "data-total": sums[i] });
    const x = left + i * slotW + (slotW - barW) / 2;
    let base = 0;
    const counts = [...slots.get(start).entries()].sort((a, b) => (ORDER.get(a[0]) ?? 99) - (ORDER.get(b[0]) ?? 99));
    for (const [outcome, count] of counts) {
      if (count <= 0) continue;
      const y0 = y(base);
      const y1 = y(base + count);
      group.append(
        svg(
          "rect",
          { x: x.toFixed(1), y: y1.toFixed(1), width: barW.toFixed(1), height: Math.max(0.5, y0 - y1).toFixed(1), class: `o-${outcome}` },
          svg("title", {}, `${slotLabel(range, start)}: ${num(count)} ${outcomeLabel(outcome).toLowerCase()}`),
        ),
      );
      base += count;
    }
    chart.append(group);
    const label = tickLabel(range, start, i);
    if (label) {
      const cx = left + i * slotW + slotW / 2;
      chart.append(
        svg("line", { x1: cx, x2: cx, y1: top + plotH, y2: top + plotH + 4, class: "axis" }),
        svg("text", { x: cx, y: height - 6, "text-anchor": "middle", class: "tick" }, label),
      );
    }
  });
  return chart;
}

/**
 * A usage timeline with range buttons. `params`: {key_id} for one key, {owner: "user:…"} for an
 * owner, {} for the whole deployment (admins). `initial`: "1h", "24h" or "30d".
 */
export function usageTimeline({ params = {}, title = "Requests", initial = "24h" } = {}) {
  const box = h("div", { class: "chart" });
  const body = h("div", { class: "chart-body", "aria-live": "polite" });
  let current = initial;
  const buttons = Object.entries(RANGES).map(([id, range]) =>
    h(
      "button",
      {
        type: "button",
        class: "segment",
        "data-range": id,
        "aria-pressed": id === current ? "true" : "false",
        onclick: () => {
          current = id;
          for (const b of buttons) b.setAttribute("aria-pressed", b.dataset.range === id ? "true" : "false");
          void draw();
        },
      },
      range.label,
    ),
  );
  const groupId = uid("range");
  box.append(
    h(
      "div",
      { class: "segments", role: "group", "aria-labelledby": groupId },
      h("span", { id: groupId, class: "sr-only" }, "Time range"),
      buttons,
    ),
    body,
  );
  let generation = 0;
  const draw = async () => {
    const mine = ++generation;
    const range = RANGES[current];
    body.setAttribute("aria-busy", "true");
    body.replaceChildren(loading("Loading usage…"));
    const starts = bucketStarts(range);
    try {
      const usage = await api(
        "GET",
        `/v1/usage${query({ ...params, bucket: range.bucket, group_by: "outcome", since: new Date(starts[0]).toISOString(), limit: ROW_LIMIT })}`,
      );
      if (mine !== generation) return;
      const rows = Array.isArray(usage?.data) ? usage.data : [];
      const { slots, totals } = aggregate(rows, starts);
      const all = [...totals.values()].reduce((a, b) => a + b, 0);
      const valid = totals.get("VALID") ?? 0;
      const heading = `${title}, ${range.label.toLowerCase()}, per ${range.per}`;
      const summary = h(
        "p",
        { class: "totals" },
        h("strong", {}, `${range.label}: ${num(all)} request${all === 1 ? "" : "s"}`),
        all > 0 ? ` — ${num(valid)} valid, ${num(all - valid)} refused` : "",
      );
      if (all === 0) {
        body.replaceChildren(
          summary,
          h("p", { class: "muted", "data-empty": "usage" }, `No requests in the ${range.label.toLowerCase()}.`),
        );
        return;
      }
      const present = OUTCOMES.filter(([code]) => totals.has(code));
      for (const code of totals.keys()) if (!ORDER.has(code)) present.push([code, code]);
      const legend = h(
        "ul",
        { class: "legend", "aria-label": "Outcomes" },
        present.map(([code, label]) =>
          h(
            "li",
            { "data-outcome": code },
            h("span", { class: `swatch o-${code}`, "aria-hidden": "true" }),
            `${label} `,
            h("strong", {}, num(totals.get(code))),
          ),
        ),
      );
      const tableRows = starts.filter((s) => slots.get(s).size > 0);
      const table = h(
        "details",
        { class: "chart-table" },
        h("summary", {}, "Show as a table"),
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            {},
            h(
              "thead",
              {},
              h(
                "tr",
                {},
                h("th", { scope: "col" }, range.per === "day" ? "Day" : "Starting"),
                present.map(([, label]) => h("th", { scope: "col" }, label)),
              ),
            ),
            h(
              "tbody",
              {},
              tableRows.map((s) =>
                h(
                  "tr",
                  {},
                  h("th", { scope: "row" }, slotLabel(range, s)),
                  present.map(([code]) => h("td", {}, num(slots.get(s).get(code) ?? 0))),
                ),
              ),
            ),
          ),
        ),
      );
      body.replaceChildren();
      append(body, [
        summary,
        drawChart(range, starts, slots, heading),
        legend,
        rows.length >= ROW_LIMIT
          ? h("p", { class: "warn-text" }, "Only the first 10,000 rows were read: totals may be low. Choose a shorter range.")
          : null,
        table,
      ]);
    } catch (error) {
      if (mine !== generation) return;
      body.replaceChildren(errorState(error, () => void draw()));
    } finally {
      if (mine === generation) body.removeAttribute("aria-busy");
    }
  };
  void draw();
  return box;
}
