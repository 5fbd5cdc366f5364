// Keyward dashboard: one ES module, no framework, no build step. It calls the same HTTP API as
// every other client. Every piece of text goes into the page through textContent (never
// innerHTML), so names and metadata holding markup render as text. A plaintext key lives only
// in the DOM of the panel that shows it, once: never in a URL, web storage or a log.

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const toastBox = document.getElementById("toast");

/** The session as the server describes it; the CSRF token is kept in memory only. */
let session = null;

// ------------------------------------------------------------------ DOM helpers

/** Builds an element; string children become text nodes. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Number.POSITIVE_INFINITY)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  append(el, children);
  return el;
}

function page(title, ...children) {
  document.title = `${title} · Keyward`;
  main.replaceChildren(h("h1", {}, title), ...children);
}

function toast(text) {
  toastBox.textContent = text;
  toastBox.classList.add("show");
  setTimeout(() => toastBox.classList.remove("show"), 2500);
}

const fmt = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
/** What a key request asks for, in one line: scopes, then the limits that come with them. */
function askedSummary(asked) {
  if (!asked) return "—";
  const parts = [asked.scopes.length > 0 ? asked.scopes.join(", ") : "no scopes"];
  if (asked.rate_limit) parts.push(`${asked.rate_limit.requests}/${asked.rate_limit.per_seconds}s`);
  if (asked.concurrency) parts.push(`${asked.concurrency} in flight`);
  if (asked.quota) parts.push("limit" in asked.quota ? `${asked.quota.limit}/${asked.quota.period}` : `${asked.quota.remaining} uses`);
  if (asked.allowed_cidrs.length > 0) parts.push(asked.allowed_cidrs.join(" "));
  return parts.join(" · ");
}

const badge = (status) => h("span", { class: `badge ${status}` }, status.replace("_", " "));

function table(headers, rows, empty) {
  if (rows.length === 0) return h("p", { class: "muted" }, empty);
  return h(
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
          headers.map((x) => h("th", { scope: "col" }, x)),
        ),
      ),
      h("tbody", {}, rows),
    ),
  );
}

/** A modal dialog built on <dialog> (focus trapping and Escape come with it). Resolves to form values, or null when cancelled. */
function ask(title, text, { fields = [], confirm = "Confirm", danger = false } = {}) {
  return new Promise((resolve) => {
    const form = h("form", { method: "dialog" });
    const inputs = fields.map((f) => {
      const input =
        f.options !== undefined
          ? h(
              "select",
              { name: f.name },
              f.options.map(([value, label]) => h("option", { value }, label)),
            )
          : h("input", { name: f.name, required: f.required, maxlength: f.maxlength ?? 500 });
      form.append(h("label", {}, f.label, input));
      return input;
    });
    const dialog = h("dialog", { "aria-labelledby": "dialog-title" });
    const cancel = h("button", { type: "button", class: "secondary", onclick: () => dialog.close("cancel") }, "Cancel");
    form.prepend(h("h2", { id: "dialog-title" }, title), h("p", {}, text));
    form.append(
      h("div", { class: "buttons" }, cancel, h("button", { type: "submit", value: "ok", class: danger ? "danger" : "" }, confirm)),
    );
    dialog.append(form);
    dialog.addEventListener("close", () => {
      const ok = dialog.returnValue === "ok";
      dialog.remove();
      resolve(ok ? Object.fromEntries(inputs.map((i) => [i.name, i.value])) : null);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

// ------------------------------------------------------------------ API

class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code;
  }
}

async function api(method, path, body) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && session) headers["x-csrf-token"] = session.csrf_token;
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    if (response.status === 401 && data?.code === "SESSION_REQUIRED" && path !== "/v1/session") {
      session = null;
      navigate("#/signin");
    }
    throw new ApiError(response.status, data);
  }
  return data;
}

/** Goes to a route, drawing it even when the hash is already there. */
function navigate(hash) {
  if (location.hash === hash) void route();
  else location.hash = hash;
}

function errorLine() {
  return h("p", { class: "error", role: "alert" });
}

/** Runs an action, showing its error in `line` instead of throwing. */
async function attempt(line, action) {
  line.textContent = "";
  try {
    await action();
  } catch (error) {
    line.textContent = error instanceof ApiError ? error.message : "Something went wrong.";
  }
}

