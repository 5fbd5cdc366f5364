// <keyward-keys>: API key self-service for one owner, embedded in a host application
// (docs/embedding.md). A standard custom element: shadow DOM, no framework, no build, no inline
// script or style, no eval, so it runs under a strict Content-Security-Policy. Styles are a
// constructed stylesheet (adoptedStyleSheets), which `style-src 'self'` allows.
//
//   <script type="module" src="https://keyward.example.com/embed/keys.js"></script>
//   <keyward-keys api="https://keyward.example.com" token="kwp_…"></keyward-keys>
//
// The token is a portal session's (POST /v1/portal-sessions, by the host's backend): it travels
// only in `Authorization: Portal <token>`, never in a cookie or a URL. Set it as the `token`
// attribute or the `token` property.

const CSS = `
:host {
  --_font: var(--keyward-font, system-ui, -apple-system, "Segoe UI", sans-serif);
  --_accent: var(--keyward-accent, #2457d6);
  --_accent-fg: var(--keyward-accent-fg, #ffffff);
  --_radius: var(--keyward-radius, 6px);
  --_bg: var(--keyward-bg, #ffffff);
  --_fg: var(--keyward-fg, #1c1f24);
  --_muted: var(--keyward-muted, #5a6270);
  --_border: var(--keyward-border, #d5d9e0);
  --_danger: var(--keyward-danger, #b3261e);
  --_success: var(--keyward-success, #1e6b3a);
  --_code-bg: var(--keyward-code-bg, #f2f4f7);
  display: block;
  font-family: var(--_font);
  color: var(--_fg);
  background: var(--_bg);
  line-height: 1.45;
}
* { box-sizing: border-box; }
h2, h3 { margin: 0 0 0.6em; font-size: 1.05em; }
section { margin: 0 0 1.25em; }
table { width: 100%; border-collapse: collapse; font-size: 0.92em; }
th, td { text-align: left; padding: 0.45em 0.5em; border-bottom: 1px solid var(--_border); vertical-align: top; }
th { color: var(--_muted); font-weight: 600; }
code, .secret { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--_code-bg); border-radius: var(--_radius); padding: 0.1em 0.35em; word-break: break-all; }
button { font: inherit; border-radius: var(--_radius); border: 1px solid var(--_accent); background: var(--_accent); color: var(--_accent-fg); padding: 0.35em 0.8em; cursor: pointer; }
button.secondary { background: transparent; color: var(--_accent); }
button.danger { background: var(--_danger); border-color: var(--_danger); color: #ffffff; }
button:disabled { opacity: 0.6; cursor: not-allowed; }
button:focus-visible, input:focus-visible, select:focus-visible { outline: 3px solid var(--_accent); outline-offset: 2px; }
input[type="text"], select { font: inherit; color: var(--_fg); background: var(--_bg); border: 1px solid var(--_border); border-radius: var(--_radius); padding: 0.35em 0.5em; min-width: 14em; }
label { display: block; margin: 0 0 0.25em; font-weight: 600; }
fieldset { border: 1px solid var(--_border); border-radius: var(--_radius); margin: 0 0 0.8em; padding: 0.5em 0.8em; }
legend { font-weight: 600; padding: 0 0.3em; }
fieldset label { display: inline-flex; gap: 0.35em; align-items: center; font-weight: 400; margin-right: 1em; }
.field { margin: 0 0 0.8em; }
.actions { display: flex; flex-wrap: wrap; gap: 0.4em; }
.muted { color: var(--_muted); }
.error { color: var(--_danger); }
.notice { border: 1px solid var(--_success); border-radius: var(--_radius); padding: 0.8em; margin: 0 0 1em; }
.notice p { margin: 0 0 0.5em; }
.confirm { display: flex; flex-wrap: wrap; gap: 0.4em; align-items: center; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
`;

let sheet = null;
function styleSheet() {
  if (sheet === null && typeof CSSStyleSheet === "function") {
    sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
  }
  return sheet;
}

/** An element with attributes (`on…` functions become listeners) and children (strings are text, never HTML). */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  for (const child of children.flat()) if (child !== null && child !== undefined && child !== false) element.append(child);
  return element;
}

const DAY_MS = 86_400_000;
/** A key's state when it is not simply active, in the words the table shows beside its name. */
const STATUS_TEXT = {
  awaiting_pickup: "approved, not picked up yet",
  disabled: "disabled",
  revoked: "revoked",
  expired: "expired",
};
const EXPIRY_CHOICES = [7, 30, 90, 180, 365];

function formatDate(iso) {
  if (!iso) return "never";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
}

class PortalError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Importable where there is no DOM (a server-side bundle, Node): the element is then inert.
const Base = globalThis.HTMLElement ?? class {};

export class KeywardKeys extends Base {
  static observedAttributes = ["token", "api", "heading", "heading-level"];

