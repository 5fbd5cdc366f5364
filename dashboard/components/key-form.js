// The key form, for creating a key and for changing one: every field the API has (name,
// environment, scopes, expiry, rate limit, concurrency, quota, allowed addresses, metadata and,
// for administrators, the delegation ceiling), checked here the way the server checks them, with
// what a member may and may not change said in the form (docs/authority.md).
import { api, isAdmin, state } from "../lib/api.js";
import { append, h, uid } from "../lib/dom.js";
import { DAY_MS, fmtTime, MANAGEMENT_SCOPES, num, powerReasons, relative } from "../lib/format.js";
import { confirmDialog } from "./dialog.js";
import { busy, field, formError, formErrors } from "./form.js";

const ENVIRONMENTS = [
  ["sandbox", "Sandbox"],
  ["production", "Production"],
];

const EXPIRY_PRESETS = [
  ["7", "7 days"],
  ["30", "30 days"],
  ["60", "60 days"],
  ["90", "90 days"],
  ["custom", "Custom date and time"],
  ["never", "Never"],
];

const PER = [
  ["1", "second"],
  ["60", "minute"],
  ["3600", "hour"],
  ["86400", "day"],
];

const SCOPE = /^([a-z0-9_.-]+|\*)(:([a-z0-9_.-]+|\*))*$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}(\/(3[0-2]|[12]?\d))?$/;
const IPV6 = /^[0-9a-fA-F:.]*:[0-9a-fA-F:.]*(\/(12[0-8]|1[01]\d|\d?\d))?$/;

/** A whole number from a text box: null when empty, NaN when not a whole number. */
const int = (input) => {
  const text = input.value.trim().replaceAll(/[\s,_]/g, "");
  if (text === "") return null;
  return /^\d+$/.test(text) ? Number(text) : Number.NaN;
};

const splitList = (text) =>
  text
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);

/** `YYYY-MM-DDTHH:MM` in local time, for datetime-local inputs. */
const localInput = (ms) => {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
};

const numberInput = (name, attrs = {}) =>
  h("input", { name, inputmode: "numeric", autocomplete: "off", pattern: "[0-9 ,_]*", size: 10, ...attrs });

/** Scopes: checkboxes when the allowed set is a fixed list, else a comma-separated text box. */
function scopeControl(allowed, current) {
  if (allowed.some((s) => s.includes("*"))) {
    const input = h("input", { name: "scopes", value: current ? current.join(", ") : "read", autocomplete: "off", spellcheck: "false" });
    return {
      field: field({
        label: "Scopes",
        control: input,
        hint:
          allowed.length === 1 && allowed[0] === "*"
            ? "Comma-separated, like orders:read, orders:write. Parts are lower-case letters, digits, _ . -, joined by colons; * alone is every scope."
            : `Comma-separated, within: ${allowed.join(", ")}.`,
      }),
      read: () => splitList(input.value),
    };
  }
  const legendId = uid("legend");
  const boxes = allowed.map((scope) =>
    h("input", { type: "checkbox", name: "scope", value: scope, checked: current ? current.includes(scope) : scope === allowed[0] }),
  );
  // A key may hold a scope outside today's allowed list (set by an administrator): it is kept, shown and fixed.
  const kept = current ? current.filter((s) => !allowed.includes(s)) : [];
  const group = h(
    "fieldset",
    { class: "checks", "aria-labelledby": legendId },
    h("legend", { id: legendId }, "Scopes"),
    boxes.map((box) => h("label", {}, box, box.value)),
    kept.map((scope) =>
      h("label", {}, h("input", { type: "checkbox", checked: true, disabled: true }), `${scope} (set by an administrator)`),
    ),
  );
  return {
    field: field({ control: group, group: true, hint: "Only the scopes you may give out are offered." }),
    read: () => [...kept, ...boxes.filter((b) => b.checked).map((b) => b.value)],
  };
}