// ------------------------------------------------------------------ the one-time secret panel

/**
 * Shows a plaintext key once, with a copy button and a warning. Dismissing it removes the key
 * from the page; nothing else keeps it.
 */
function secretPanel(title, key, onDone) {
  const input = h("input", {
    id: "new-key",
    readonly: true,
    value: key,
    "aria-label": "The new API key",
    spellcheck: "false",
    autocomplete: "off",
  });
  const copy = h(
    "button",
    {
      type: "button",
      onclick: async () => {
        input.select();
        try {
          await navigator.clipboard.writeText(input.value);
        } catch {
          document.execCommand("copy");
        }
        toast("Copied to the clipboard");
      },
    },
    "Copy",
  );
  const panel = h(
    "section",
    { class: "card secret", role: "region", "aria-labelledby": "secret-title" },
    h("h2", { id: "secret-title" }, title),
    h(
      "p",
      {},
      h("strong", {}, "This key is shown only once. "),
      "Copy it now and keep it somewhere safe; Keyward stores only its hash and cannot show it again.",
    ),
    h("div", { class: "row" }, input, copy),
    h(
      "button",
      {
        type: "button",
        class: "secondary",
        onclick: () => {
          input.value = "";
          panel.remove();
          onDone?.();
        },
      },
      "I have stored it",
    ),
  );
  // Keyboard users land on the key itself: Tab then reaches Copy.
  setTimeout(() => {
    input.focus();
    input.select();
  }, 0);
  return panel;
}

// ------------------------------------------------------------------ pages

function renderNav() {
  nav.replaceChildren();
  if (!session) return;
  const current = location.hash.split("/")[1] || "keys";
  const link = (route, label) => h("a", { href: `#/${route}`, "aria-current": current === route ? "page" : false }, label);
  nav.append(link("keys", "My API keys"));
  if (session.user.role === "admin") {
    nav.append(link("applications", "Applications"), link("requests", "Key requests"), link("users", "Users"), link("audit", "Audit log"));
  }
  nav.append(
    h(
      "span",
      { class: "who" },
      `${session.user.email} (${session.user.role}) `,
      h(
        "button",
        {
          type: "button",
          class: "link",
          onclick: async () => {
            await api("DELETE", "/v1/session").catch(() => {});
            session = null;
            navigate("#/signin");
          },
        },
        "Sign out",
      ),
    ),
  );
}

function credentialsForm(submitLabel, onSubmit, extra = []) {
  const line = errorLine();
  const email = h("input", { type: "email", name: "email", required: true, autocomplete: "username", maxlength: 320 });
  const password = h("input", { type: "password", name: "password", required: true, autocomplete: "current-password", maxlength: 256 });
  const form = h(
    "form",
    {
      class: "card narrow",
      onsubmit: (event) => {
        event.preventDefault();
        void attempt(line, () => onSubmit(email.value, password.value));
      },
    },
    ...extra,
    h("label", {}, "Email", email),
    h("label", {}, "Password", password),
    line,
    h("button", { type: "submit" }, submitLabel),
  );
  return form;
}

function signInPage() {
  page(
    "Sign in",
    credentialsForm("Sign in", async (email, password) => {
      session = await api("POST", "/v1/session", { email, password });
      navigate("#/keys");
    }),
  );
}

function setupPage(token) {
  // The token came in the URL fragment (never sent to a server); drop it from the address bar and history.
  history.replaceState(null, "", "#/setup");
  page(
    "Create the first administrator",
    credentialsForm(
      "Create administrator",
      async (email, password) => {
        session = await api("POST", "/v1/setup", { token, email, password });
        navigate("#/keys");
      },
      [h("p", { class: "muted" }, "This link works once. Choose a password of at least 12 characters.")],
    ),
  );
}

const ENVIRONMENTS = [
  ["sandbox", "Sandbox"],
  ["production", "Production"],
];