  #token = null;
  #root;
  #session = null;
  #keys = [];
  #requests = [];
  /** The plaintext just issued: shown once, then dropped. */
  #issued = null;
  /** `{id, action}` of a row awaiting confirmation. */
  #confirming = null;
  #busy = false;
  #focusIssued = false;
  #message = "";
  #error = "";
  #loaded = false;
  /** The create form, kept across renders (what was typed survives an error), rebuilt for a new session. */
  #form = null;
  #formFor = null;

  constructor() {
    super();
    this.#root = this.attachShadow({ mode: "open" });
    const css = styleSheet();
    if (css) this.#root.adoptedStyleSheets = [css];
  }

  /** `heading-level` 2–6 (default 2): the element's heading fits under the host page's own. */
  #headingTag() {
    const level = Number(this.getAttribute("heading-level"));
    return Number.isInteger(level) && level >= 2 && level <= 6 ? `h${level}` : "h2";
  }

  get token() {
    return this.#token ?? this.getAttribute("token");
  }

  set token(value) {
    this.#token = value ? String(value) : null;
    if (this.isConnected) void this.refresh();
  }

  get api() {
    return (this.getAttribute("api") ?? "").replace(/\/+$/, "");
  }

  connectedCallback() {
    this.#render();
    // Without a token yet (the hosted page sets the property next), wait for it.
    if (this.token) void this.refresh();
  }

  attributeChangedCallback(name, before, after) {
    if (before === after || !this.isConnected || !this.#loaded) return;
    if (name === "heading" || name === "heading-level") this.#render();
    else void this.refresh();
  }

  async #call(method, path, body) {
    const token = this.token;
    if (!token) throw new PortalError(401, "PORTAL_TOKEN_INVALID", "No portal token was given to this page.");
    const headers = { authorization: `Portal ${token}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    let response;
    try {
      response = await fetch(`${this.api}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
        referrerPolicy: "no-referrer",
      });
    } catch {
      throw new PortalError(0, "NETWORK", "Could not reach the key service: check your connection and try again.");
    }
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (!response.ok)
      throw new PortalError(response.status, json?.code ?? "ERROR", json?.detail ?? `The key service answered ${response.status}.`);
    return json;
  }

  /** Reloads the session, the keys and (when production may be requested) the requests. */
  async refresh() {
    this.#error = "";
    try {
      this.#session = await this.#call("GET", "/v1/portal/session");
      const keys = await this.#call("GET", "/v1/keys?limit=100");
      this.#keys = keys.data.filter((key) => key.status !== "revoked");
      this.#requests = this.#session.policy.may_request_production ? (await this.#call("GET", "/v1/key-requests?limit=100")).data : [];
      this.#error = "";
      this.dispatchEvent(new CustomEvent("keyward-session", { detail: this.#session, bubbles: true, composed: true }));
    } catch (error) {
      this.#fail(error);
    }
    this.#loaded = true;
    this.#render();
  }

  #fail(error) {
    this.#error =
      error instanceof PortalError && error.status === 401
        ? `${error.message} Reload the page from your account to start again.`
        : error.message;
  }

  async #act(work, message) {
    if (this.#busy) return;
    this.#busy = true;
    this.#error = "";
    this.#message = "";
    this.#render();
    try {
      await work();
      this.#message = message;
      this.#confirming = null;
      const keys = await this.#call("GET", "/v1/keys?limit=100");
      this.#keys = keys.data.filter((key) => key.status !== "revoked");
      if (this.#session?.policy.may_request_production) this.#requests = (await this.#call("GET", "/v1/key-requests?limit=100")).data;
    } catch (error) {
      this.#fail(error);
    } finally {
      this.#busy = false;
      this.#render();
    }
  }

  #issue(json, what) {
    this.#issued = { key: json.key, name: json.name, what };
    this.#focusIssued = true;
    if (what === "created") this.#form?.reset();
  }

  #create(form) {
    const data = new FormData(form);
    const scopes = data.getAll("scope").map(String);
    const environment = String(data.get("environment") ?? "sandbox");
    const days = Number(data.get("expires_in_days"));
    const name = String(data.get("name") ?? "").trim();
    if (!name || scopes.length === 0) {
      this.#error = !name ? "Give the key a name." : "Choose at least one scope.";
      this.#render();
      return;
    }
    const owner = this.#session.owner;
    void this.#act(async () => {
      const created = await this.#call("POST", "/v1/keys", {
        owner,
        name,
        environment,
        scopes,
        expires_at: new Date(Date.now() + days * DAY_MS).toISOString(),
      });
      this.#issue(created, "created");
    }, `Key "${name}" created.`);
  }

  #renderIssued() {
    const issued = this.#issued;
    if (!issued) return null;
    const secret = h("code", { class: "secret", "data-secret": true }, issued.key);
    const status = h("span", { role: "status", class: "muted" });
    const copy = h(
      "button",
      {
        type: "button",
        class: "secondary",
        "data-copy": true,
        onclick: async () => {
          let ok = false;
          try {
            await navigator.clipboard.writeText(issued.key);
            ok = true;
          } catch {
            ok = false;
          }
          status.textContent = ok ? "Copied." : "Could not copy: select the key and copy it yourself.";
        },
      },
      "Copy",
    );
    const done = h(
      "button",
      {
        type: "button",
        onclick: () => {
          this.#issued = null;
          this.#render();
        },
      },
      "Done",
    );
    return h(
      "div",
      { class: "notice", role: "region", "aria-label": "New API key" },
      h("p", {}, h("strong", {}, `Your new key "${issued.name}"`), " is shown only this once: copy it now and store it somewhere safe."),
      h("p", {}, secret),
      h("div", { class: "actions" }, copy, done, status),
    );
  }

  #rowActions(key) {
    const policy = this.#session.policy;
    if (this.#confirming?.id === key.id) {
      const action = this.#confirming.action;
      const confirm = h(
        "button",
        {
          type: "button",
          class: action === "revoke" ? "danger" : "",
          "data-confirm": action,
          onclick: () =>
            action === "revoke"
              ? this.#act(() => this.#call("POST", `/v1/keys/${key.id}/revoke`, {}), `Key "${key.name}" revoked.`)
              : this.#act(
                  async () => this.#issue(await this.#call("POST", `/v1/keys/${key.id}/rotate`, { grace_seconds: 0 }), "rotated"),
                  `Key "${key.name}" rotated: the old key no longer works.`,
                ),
        },
        action === "revoke" ? "Yes, revoke" : "Yes, rotate",
      );
      const cancel = h(
        "button",
        {
          type: "button",
          class: "secondary",
          onclick: () => {
            this.#confirming = null;
            this.#render();
          },
        },
        "Cancel",
      );
      const question =
        action === "revoke"
          ? `Revoke "${key.name}"? Anything using it stops working at once.`
          : `Rotate "${key.name}"? You get a new key; the old one stops working at once.`;
      queueMicrotask(() => confirm.focus());
      return h("div", { class: "confirm", role: "group", "aria-label": question }, h("span", {}, question), confirm, cancel);
    }
    const ask = (action) => () => {
      this.#confirming = { id: key.id, action };
      this.#render();
    };
    const buttons = [];
    if (key.status === "active")
      buttons.push(
        h("button", { type: "button", class: "secondary", "aria-label": `Rotate ${key.name}`, onclick: ask("rotate") }, "Rotate"),
      );
    if (key.status !== "awaiting_pickup")
      buttons.push(
        h("button", { type: "button", class: "secondary", "aria-label": `Revoke ${key.name}`, onclick: ask("revoke") }, "Revoke"),
      );
    if (policy.may_request_production && key.environment === "sandbox" && key.status === "active") {
      const pending = this.#requests.find((request) => request.sandbox_key_id === key.id && request.status === "pending");
      if (pending) buttons.push(h("span", { class: "muted" }, "Production requested"));
      else
        buttons.push(
          h(
            "button",
            {
              type: "button",
              class: "secondary",
              "aria-label": `Request a production key like ${key.name}`,
              onclick: () =>
                this.#act(
                  () => this.#call("POST", "/v1/key-requests", { key_id: key.id }),
                  `Production key requested for "${key.name}": you can pick it up here once it is approved.`,
                ),
            },
            "Request production",
          ),
        );
    }
    return h("div", { class: "actions" }, buttons);
  }

  #renderPickups() {
    const ready = this.#requests.filter((request) => request.status === "approved" && !request.claimed_at);
    if (ready.length === 0) return null;
    return h(
      "section",
      { "aria-labelledby": "kw-pickup" },
      h("h3", { id: "kw-pickup" }, "Approved production keys"),
      h(
        "ul",
        {},
        ready.map((request) =>
          h(
            "li",
            {},
            `${request.asked?.name ?? request.sandbox_key_id} `,
            h(
              "button",
              {
                type: "button",
                onclick: () =>
                  this.#act(
                    async () => this.#issue(await this.#call("POST", `/v1/key-requests/${request.id}/claim`, {}), "picked up"),
                    "Production key picked up.",
                  ),
              },
              "Pick up",
            ),
          ),
        ),
      ),
    );
  }

  #renderTable() {
    if (this.#keys.length === 0) return h("p", { class: "muted" }, "No keys yet.");
    const rows = this.#keys.map((key) =>
      h(
        "tr",
        { "data-key-id": key.id },
        h(
          "td",
          {},
          key.name,
          key.status !== "active" ? h("span", { class: "muted" }, ` · ${STATUS_TEXT[key.status] ?? key.status}`) : null,
        ),
        h("td", {}, h("code", {}, key.ref)),
        h("td", {}, key.environment),
        h("td", {}, key.scopes.join(", ")),
        h("td", {}, formatDate(key.created_at)),
        h("td", {}, key.last_used_at ? formatDate(key.last_used_at) : "never"),
        h("td", {}, key.expires_at ? formatDate(key.expires_at) : "never"),
        h("td", {}, this.#rowActions(key)),
      ),
    );
    return h(
      "table",
      {},
      h("caption", { class: "sr" }, "Your API keys"),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Name", "Key", "Environment", "Scopes", "Created", "Last used", "Expires", "Actions"].map((title) =>
            h("th", { scope: "col" }, title),
          ),
        ),
      ),
      h("tbody", {}, rows),
    );
  }

  #renderForm() {
    if (this.#form && this.#formFor === this.#session) {
      const submit = this.#form.querySelector("button[type=submit]");
      if (submit) submit.disabled = this.#busy;
      return this.#form;
    }
    const policy = this.#session.policy;
    const maxDays = policy.max_expires_in_days;
    const choices = [...new Set([...EXPIRY_CHOICES.filter((days) => days < maxDays), maxDays])];
    const preferred = choices.includes(90) ? 90 : choices[choices.length - 1];
    const environments = policy.environments;
    const form = h(
      "form",
      {
        "aria-labelledby": "kw-create",
        novalidate: true,
        onsubmit: (event) => {
          event.preventDefault();
          this.#create(event.currentTarget);
        },
      },
      h("h3", { id: "kw-create" }, "Create a key"),
      h(
        "div",
        { class: "field" },
        h("label", { for: "kw-name" }, "Name"),
        h("input", { id: "kw-name", name: "name", type: "text", maxlength: 100, required: true, autocomplete: "off" }),
      ),
      h(
        "fieldset",
        {},
        h("legend", {}, "Scopes"),
        policy.scopes.map((scope, index) =>
          h("label", {}, h("input", { type: "checkbox", name: "scope", value: scope, checked: index === 0 }), scope),
        ),
      ),
      environments.length > 1
        ? h(
            "div",
            { class: "field" },
            h("label", { for: "kw-environment" }, "Environment"),
            h(
              "select",
              { id: "kw-environment", name: "environment" },
              environments.map((environment) => h("option", { value: environment }, environment)),
            ),
          )
        : h("input", { type: "hidden", name: "environment", value: environments[0] }),
      h(
        "div",
        { class: "field" },
        h("label", { for: "kw-expiry" }, "Expires in"),
        h(
          "select",
          { id: "kw-expiry", name: "expires_in_days" },
          choices.map((days) => h("option", { value: days, selected: days === preferred }, days === 1 ? "1 day" : `${days} days`)),
        ),
      ),
      h("button", { type: "submit", disabled: this.#busy }, "Create key"),
    );
    this.#form = form;
    this.#formFor = this.#session;
    return form;
  }

  #render() {
    const root = this.#root;
    const focused = root.activeElement?.id ?? null;
    const parts = [];
    parts.push(h("div", { role: "alert", class: "error" }, this.#error));
    // The new key is announced when it appears (aria-live), and shown once.
    parts.push(
      h(
        "div",
        { "aria-live": "polite", "data-issued": true },
        this.#renderIssued(),
        h("span", { role: "status", class: "muted" }, this.#message),
      ),
    );
    if (!this.#session) {
      parts.push(h("p", { class: "muted" }, this.#loaded ? "" : "Loading your keys…"));
      root.replaceChildren(...parts);
      return;
    }
    const environments = this.#session.policy.environments.join(" or ");
    parts.push(
      h(
        "section",
        { "aria-labelledby": "kw-keys" },
        h(this.#headingTag(), { id: "kw-keys" }, this.getAttribute("heading") || "API keys"),
        h(
          "p",
          { class: "muted" },
          `Keys you create here are ${environments} keys and expire within ${this.#session.policy.max_expires_in_days} days.`,
        ),
        this.#renderTable(),
      ),
    );
    const pickups = this.#renderPickups();
    if (pickups) parts.push(pickups);
    parts.push(h("section", {}, this.#renderForm()));
    root.replaceChildren(...parts);
    if (this.#focusIssued && this.#issued) {
      this.#focusIssued = false;
      root.querySelector("[data-copy]")?.focus();
    } else if (focused) root.getElementById(focused)?.focus();
  }
}

/** Defines `<keyward-keys>` (done on import in a browser; a no-op where it is already defined or there is no DOM). */
export function defineKeywardKeys(name = "keyward-keys") {
  if (globalThis.customElements && !customElements.get(name)) customElements.define(name, KeywardKeys);
}

defineKeywardKeys();