/** The expiry: presets, a custom date and time, or never (with a warning). */
function expiryControl(key, mode) {
  const name = uid("expiry");
  const options =
    mode === "edit"
      ? [
          ["keep", key.expires_at ? `Keep: ${fmtTime(key.expires_at)} (${relative(key.expires_at)})` : "Keep: never expires"],
          ...EXPIRY_PRESETS,
        ]
      : EXPIRY_PRESETS;
  const initial = mode === "edit" ? "keep" : "90";
  const radios = options.map(([value]) => h("input", { type: "radio", name, value, checked: value === initial }));
  const custom = h("input", {
    type: "datetime-local",
    name: "expires_custom",
    min: localInput(Date.now() + 60_000),
    value: key?.expires_at ? localInput(new Date(key.expires_at).getTime()) : localInput(Date.now() + 30 * DAY_MS),
  });
  const customField = field({ label: "Expiry date and time", control: custom, hint: "In your local time.", className: "field nested" });
  const warning = h(
    "p",
    { class: "warning", role: "note" },
    "A key that never expires keeps working until someone revokes it. Prefer an expiry and rotate the key before it ends.",
  );
  const legendId = uid("legend");
  const group = h(
    "fieldset",
    { class: "radios", "aria-labelledby": legendId },
    h("legend", { id: legendId }, mode === "edit" ? "Expiry" : "Expires after"),
    options.map(([, label], i) => h("label", {}, radios[i], label)),
  );
  const chosen = () => radios.find((r) => r.checked)?.value ?? initial;
  const sync = () => {
    customField.node.hidden = chosen() !== "custom";
    warning.hidden = chosen() !== "never";
  };
  for (const r of radios) r.addEventListener("change", sync);
  sync();
  const f = field({ control: group, group: true, extra: [customField.node, warning] });
  return {
    field: f,
    customField,
    /** undefined: unchanged (edit); null: never; else an ISO time. Throws a message for a bad custom time. */
    read() {
      const value = chosen();
      if (value === "keep") return undefined;
      if (value === "never") return null;
      if (value === "custom") {
        if (!custom.value) throw { field: "expires_custom", message: "Choose a date and time." };
        const at = new Date(custom.value).getTime();
        if (!Number.isFinite(at)) throw { field: "expires_custom", message: "Choose a date and time." };
        if (at <= Date.now()) throw { field: "expires_custom", message: "Choose a time in the future." };
        return new Date(at).toISOString();
      }
      return new Date(Date.now() + Number(value) * DAY_MS).toISOString();
    },
  };
}

/**
 * Rate limit, concurrency and quota fields (a key's, or the limits an organization's keys share:
 * `maxConcurrency` 100,000 there). Returns {fields, read(errors), grids()}.
 */