function scopeInput() {
  const allowed = session.allowed_scopes;
  if (allowed.some((s) => s.includes("*"))) {
    const input = h("input", { name: "scopes", placeholder: "read, write", value: "read" });
    return {
      node: h("label", {}, "Scopes (comma-separated)", input),
      read: () =>
        input.value
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean),
    };
  }
  const boxes = allowed.map((scope) => h("input", { type: "checkbox", name: "scope", value: scope, checked: scope === allowed[0] }));
  return {
    node: h(
      "fieldset",
      {},
      h("legend", {}, "Scopes"),
      boxes.map((box) => h("label", {}, box, box.value)),
    ),
    read: () => boxes.filter((b) => b.checked).map((b) => b.value),
  };
}

/** The create form; `owner` is fixed (me) or read from an input (applications). */
function createKeyForm(ownerOf, onCreated, extraFields = []) {
  const line = errorLine();
  const name = h("input", { name: "name", required: true, maxlength: 100 });
  // Only what the authority model would allow this person (docs/authority.md): members get
  // sandbox keys, and production through a request, unless the operator allows direct ones.
  const allowedEnvironments = session.allowed_environments ?? ["sandbox"];
  const environment = h(
    "select",
    { name: "environment" },
    ENVIRONMENTS.filter(([v]) => allowedEnvironments.includes(v)).map(([v, l]) => h("option", { value: v }, l)),
  );
  const productionHint = allowedEnvironments.includes("production")
    ? null
    : h("p", { class: "muted" }, "Production keys are requested from a sandbox key and approved by an administrator.");
  const expires = h("input", { type: "date", name: "expires" });
  const scopes = scopeInput();
  return h(
    "form",
    {
      class: "card grid",
      "aria-label": "Create a key",
      onsubmit: (event) => {
        event.preventDefault();
        void attempt(line, async () => {
          const body = { owner: ownerOf(), name: name.value, environment: environment.value, scopes: scopes.read() };
          if (expires.value) body.expires_at = new Date(`${expires.value}T23:59:59Z`).toISOString();
          const created = await api("POST", "/v1/keys", body);
          event.target.reset();
          onCreated(created);
        });
      },
    },
    ...extraFields,
    h("label", {}, "Name", name),
    h("label", {}, "Environment", environment),
    productionHint,
    scopes.node,
    h("label", {}, "Expires (optional)", expires),
    h("div", {}, h("button", { type: "submit" }, "Create key")),
    line,
  );
}

/** Rotate, revoke and ask-for-production buttons for one key; `reload` redraws the page. */
function keyActions(key, reveal, reload, { details = true } = {}) {
  const actions = details ? [h("a", { href: `#/keys/${key.id}` }, "Details")] : [];
  const live = key.status === "active" && !key.replaced_by;
  if (live) {
    actions.push(
      h(
        "button",
        {
          type: "button",
          class: "link",
          "aria-label": `Rotate ${key.name}`,
          onclick: async () => {
            const answer = await ask("Rotate key", `A new key replaces “${key.name}”. How long should the old one keep working?`, {
              fields: [
                {
                  name: "grace",
                  label: "Grace period",
                  options: [
                    ["3600", "1 hour"],
                    ["86400", "1 day"],
                    ["604800", "7 days"],
                    ["0", "Stop it now"],
                  ],
                },
              ],
              confirm: "Rotate",
            });
            if (!answer) return;
            try {
              const rotated = await api("POST", `/v1/keys/${key.id}/rotate`, { grace_seconds: Number(answer.grace) });
              reveal(secretPanel(`Rotated: the new key for “${rotated.name}”`, rotated.key, reload));
            } catch (error) {
              toast(error.message);
            }
          },
        },
        "Rotate",
      ),
      h(
        "button",
        {
          type: "button",
          class: "link",
          "aria-label": `Revoke ${key.name}`,
          onclick: async () => {
            const answer = await ask("Revoke key", `“${key.name}” (${key.ref}) stops working at once, everywhere. This cannot be undone.`, {
              fields: [{ name: "reason", label: "Reason (optional)" }],
              confirm: "Revoke",
              danger: true,
            });
            if (!answer) return;
            try {
              await api("POST", `/v1/keys/${key.id}/revoke`, answer.reason ? { reason: answer.reason } : {});
              toast("Key revoked");
              reload();
            } catch (error) {
              toast(error.message);
            }
          },
        },
        "Revoke",
      ),
    );
  }
  if (live && key.environment === "sandbox") {
    actions.push(
      h(
        "button",
        {
          type: "button",
          class: "link",
          "aria-label": `Request a production key for ${key.name}`,
          onclick: async () => {
            const answer = await ask(
              "Request a production key",
              "An administrator will review the request. The production key gets the scopes and limits this key has now; if they change before the decision, the request cannot be approved.",
              {
                fields: [{ name: "reason", label: "What will you use it for? (optional)" }],
                confirm: "Send request",
              },
            );
            if (!answer) return;
            try {
              await api("POST", "/v1/key-requests", { key_id: key.id, ...(answer.reason ? { reason: answer.reason } : {}) });
              toast("Request sent");
              reload();
            } catch (error) {
              toast(error.message);
            }
          },
        },
        "Request production",
      ),
    );
  }
  return actions;
}

