// A list of keys with search and filters, read page by page from GET /v1/keys. The filters live
// in the address (#/all-keys?q=…&status=…) so a search can be bookmarked and shared; changing
// them redraws the list only, never the page around it (a key on screen stays there).
import { api, query } from "../lib/api.js";
import { h, uid } from "../lib/dom.js";
import { expiryEl, keyState, relative, stateBadges, timeEl } from "../lib/format.js";
import { people, userByEmail, userIdsOf, whoEl } from "../lib/people.js";
import { filterField, filterForm, searchInput } from "./filters.js";
import { keyActions } from "./key-actions.js";
import { pagedTable } from "./table.js";

const STATUSES = [
  ["", "Any status"],
  ["active", "Active"],
  ["disabled", "Disabled"],
  ["expired", "Expired"],
  ["revoked", "Revoked"],
  ["awaiting_pickup", "Awaiting pickup"],
];

/** "Expiring soon": within 7 days, as `expiring_within` seconds (docs/api.md). */
export const EXPIRING_SOON_SECONDS = 7 * 86_400;

/** The hash's own query: #/keys?q=x → {q: "x"}. */
export const hashParams = () => new URLSearchParams(location.hash.split("?")[1] ?? "");

function setHashParams(values) {
  const [path] = location.hash.split("?");
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(values)) if (value) search.set(name, value);
  const text = search.toString();
  history.replaceState(null, "", `${path}${text ? `?${text}` : ""}`);
}

/**
 * An owner typed as text that is not an email: `organization:<id>` (or `org:<id>`) an
 * organization, `application:<id>` or a bare id an application. As API filters {owner_type, owner_id}.
 */
export function ownerOfText(text) {
  const match = /^(organization|org|application|app):(.+)$/i.exec(text);
  if (!match) return { owner_type: "application", owner_id: text };
  return { owner_type: match[1].toLowerCase().startsWith("org") ? "organization" : "application", owner_id: match[2].trim() };
}

/** The latest pending or approved request of each sandbox key, for the key states and actions. */
export async function openRequests() {
  const [pending, approved] = await Promise.all([
    api("GET", "/v1/key-requests?status=pending&limit=200"),
    api("GET", "/v1/key-requests?status=approved&limit=200"),
  ]);
  const map = new Map();
  for (const r of [...approved.data, ...pending.data]) map.set(r.sandbox_key_id, r);
  return map;
}

/**
 * base: fixed API filters ({owner_type, owner_id}); showOwner: an Owner column and filter
 * (admins); reveal/onChange: for the actions; readOnly: Details only (an organization's viewer).
 * Returns {node, reload}.
 */