export function limitControls(key, { maxConcurrency = 10_000 } = {}) {
  const requests = numberInput("rate_requests", { value: key?.rate_limit?.requests ?? "" });
  const perOptions = [...PER];
  if (key?.rate_limit && !PER.some(([s]) => Number(s) === key.rate_limit.per_seconds))
    perOptions.push([String(key.rate_limit.per_seconds), `${num(key.rate_limit.per_seconds)} seconds`]);
  const per = h(
    "select",
    { name: "rate_per" },
    perOptions.map(([value, label]) => h("option", { value, selected: Number(value) === (key?.rate_limit?.per_seconds ?? 1) }, label)),
  );
  const burst = numberInput("rate_burst", { value: key?.rate_limit?.burst ?? "" });
  const concurrency = numberInput("concurrency", { value: key?.concurrency ?? "" });
  const quotaKind = h(
    "select",
    { name: "quota_kind" },
    [
      ["none", "No quota"],
      ["period", "A number of requests per day or month"],
      ["uses", "A fixed number of uses"],
    ].map(([value, label]) =>
      h("option", { value, selected: value === (key?.quota ? ("limit" in key.quota ? "period" : "uses") : "none") }, label),
    ),
  );
  const quotaLimit = numberInput("quota_limit", { value: key?.quota && "limit" in key.quota ? key.quota.limit : "" });
  const quotaPeriod = h(
    "select",
    { name: "quota_period" },
    ["day", "month"].map((p) =>
      h("option", { value: p, selected: key?.quota && "limit" in key.quota && key.quota.period === p }, `per ${p}`),
    ),
  );
  const quotaRemaining = numberInput("quota_remaining", { value: key?.quota && "remaining" in key.quota ? key.quota.remaining : "" });
  const refillAmount = numberInput("quota_refill_amount", { value: key?.quota?.refill?.amount ?? "" });
  const refillEvery = numberInput("quota_refill_every", { value: key?.quota?.refill?.every_seconds ?? "" });

  const fields = {
    "rate_limit.requests": field({ label: "Rate limit: requests", control: requests, hint: "Empty for no rate limit. 1 to 1,000,000." }),
    "rate_limit.per_seconds": field({ label: "Rate limit: per", control: per }),
    "rate_limit.burst": field({ label: "Burst (optional)", control: burst, hint: "Requests allowed at once above the steady rate." }),
    concurrency: field({
      label: "Concurrency",
      control: concurrency,
      hint: `Requests in flight at once. Empty for no limit; 1 to ${num(maxConcurrency)}.`,
    }),
    quota: field({ label: "Quota", control: quotaKind }),
    "quota.limit": field({ label: "Quota: requests", control: quotaLimit, className: "field nested" }),
    "quota.period": field({ label: "Quota: period", control: quotaPeriod, className: "field nested" }),
    "quota.remaining": field({ label: "Uses left", control: quotaRemaining, className: "field nested" }),
    "quota.refill.amount": field({ label: "Refill: uses (optional)", control: refillAmount, className: "field nested" }),
    "quota.refill.every_seconds": field({
      label: "Refill: every (seconds)",
      control: refillEvery,
      hint: "86400 is a day; at most 31,536,000 (a year).",
      className: "field nested",
    }),
  };
  const syncQuota = () => {
    const kind = quotaKind.value;
    fields["quota.limit"].node.hidden = kind !== "period";
    fields["quota.period"].node.hidden = kind !== "period";
    fields["quota.remaining"].node.hidden = kind !== "uses";
    fields["quota.refill.amount"].node.hidden = kind !== "uses";
    fields["quota.refill.every_seconds"].node.hidden = kind !== "uses";
  };
  quotaKind.addEventListener("change", syncQuota);
  syncQuota();

  const read = (errors) => {
    const out = {};
    const r = int(requests);
    if (r === null) {
      if (int(burst) !== null) errors.push({ field: "rate_limit.requests", message: "Set the rate first: a burst needs a rate." });
      out.rate_limit = null;
    } else if (Number.isNaN(r) || r < 1 || r > 1_000_000)
      errors.push({ field: "rate_limit.requests", message: "Enter a whole number from 1 to 1,000,000." });
    else {
      out.rate_limit = { requests: r, per_seconds: Number(per.value) };
      const b = int(burst);
      if (b !== null) {
        if (Number.isNaN(b) || b < 1 || b > 1_000_000)
          errors.push({ field: "rate_limit.burst", message: "Enter a whole number from 1 to 1,000,000." });
        else out.rate_limit.burst = b;
      }
    }
    const c = int(concurrency);
    if (c !== null && (Number.isNaN(c) || c < 1 || c > maxConcurrency))
      errors.push({ field: "concurrency", message: `Enter a whole number from 1 to ${num(maxConcurrency)}.` });
    else out.concurrency = c;
    if (quotaKind.value === "none") out.quota = null;
    else if (quotaKind.value === "period") {
      const l = int(quotaLimit);
      if (l === null || Number.isNaN(l) || l < 1 || l > 1_000_000_000_000)
        errors.push({ field: "quota.limit", message: "Enter how many requests: a whole number of 1 or more." });
      else out.quota = { limit: l, period: quotaPeriod.value };
    } else {
      const left = int(quotaRemaining);
      if (left === null || Number.isNaN(left) || left > 1_000_000_000_000)
        errors.push({ field: "quota.remaining", message: "Enter how many uses: a whole number of 0 or more." });
      else {
        out.quota = { remaining: left };
        const amount = int(refillAmount);
        const every = int(refillEvery);
        if (amount !== null || every !== null) {
          if (amount === null || Number.isNaN(amount) || amount < 1 || amount > 1_000_000_000)
            errors.push({
              field: "quota.refill.amount",
              message: "Enter a whole number from 1 to 1,000,000,000, or empty both refill boxes.",
            });
          if (every === null || Number.isNaN(every) || every < 1 || every > 31_536_000)
            errors.push({ field: "quota.refill.every_seconds", message: "Enter a number of seconds from 1 to 31,536,000." });
          if (!errors.some((e) => e.field.startsWith("quota.refill"))) out.quota.refill = { amount, every_seconds: every };
        }
      }
    }
    return out;
  };
  /** The fields laid out: rate and concurrency on one row, the quota on the next. */
  const grids = () => [
    h(
      "div",
      { class: "form-grid" },
      fields["rate_limit.requests"].node,
      fields["rate_limit.per_seconds"].node,
      fields["rate_limit.burst"].node,
      fields.concurrency.node,
    ),
    h(
      "div",
      { class: "form-grid" },
      fields.quota.node,
      fields["quota.limit"].node,
      fields["quota.period"].node,
      fields["quota.remaining"].node,
      fields["quota.refill.amount"].node,
      fields["quota.refill.every_seconds"].node,
    ),
  ];
  return { fields, read, grids };
}