function keyRows(keys, reveal, reload, withOwner = false) {
  return keys.map((key) =>
    h(
      "tr",
      { "data-key-id": key.id },
      h("td", {}, key.name),
      withOwner ? h("td", {}, h("code", {}, key.owner.id)) : null,
      h("td", {}, h("code", {}, key.ref)),
      h("td", {}, key.environment),
      h("td", {}, badge(key.status)),
      h("td", { class: "hide-narrow" }, fmt(key.created_at)),
      h("td", { class: "hide-narrow" }, fmt(key.expires_at)),
      h("td", { class: "hide-narrow" }, fmt(key.last_used_at)),
      h("td", { class: "actions" }, keyActions(key, reveal, reload)),
    ),
  );
}

const KEY_HEADERS = ["Name", "Key", "Environment", "Status", "Created", "Expires", "Last used", ""];
const visibleHeaders = (headers) =>
  headers.map((x, i) => (i >= headers.length - 4 && i < headers.length - 1 ? h("span", { class: "hide-narrow" }, x) : x));

async function myKeysPage() {
  const revealSlot = h("div");
  const reveal = (panel) => revealSlot.replaceChildren(panel);
  const listSlot = h("div");
  const requestSlot = h("div");
  const me = { type: "user", id: session.user.id };
  const reload = async () => {
    const keys = await api("GET", `/v1/keys?owner_type=user&owner_id=${encodeURIComponent(me.id)}&limit=200`);
    listSlot.replaceChildren(table(visibleHeaders(KEY_HEADERS), keyRows(keys.data, reveal, reload), "No keys yet: create one above."));
    const requests = await api("GET", "/v1/key-requests?limit=50");
    const mine = requests.data.filter((r) => r.owner.type === "user" && r.owner.id === me.id);
    requestSlot.replaceChildren(
      table(
        ["Sandbox key", "Status", "Asked", "Decision", ""],
        mine.map((r) =>
          h(
            "tr",
            { "data-request-id": r.id },
            h("td", {}, h("code", {}, r.sandbox_key_id)),
            h("td", {}, badge(r.status)),
            h("td", {}, fmt(r.created_at)),
            h("td", {}, r.decision_reason ?? (r.decided_at ? fmt(r.decided_at) : "—")),
            h(
              "td",
              {},
              r.status === "approved" && !r.claimed_at
                ? h(
                    "button",
                    {
                      type: "button",
                      onclick: async () => {
                        try {
                          const claimed = await api("POST", `/v1/key-requests/${r.id}/claim`);
                          reveal(secretPanel(`Your production key “${claimed.name}”`, claimed.key, reload));
                          await reload();
                        } catch (error) {
                          toast(error.message);
                        }
                      },
                    },
                    "Get production key",
                  )
                : r.issued_key_id
                  ? h("a", { href: `#/keys/${r.issued_key_id}` }, "Issued key")
                  : "",
            ),
          ),
        ),
        "No production key requests.",
      ),
    );
  };
  page(
    "My API keys",
    h("p", { class: "muted" }, "Keys you create here belong to you. Use them in an Authorization: Bearer header; never put one in a URL."),
    createKeyForm(
      () => me,
      async (created) => {
        reveal(secretPanel(`Your new key “${created.name}”`, created.key, null));
        await reload();
      },
    ),
    revealSlot,
    h("h2", {}, "Keys"),
    listSlot,
    h("h2", {}, "Production key requests"),
    requestSlot,
    passwordForm(),
  );
  await reload();
}