export function keyList({
  base = {},
  showOwner = false,
  ownerFilter = false,
  label = "Keys",
  empty,
  reveal,
  onChange = null,
  pageSize = 50,
  requests = true,
  readOnly = false,
}) {
  const params = hashParams();
  const search = searchInput({ value: params.get("q") ?? "" });
  const owner = ownerFilter
    ? h("input", { id: uid("owner"), name: "owner", value: params.get("owner") ?? "", autocomplete: "off", maxlength: 320 })
    : null;
  const environment = h(
    "select",
    { name: "environment", id: uid("env") },
    [
      ["", "Any environment"],
      ["sandbox", "Sandbox"],
      ["production", "Production"],
    ].map(([v, l]) => h("option", { value: v, selected: params.get("environment") === v }, l)),
  );
  const status = h(
    "select",
    { name: "status", id: uid("status") },
    STATUSES.map(([v, l]) => h("option", { value: v, selected: (params.get("status") ?? "") === v }, l)),
  );
  const expiring = h("input", { type: "checkbox", name: "expiring", checked: params.get("expiring") === "1" });
  const ownerNote = h("p", { class: "field-error", id: uid("owner-err") });
  let directory = new Map();
  /** The number of matches, from the first page's answer. */
  let total = null;

  /** The API filters, or null when the owner typed matches nobody. */
  let resolved = {};
  const resolve = async () => {
    const out = { ...base };
    if (search.value.trim()) out.q = search.value.trim();
    if (environment.value) out.environment = environment.value;
    if (status.value) out.status = status.value;
    if (expiring.checked) out.expiring_within = EXPIRING_SOON_SECONDS;
    ownerNote.textContent = "";
    owner?.removeAttribute("aria-invalid");
    if (owner?.value.trim()) {
      const text = owner.value.trim();
      const user = text.includes("@") ? await userByEmail(text) : null;
      if (user) Object.assign(out, { owner_type: "user", owner_id: user.id });
      else if (text.includes("@")) {
        ownerNote.textContent = `No user has the email ${text}.`;
        owner.setAttribute("aria-invalid", "true");
        return null;
      } else Object.assign(out, ownerOfText(text));
    }
    return out;
  };

  const columns = [
    {
      label: "Name",
      cell: (key) => h("a", { href: `#/keys/${key.id}`, class: "key-link" }, key.name),
    },
    { label: "Key", cell: (key) => h("code", { class: "ref" }, key.ref) },
    showOwner ? { label: "Owner", cell: (key) => whoEl(key.owner, directory) } : null,
    { label: "Environment", cell: (key) => key.environment },
    {
      label: "Status",
      cell: (key, ctx) => stateBadges(keyState(key, { requests: ctx.requests, predecessor: ctx.byId?.get(key.rotated_from) })),
    },
    { label: "Expires", cell: (key) => expiryEl(key) },
    {
      label: "Last used",
      cell: (key) =>
        key.last_used_at
          ? h(
              "span",
              {},
              timeEl(key.last_used_at, relative(key.last_used_at)),
              key.last_used_ip ? h("span", { class: "muted small block" }, `from ${key.last_used_ip}`) : null,
            )
          : h("span", { class: "muted" }, "never"),
    },
    {
      label: "",
      srLabel: "Actions",
      className: "actions",
      cell: (key, ctx) =>
        keyActions(key, {
          reveal,
          reload: async () => {
            await list.refresh();
            onChange?.();
          },
          context: { requests: ctx.requests, predecessor: ctx.byId?.get(key.rotated_from) ?? null },
          readOnly,
        }),
    },
  ].filter(Boolean);

  const list = pagedTable({
    label,
    columns,
    empty: () => [
      h("p", {}, filtering() ? "No keys match these filters." : empty),
      filtering() ? h("button", { type: "button", class: "secondary", onclick: clear }, "Clear filters") : null,
    ],
    pageSize,
    caption: label,
    rowAttrs: (key) => ({ "data-key-id": key.id }),
    fetchPage: async ({ cursor, limit }) => {
      if (!resolved) return { data: [], next_cursor: null };
      // The exact count reads every match: asked for with the first page only, and kept for the next ones.
      const [page, reqs] = await Promise.all([
        api("GET", `/v1/keys${query({ ...resolved, limit, cursor, include_total: cursor ? undefined : true })}`),
        requests ? openRequests().catch(() => new Map()) : new Map(),
      ]);
      // The owners on this page, looked up by id (never every user).
      directory = showOwner ? await people(userIdsOf(page.data.map((k) => k.owner))) : new Map();
      const byId = new Map(page.data.map((k) => [k.id, k]));
      // A successor's predecessor is usually on the same page; otherwise it is read, so the state says "rotating".
      const missing = page.data.filter((k) => k.rotated_from && !byId.has(k.rotated_from)).map((k) => k.rotated_from);
      await Promise.all(
        missing.slice(0, 10).map((id) =>
          api("GET", `/v1/keys/${encodeURIComponent(id)}`)
            .then((k) => byId.set(k.id, k))
            .catch(() => {}),
        ),
      );
      if (!cursor) total = typeof page.total === "number" ? page.total : null;
      return { ...page, total: total ?? undefined, context: { requests: reqs, byId } };
    },
  });

  const filtering = () => Boolean(search.value.trim() || owner?.value.trim() || environment.value || status.value || expiring.checked);
  const apply = async () => {
    resolved = await resolve();
    setHashParams({
      q: search.value.trim(),
      owner: owner?.value.trim() ?? "",
      environment: environment.value,
      status: status.value,
      expiring: expiring.checked ? "1" : "",
    });
    await list.reload();
  };
  const clear = () => {
    search.value = "";
    if (owner) owner.value = "";
    environment.value = "";
    status.value = "";
    expiring.checked = false;
    void apply();
  };
  const form = filterForm({
    label: `Find ${label.toLowerCase()}`,
    search,
    hint: "Name, the last four characters of the key, or its id.",
    fields: [
      owner
        ? filterField("Owner", owner, h("p", { class: "hint" }, "An email, an application id, or organization:<id>."), ownerNote)
        : null,
      filterField("Environment", environment),
      filterField("Status", status),
      h("div", { class: "field check" }, h("label", {}, expiring, "Expiring within 7 days")),
    ].filter(Boolean),
    onApply: apply,
    onClear: clear,
  });
  for (const control of [environment, status, expiring]) control.addEventListener("change", () => void apply());
  void apply();
  return { node: h("div", { class: "key-list" }, form, list.node), reload: () => list.refresh() };
}