function cidrControl(key) {
  const input = h(
    "textarea",
    { name: "allowed_cidrs", rows: 3, spellcheck: "false", autocomplete: "off", placeholder: "203.0.113.0/24\n2001:db8::/32" },
    key ? key.allowed_cidrs.join("\n") : "",
  );
  const f = field({
    label: "Allowed addresses",
    control: input,
    hint: "One IP address or CIDR range per line; the key works only from these. Empty: from anywhere. At most 64.",
  });
  const read = (errors) => {
    const list = splitList(input.value);
    if (list.length > 64) errors.push({ field: "allowed_cidrs", message: `At most 64 addresses or ranges (there are ${list.length}).` });
    const bad = list.findIndex((c) => !IPV4.test(c) && !IPV6.test(c));
    if (bad >= 0)
      errors.push({
        field: "allowed_cidrs",
        message: `“${list[bad]}” is not an IP address or range (like 203.0.113.7, 203.0.113.0/24 or 2001:db8::/32).`,
      });
    return list;
  };
  return { field: f, read };
}

function metadataControl(key) {
  const input = h(
    "textarea",
    { name: "metadata", rows: 3, spellcheck: "false", autocomplete: "off", placeholder: '{"team": "checkout"}' },
    key && Object.keys(key.metadata).length > 0 ? JSON.stringify(key.metadata, null, 2) : "",
  );
  const f = field({
    label: "Metadata",
    control: input,
    hint: 'A JSON object handed to your services with the key, like {"team": "checkout"}. Not secret: never put credentials here.',
  });
  const read = (errors) => {
    const text = input.value.trim();
    if (text === "") return {};
    let value;
    try {
      value = JSON.parse(text);
    } catch {
      errors.push({ field: "metadata", message: "This is not valid JSON: check the quotes, commas and braces." });
      return undefined;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      errors.push({ field: "metadata", message: "Use a JSON object: names and values inside { }." });
      return undefined;
    }
    if (Object.keys(value).length > 64) errors.push({ field: "metadata", message: "At most 64 top-level names." });
    return value;
  };
  return { field: f, read };
}

/** The delegation ceiling (administrators): what a key with keys:write may give out. */
function ceilingControl(key) {
  const scopes = h("input", {
    name: "grantable_scopes",
    value: key?.grantable_scopes ? key.grantable_scopes.join(", ") : "",
    autocomplete: "off",
    spellcheck: "false",
  });
  const boxes = ENVIRONMENTS.map(([value, label]) =>
    h("label", {}, h("input", { type: "checkbox", value, checked: key?.grantable_environments?.includes(value) ?? false }), label),
  );
  const legendId = uid("legend");
  const group = h(
    "fieldset",
    { class: "checks", "aria-labelledby": legendId },
    h("legend", { id: legendId }, "It may mint keys for"),
    boxes,
  );
  const fields = {
    grantable_scopes: field({
      label: "Scopes it may grant",
      control: scopes,
      hint: "Comma-separated. Empty with no box ticked: no ceiling (its own environment and non-management scopes).",
    }),
    grantable_environments: field({ control: group, group: true }),
  };
  const read = () => {
    const list = splitList(scopes.value);
    const environments = boxes
      .map((l) => l.querySelector("input"))
      .filter((b) => b.checked)
      .map((b) => b.value);
    if (list.length === 0 && environments.length === 0) return { grantable_scopes: null, grantable_environments: null };
    return { grantable_scopes: list, grantable_environments: environments.length > 0 ? environments : null };
  };
  return {
    fields,
    read,
    node: h(
      "details",
      { class: "ceiling" },
      h("summary", {}, "Delegation ceiling (keys that mint keys)"),
      fields.grantable_scopes.node,
      fields.grantable_environments.node,
    ),
  };
}