/** Your account: changing the password ends every other session of yours. */
function passwordForm() {
  const line = errorLine();
  const current = h("input", {
    type: "password",
    name: "current_password",
    required: true,
    autocomplete: "current-password",
    maxlength: 256,
  });
  const next = h("input", {
    type: "password",
    name: "new_password",
    required: true,
    minlength: 12,
    maxlength: 256,
    autocomplete: "new-password",
  });
  return h(
    "form",
    {
      class: "card grid",
      "aria-label": "Change your password",
      onsubmit: (event) => {
        event.preventDefault();
        void attempt(line, async () => {
          session = await api("POST", "/v1/session/password", { current_password: current.value, new_password: next.value });
          event.target.reset();
          toast("Password changed; other sessions were signed out");
        });
      },
    },
    h("h2", {}, "Your account"),
    h("label", {}, "Current password", current),
    h("label", {}, "New password (12+ characters)", next),
    h("div", {}, h("button", { type: "submit" }, "Change password")),
    line,
  );
}

const OUTCOME_GROUPS = {
  VALID: "VALID",
  RATE_LIMITED: "limited",
  CONCURRENCY_LIMITED: "limited",
  QUOTA_EXCEEDED: "limited",
};
const GROUP_COLORS = { VALID: "#12b76a", limited: "#f79009", denied: "#f04438" };
const GROUP_LABELS = { VALID: "Valid", limited: "Limited", denied: "Denied" };

/** Requests by outcome over the last 24 hours, from GET /v1/usage; an empty state when there is none (or no route). */
async function usageChart(keyId) {
  const box = h("div", { class: "chart" });
  const since = new Date(Date.now() - 24 * 3600_000).toISOString();
  let data = [];
  try {
    const usage = await api("GET", `/v1/usage?key_id=${encodeURIComponent(keyId)}&bucket=hour&since=${encodeURIComponent(since)}`);
    data = Array.isArray(usage?.data) ? usage.data : [];
  } catch {
    data = [];
  }
  if (data.length === 0) {
    box.append(h("p", { class: "muted", "data-empty": "usage" }, "No usage recorded in the last 24 hours."));
    return box;
  }
  const buckets = new Map();
  for (const row of data) {
    const start = row.start;
    const group = OUTCOME_GROUPS[row.outcome] ?? "denied";
    const bucket = buckets.get(start) ?? { VALID: 0, limited: 0, denied: 0 };
    bucket[group] += Number(row.count) || 0;
    buckets.set(start, bucket);
  }
  const starts = [...buckets.keys()].sort();
  const max = Math.max(1, ...starts.map((s) => Object.values(buckets.get(s)).reduce((a, b) => a + b, 0)));
  const width = 600;
  const height = 200;
  const barWidth = Math.max(2, Math.floor((width - 40) / starts.length) - 2);
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height + 20}`,
    role: "img",
    "aria-label": `Requests by outcome per hour, highest ${max}`,
  });
  chart.append(
    svg("line", { x1: 40, y1: height, x2: width, y2: height, stroke: "#b8bfca" }),
    svg("text", { x: 0, y: 12, "font-size": 11, fill: "#5a6474" }, String(max)),
  );
  starts.forEach((start, i) => {
    let y = height;
    const x = 42 + i * (barWidth + 2);
    for (const group of ["VALID", "limited", "denied"]) {
      const value = buckets.get(start)[group];
      if (!value) continue;
      const barHeight = (value / max) * (height - 10);
      y -= barHeight;
      chart.append(
        svg(
          "rect",
          { x, y, width: barWidth, height: barHeight, fill: GROUP_COLORS[group] },
          svg("title", {}, `${fmt(start)}: ${value} ${GROUP_LABELS[group]}`),
        ),
      );
    }
  });
  const hourLabel = (iso) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  chart.append(
    svg("text", { x: 42, y: height + 16, "font-size": 11, fill: "#5a6474" }, hourLabel(starts[0])),
    svg("text", { x: width, y: height + 16, "font-size": 11, fill: "#5a6474", "text-anchor": "end" }, hourLabel(starts[starts.length - 1])),
  );
  box.append(
    chart,
    h(
      "p",
      { class: "legend" },
      Object.entries(GROUP_LABELS).map(([g, label]) => h("span", { class: `sw-${g === "VALID" ? "VALID" : g}` }, label)),
    ),
  );
  const totals = { VALID: 0, limited: 0, denied: 0 };
  for (const b of buckets.values()) for (const g of Object.keys(totals)) totals[g] += b[g];
  box.append(h("p", { class: "muted" }, `Last 24 hours: ${totals.VALID} valid, ${totals.limited} limited, ${totals.denied} denied.`));
  return box;
}

function describeLimits(key) {
  const rate = key.rate_limit
    ? `${key.rate_limit.requests} per ${key.rate_limit.per_seconds} s${key.rate_limit.burst ? ` (burst ${key.rate_limit.burst})` : ""}`
    : "none";
  let quota = "none";
  if (key.quota && "limit" in key.quota) quota = `${key.quota.limit} per ${key.quota.period}`;
  else if (key.quota && "remaining" in key.quota) quota = `${key.quota.remaining} uses left`;
  return [
    ["Rate limit", rate],
    ["Concurrency", key.concurrency ?? "none"],
    ["Quota", quota],
    ["Allowed addresses", key.allowed_cidrs.length ? key.allowed_cidrs.join(", ") : "any"],
  ];
}

function dl(pairs) {
  return h(
    "dl",
    { class: "dl" },
    pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
  );
}

async function keyDetailPage(id) {
  const key = await api("GET", `/v1/keys/${encodeURIComponent(id)}`);
  const revealSlot = h("div");
  const reload = () => route();
  page(
    key.name,
    revealSlot,
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Settings"),
      dl(
        [
          ["Key", h("code", {}, key.ref)],
          ["Id", h("code", {}, key.id)],
          ["Owner", `${key.owner.type}: ${key.owner.id}`],
          ["Environment", key.environment],
          ["Scopes", key.scopes.join(", ") || "none"],
          ["Status", badge(key.status)],
          ["Created", fmt(key.created_at)],
          ["Expires", fmt(key.expires_at)],
          ["Last used", fmt(key.last_used_at)],
          key.grace_ends_at ? ["Old key works until", fmt(key.grace_ends_at)] : null,
          key.replaced_by ? ["Replaced by", h("a", { href: `#/keys/${key.replaced_by}` }, key.replaced_by)] : null,
          key.rotated_from ? ["Rotated from", h("a", { href: `#/keys/${key.rotated_from}` }, key.rotated_from)] : null,
          key.revoked_reason ? ["Revoked because", key.revoked_reason] : null,
          ["Metadata", h("code", {}, JSON.stringify(key.metadata))],
        ].filter(Boolean),
      ),
      h(
        "p",
        {},
        keyActions(key, (panel) => revealSlot.replaceChildren(panel), reload, { details: false }),
      ),
    ),
    h("section", { class: "card" }, h("h2", {}, "Limits"), dl(describeLimits(key))),
    h("section", { class: "card" }, h("h2", {}, "Usage"), await usageChart(key.id)),
  );
}

async function applicationsPage() {
  const revealSlot = h("div");
  const reveal = (panel) => revealSlot.replaceChildren(panel);
  const listSlot = h("div");
  const app = h("input", {
    name: "application",
    required: true,
    maxlength: 128,
    pattern: "[A-Za-z0-9_.@:\\-]+",
    placeholder: "billing-service",
  });
  const reload = async () => {
    const keys = await api("GET", "/v1/keys?owner_type=application&limit=200");
    const headers = ["Name", "Application", ...KEY_HEADERS.slice(1)];
    listSlot.replaceChildren(table(visibleHeaders(headers), keyRows(keys.data, reveal, reload, true), "No application keys yet."));
  };
  page(
    "Applications",
    h("p", { class: "muted" }, "Service accounts and integrations: keys owned by an application rather than a person."),
    createKeyForm(
      () => ({ type: "application", id: app.value }),
      async (created) => {
        reveal(secretPanel(`New key “${created.name}” for ${created.owner.id}`, created.key, null));
        await reload();
      },
      [h("label", {}, "Application id", app)],
    ),
    revealSlot,
    listSlot,
  );
  await reload();
}