/** What a member may and may not do with the form in front of them (docs/authority.md). */
function memberRules(mode) {
  if (isAdmin()) return null;
  const environments = state.session.allowed_environments ?? ["sandbox"];
  return h(
    "div",
    { class: "rules", role: "note" },
    h("p", {}, h("strong", {}, "What you may change as a member")),
    h(
      "ul",
      {},
      mode === "create"
        ? [
            h(
              "li",
              {},
              environments.includes("production")
                ? "Sandbox and production keys."
                : "Sandbox keys; a production key is requested from a sandbox key and approved by an administrator.",
            ),
            h("li", {}, `Scopes from: ${state.session.allowed_scopes.join(", ")}.`),
            h("li", {}, "Any limits, addresses, expiry and metadata on your own keys."),
          ]
        : [
            h(
              "li",
              {},
              "Tighten any control: add or narrow addresses, lower or add a rate limit, concurrency limit or quota, bring the expiry forward.",
            ),
            h(
              "li",
              {},
              "Loosen a control only if you set it yourself: one an administrator set stays (the server refuses and says which).",
            ),
            h("li", {}, "Not a production key that is still awaiting pickup."),
          ],
    ),
  );
}

/**
 * The form. mode "create": `owner()` gives the owner, `extra` are fields shown first (the
 * application id), `extraErrors()` checks them; `onDone(created)` gets the API's answer with the
 * plaintext. mode "edit": `key` is the key; `onDone(updated)`.
 */