async function requestsPage() {
  const listSlot = h("div");
  const reload = async () => {
    const requests = await api("GET", "/v1/key-requests?limit=200");
    listSlot.replaceChildren(
      table(
        ["Owner", "Sandbox key", "Asks for", "Reason", "Asked", "Status", ""],
        requests.data.map((r) =>
          h(
            "tr",
            { "data-request-id": r.id },
            h("td", {}, `${r.owner.type}: ${r.owner.id}`),
            h("td", {}, h("a", { href: `#/keys/${r.sandbox_key_id}` }, r.sandbox_key_id)),
            // What approval issues: the sandbox key's permissions when the request was made (docs/authority.md).
            h("td", {}, askedSummary(r.asked)),
            h("td", {}, r.reason ?? "—"),
            h("td", {}, fmt(r.created_at)),
            h("td", {}, badge(r.status), r.decision_reason ? ` ${r.decision_reason}` : ""),
            h(
              "td",
              { class: "actions" },
              r.status === "pending"
                ? [
                    h(
                      "button",
                      {
                        type: "button",
                        onclick: async () => {
                          const ok = await ask(
                            "Approve",
                            `Issue a production key with exactly what was asked (${askedSummary(r.asked)})? If the sandbox key changed since, the request is refused. The requester picks the key up in their dashboard.`,
                            {
                              confirm: "Approve",
                            },
                          );
                          if (!ok) return;
                          try {
                            await api("POST", `/v1/key-requests/${r.id}/approve`);
                            toast("Approved");
                            await reload();
                          } catch (error) {
                            toast(error.message);
                          }
                        },
                      },
                      "Approve",
                    ),
                    " ",
                    h(
                      "button",
                      {
                        type: "button",
                        class: "secondary",
                        onclick: async () => {
                          const answer = await ask("Reject", "The requester sees your reason.", {
                            fields: [{ name: "reason", label: "Reason", required: true }],
                            confirm: "Reject",
                            danger: true,
                          });
                          if (!answer) return;
                          try {
                            await api("POST", `/v1/key-requests/${r.id}/reject`, { reason: answer.reason });
                            toast("Rejected");
                            await reload();
                          } catch (error) {
                            toast(error.message);
                          }
                        },
                      },
                      "Reject",
                    ),
                  ]
                : r.issued_key_id
                  ? h("a", { href: `#/keys/${r.issued_key_id}` }, "Issued key")
                  : "",
            ),
          ),
        ),
        "No key requests.",
      ),
    );
  };
  page("Key requests", h("p", { class: "muted" }, "Requests for production keys, newest first."), listSlot);
  await reload();
}

async function usersPage() {
  const line = errorLine();
  const listSlot = h("div");
  const email = h("input", { type: "email", name: "email", required: true, maxlength: 320 });
  const password = h("input", {
    type: "password",
    name: "password",
    required: true,
    minlength: 12,
    maxlength: 256,
    autocomplete: "new-password",
  });
  const role = h("select", { name: "role" }, h("option", { value: "member" }, "Member"), h("option", { value: "admin" }, "Admin"));
  const reload = async () => {
    const users = await api("GET", "/v1/users");
    listSlot.replaceChildren(
      table(
        ["Email", "Role", "Status", "Created", ""],
        users.data.map((u) =>
          h(
            "tr",
            {},
            h("td", {}, u.email),
            h("td", {}, u.role),
            h("td", {}, badge(u.disabled ? "disabled" : "active")),
            h("td", {}, fmt(u.created_at)),
            h(
              "td",
              {},
              u.id === session.user.id
                ? ""
                : h(
                    "button",
                    {
                      type: "button",
                      class: "link",
                      onclick: async () => {
                        try {
                          await api("PATCH", `/v1/users/${u.id}`, { disabled: !u.disabled });
                          await reload();
                        } catch (error) {
                          toast(error.message);
                        }
                      },
                    },
                    u.disabled ? "Enable" : "Disable",
                  ),
            ),
          ),
        ),
        "No users.",
      ),
    );
  };
  page(
    "Users",
    h(
      "form",
      {
        class: "card grid",
        "aria-label": "Create a user",
        onsubmit: (event) => {
          event.preventDefault();
          void attempt(line, async () => {
            await api("POST", "/v1/users", { email: email.value, password: password.value, role: role.value });
            event.target.reset();
            toast("User created");
            await reload();
          });
        },
      },
      h("label", {}, "Email", email),
      h("label", {}, "Initial password", password),
      h("label", {}, "Role", role),
      h("div", {}, h("button", { type: "submit" }, "Create user")),
      line,
    ),
    listSlot,
  );
  await reload();
}