export function keyForm({ mode, key = null, owner = null, extra = [], extraErrors = () => [], onDone, label }) {
  const session = state.session;
  const summary = formError();
  summary.tabIndex = -1;
  const name = h("input", { name: "name", required: true, maxlength: 100, value: key?.name ?? "", autocomplete: "off" });
  const fields = { name: field({ label: "Name", control: name, hint: "Up to 100 characters, without < or >. Say what uses the key." }) };
  let environment = null;
  let productionHint = null;
  if (mode === "create") {
    const allowed = session.allowed_environments ?? ["sandbox"];
    environment = h(
      "select",
      { name: "environment" },
      ENVIRONMENTS.filter(([v]) => allowed.includes(v)).map(([v, l]) => h("option", { value: v }, l)),
    );
    fields.environment = field({ label: "Environment", control: environment });
    if (!allowed.includes("production"))
      productionHint = h("p", { class: "muted" }, "Production keys are requested from a sandbox key and approved by an administrator.");
  }
  const scopes = scopeControl(session.allowed_scopes, key?.scopes ?? null);
  fields.scopes = scopes.field;
  const expiry = expiryControl(key, mode);
  fields.expires_at = expiry.field;
  fields.expires_custom = expiry.customField;
  const limits = limitControls(key);
  Object.assign(fields, limits.fields);
  const cidrs = cidrControl(key);
  fields.allowed_cidrs = cidrs.field;
  const metadata = metadataControl(key);
  fields.metadata = metadata.field;
  const ceiling = isAdmin() ? ceilingControl(key) : null;
  if (ceiling) Object.assign(fields, ceiling.fields);
  for (const f of extra) fields[f.name] = f.field;
  const errors = formErrors(fields, summary);
  const submit = h("button", { type: "submit" }, mode === "create" ? "Create key" : "Save changes");

  /** The body to send, or null after showing what is wrong. */
  const read = () => {
    const problems = [...extraErrors()];
    const body = {};
    if (name.value.trim() === "") problems.push({ field: "name", message: "Give the key a name." });
    else if (/[<>]/.test(name.value)) problems.push({ field: "name", message: "Use letters, digits and punctuation, without < or >." });
    else body.name = name.value.trim();
    const chosen = scopes.read();
    const badScope = chosen.find((s) => !SCOPE.test(s) || s.length > 128);
    if (badScope !== undefined)
      problems.push({
        field: "scopes",
        message: `“${badScope}” is not a scope name: use lower-case letters, digits, _ . - in parts joined by colons, like orders:read.`,
      });
    else body.scopes = chosen;
    try {
      const at = expiry.read();
      if (at !== undefined) body.expires_at = at;
    } catch (problem) {
      problems.push(problem);
    }
    Object.assign(body, limits.read(problems));
    body.allowed_cidrs = cidrs.read(problems);
    const meta = metadata.read(problems);
    if (meta !== undefined) body.metadata = meta;
    if (ceiling) Object.assign(body, ceiling.read());
    if (problems.length > 0) {
      errors.show(problems);
      return null;
    }
    if (environment) body.environment = environment.value;
    return body;
  };

  /** Only what changed, for PATCH. */
  const changes = (body) => {
    const out = {};
    const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
    for (const [field, value] of Object.entries(body)) {
      if (field === "metadata" ? !same(value, key.metadata) : !same(value, key[field])) out[field] = value;
    }
    if (same([...body.scopes].sort(), [...key.scopes].sort())) delete out.scopes;
    return out;
  };

  const form = h("form", {
    class: "card key-form",
    "aria-label": label ?? (mode === "create" ? "Create a key" : "Edit this key"),
    novalidate: true,
    onsubmit: (event) => {
      event.preventDefault();
      void busy(submit, async () => {
        errors.clear();
        const body = read();
        if (!body) return;
        try {
          if (mode === "create") {
            const reasons = powerReasons(body.scopes, body.expires_at ?? null);
            if (reasons.length > 0) {
              const ok = await confirmDialog({
                title: "Create a powerful key?",
                text: `“${body.name}” will have ${reasons.join(" and ")}.`,
                impact: [
                  ...(reasons.some((r) => r.startsWith("management") || r.startsWith("every"))
                    ? ["Whoever holds it can manage keys (and more) through the API, not just call your services."]
                    : []),
                  ...(body.expires_at ? [] : ["It keeps working until someone revokes it."]),
                  "Keep it out of code, chat and tickets; prefer a narrower key when one will do.",
                ],
                confirm: "Create powerful key",
              });
              if (!ok) return;
            }
            const created = await api("POST", "/v1/keys", { owner: owner(), ...body });
            form.reset();
            resetDynamic();
            onDone(created);
          } else {
            const patch = changes(body);
            if (Object.keys(patch).length === 0) {
              summary.textContent = "Nothing changed.";
              return;
            }
            const updated = await api("PATCH", `/v1/keys/${encodeURIComponent(key.id)}`, patch);
            onDone(updated, Object.keys(patch));
          }
        } catch (error) {
          errors.showError(error);
        }
      });
    },
  });
  const resetDynamic = () => {
    for (const input of form.querySelectorAll("input, select, textarea")) input.dispatchEvent(new Event("change"));
  };
  const management = !isAdmin()
    ? null
    : h("p", { class: "hint" }, `Management scopes (${MANAGEMENT_SCOPES.join(", ")}) and * make a key powerful: creating one asks first.`);
  append(form, [
    mode === "edit" ? h("h2", {}, "Edit settings") : null,
    memberRules(mode),
    h(
      "div",
      { class: "form-grid" },
      extra.map((f) => f.field.node),
      fields.name.node,
      fields.environment?.node,
      productionHint,
    ),
    h("div", { class: "form-grid" }, fields.scopes.node, fields.expires_at.node),
    management,
    h(
      "details",
      { class: "more", open: mode === "edit" ? true : null },
      h("summary", {}, "Limits, allowed addresses and metadata"),
      ...limits.grids(),
      h("div", { class: "form-grid wide" }, fields.allowed_cidrs.node, fields.metadata.node),
      ceiling?.node,
    ),
    summary,
    h("div", { class: "buttons-row" }, submit),
  ]);
  return form;
}