async function auditPage() {
  const params = new URLSearchParams(location.hash.split("?")[1] ?? "");
  const actor = h("input", { name: "actor_id", value: params.get("actor_id") ?? "", maxlength: 128 });
  const key = h("input", { name: "key_id", value: params.get("key_id") ?? "", maxlength: 128 });
  const action = h("input", { name: "action", value: params.get("action") ?? "", maxlength: 64, placeholder: "key.revoked" });
  const query = new URLSearchParams({ limit: "100" });
  for (const [name, input] of [
    ["actor_id", actor],
    ["key_id", key],
    ["action", action],
  ])
    if (input.value) query.set(name, input.value);
  const events = await api("GET", `/v1/audit-events?${query}`);
  page(
    "Audit log",
    h(
      "form",
      {
        class: "card grid",
        "aria-label": "Filter the audit log",
        onsubmit: (event) => {
          event.preventDefault();
          const next = new URLSearchParams();
          for (const input of [actor, key, action]) if (input.value) next.set(input.name, input.value);
          location.hash = `#/audit?${next}`;
        },
      },
      h("label", {}, "Actor id", actor),
      h("label", {}, "Key or target id", key),
      h("label", {}, "Action", action),
      h("div", {}, h("button", { type: "submit" }, "Filter")),
    ),
    table(
      ["When", "Actor", "Action", "Target", "From", "Details"],
      events.data.map((e) =>
        h(
          "tr",
          {},
          h("td", {}, fmt(e.at)),
          h("td", {}, `${e.actor.type}: `, h("code", {}, e.actor.id)),
          h("td", {}, h("code", {}, e.action)),
          h("td", {}, `${e.target.type}: `, h("code", {}, e.target.id)),
          h("td", { class: "hide-narrow" }, e.ip ?? "—"),
          h("td", { class: "mono" }, e.details ? JSON.stringify(e.details) : e.changes ? JSON.stringify(e.changes) : ""),
        ),
      ),
      "No events match.",
    ),
  );
}

// ------------------------------------------------------------------ router

async function loadSession() {
  try {
    session = await api("GET", "/v1/session");
  } catch {
    session = null;
  }
}

async function route() {
  const [path] = location.hash.replace(/^#/, "").split("?");
  const parts = (path || "/keys").split("/").filter(Boolean);
  try {
    if (parts[0] === "setup" && parts[1]) return setupPage(parts[1]);
    if (parts[0] === "signin") {
      // Whoever was signed in in this tab is forgotten here; the server ends sessions on sign-out.
      session = null;
      renderNav();
      return signInPage();
    }
    if (!session) await loadSession();
    renderNav();
    if (!session) {
      const setup = await api("GET", "/v1/setup").catch(() => ({ needed: false }));
      if (setup.needed) {
        page(
          "Keyward is not set up yet",
          h(
            "p",
            {},
            "Open the one-time setup link that `keyward serve` printed on its first start, or run `keyward users create --admin`.",
          ),
        );
        return;
      }
      return signInPage();
    }
    const admin = session.user.role === "admin";
    if (parts[0] === "keys" && parts[1]) return await keyDetailPage(parts[1]);
    if (parts[0] === "applications" && admin) return await applicationsPage();
    if (parts[0] === "requests" && admin) return await requestsPage();
    if (parts[0] === "users" && admin) return await usersPage();
    if (parts[0] === "audit" && admin) return await auditPage();
    return await myKeysPage();
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) page("Not found", h("p", {}, "There is nothing here, or it is not yours."));
    else if (!(error instanceof ApiError && error.code === "SESSION_REQUIRED"))
      page("Something went wrong", h("p", { class: "error" }, error.message));
  } finally {
    main.focus({ preventScroll: true });
  }
}

window.addEventListener("hashchange", () => {
  void route();
});
void route();
