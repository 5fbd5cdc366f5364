// One key: its settings and state, what can be done to it, the edit form, its usage timeline
// and its recent requests.
import { usageTimeline } from "../components/chart.js";
import { idChip } from "../components/copy.js";
import { keyActions } from "../components/key-actions.js";
import { keyForm } from "../components/key-form.js";
import { openRequests } from "../components/key-list.js";
import { keyOnScreen } from "../components/secret.js";
import { loadInto } from "../components/states.js";
import { dataTable, pagedTable } from "../components/table.js";
import { ApiError, api, isAdmin, me, query } from "../lib/api.js";
import { dl, h, section, toast } from "../lib/dom.js";
import { expiryEl, isPowerful, keyState, limitPairs, num, powerReasons, relative, stateBadges, timeEl } from "../lib/format.js";
import { lookupKeys, people, userIdsOf, whoEl } from "../lib/people.js";
import { navigate, page, setSection } from "../lib/router.js";

const keyLink = (key, fallbackId) =>
  key
    ? h("span", {}, h("a", { href: `#/keys/${key.id}` }, key.name), " ", h("code", { class: "small" }, key.ref))
    : h("code", {}, fallbackId);

async function maybeKey(id) {
  if (!id) return null;
  try {
    return await api("GET", `/v1/keys/${encodeURIComponent(id)}`);
  } catch {
    return null;
  }
}

/** The recent requests of a key (GET /v1/keys/{id}/requests): what happened, from where, and why not. */
function requestLog(key) {
  const note = h("p", { class: "muted small" });
  const list = pagedTable({
    label: "Recent requests",
    caption: `Recent requests with ${key.name}`,
    pageSize: 25,
    empty: "No requests recorded for this key yet.",
    fetchPage: async ({ cursor, limit }) => {
      try {
        const answer = await api("GET", `/v1/keys/${encodeURIComponent(key.id)}/requests${query({ limit, cursor })}`);
        note.textContent =
          answer.kept === 0
            ? "The request log is off on this server (KEYWARD_RECENT_REQUESTS=0)."
            : `The latest ${num(answer.kept)} requests of each key are kept.`;
        return answer;
      } catch (error) {
        if (error instanceof ApiError && error.status === 404 && error.code === "ROUTE_NOT_FOUND") {
          note.textContent = "This Keyward version keeps no per-key request log.";
          return { data: [], next_cursor: null };
        }
        throw error;
      }
    },
    columns: [
      { label: "When", cell: (r) => timeEl(r.at, fmtTimeSeconds(r.at)) },
      { label: "Outcome", cell: (r) => h("code", { class: r.outcome === "VALID" ? "ok-text" : "warn-text" }, r.outcome) },
      { label: "Client address", cell: (r) => r.ip ?? "—" },
      { label: "Route or edge", cell: (r) => (r.route ? h("code", {}, r.route) : "—") },
      { label: "Missing scopes", cell: (r) => (r.missing_scopes?.length ? r.missing_scopes.join(", ") : "—") },
    ],
  });
  void list.reload();
  return h("div", {}, note, list.node);
}

const SECONDS = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const fmtTimeSeconds = (iso) => SECONDS.format(new Date(iso));

/** The latest audit events about this key (administrators). */
function recentAudit(key) {
  const slot = h("div");
  loadInto(slot, async () => {
    const events = await api("GET", `/v1/audit-events${query({ key_id: key.id, limit: 10 })}`);
    if (events.data.length === 0) return h("p", { class: "muted" }, "No audit events.");
    const [directory, keys] = await Promise.all([
      people(userIdsOf(events.data.flatMap((e) => [e.actor, e.target]))),
      lookupKeys(events.data.filter((e) => e.actor.type.endsWith("key")).map((e) => e.actor.id)),
    ]);
    return [
      dataTable({
        caption: "Recent audit events",
        rows: events.data,
        columns: [
          { label: "When", cell: (e) => timeEl(e.at) },
          { label: "Who", cell: (e) => whoEl(e.actor, directory, keys) },
          { label: "Action", cell: (e) => h("code", {}, e.action) },
        ],
      }),
      h("p", {}, h("a", { href: `#/audit?key=${encodeURIComponent(key.id)}` }, "All audit events of this key")),
    ];
  });
  return slot;
}

export async function keyDetailPage(id) {
  if (!/^key_[0-9A-Za-z]{16,40}$/.test(id)) throw new ApiError(404, { code: "RESOURCE_NOT_FOUND", detail: "no such key" });
  const key = await api("GET", `/v1/keys/${encodeURIComponent(id)}`);
  const mine = key.owner.type === "user" && key.owner.id === me().id;
  setSection(
    mine ? "keys" : key.owner.type === "application" ? "applications" : key.owner.type === "organization" ? "organizations" : "all-keys",
  );
  // A key of an organization: a member acts on it by their role there; a viewer only reads it.
  const organization =
    key.owner.type === "organization" && !isAdmin()
      ? await api("GET", `/v1/organizations/${encodeURIComponent(key.owner.id)}`).catch(() => null)
      : null;
  const readOnly = organization?.role === "viewer";
  const [predecessor, successor, requests, directory] = await Promise.all([
    maybeKey(key.rotated_from),
    maybeKey(key.replaced_by),
    key.environment === "sandbox" ? openRequests().catch(() => new Map()) : new Map(),
    people(userIdsOf([key.owner])).catch(() => new Map()),
  ]);
  const revealSlot = h("div", { class: "reveal" });
  // Redraws the page, but never under a key still on screen (its "I have stored it" redraws then).
  const reload = () => {
    if (!keyOnScreen()) navigate(location.hash);
  };
  const reveal = (panel) => revealSlot.replaceChildren(panel);
  const context = { requests, predecessor };
  const power = powerReasons(key.scopes, key.expires_at);
  const settings = section(
    "Settings",
    dl([
      ["Key", h("code", { class: "ref" }, key.ref)],
      ["Id", idChip(key.id)],
      ["Owner", whoEl(key.owner, directory)],
      ["Environment", key.environment],
      // An imported key (docs/migrating.md): its legacy format and its id in the system it came from.
      key.format?.startsWith("legacy:") ? ["Format", `legacy (${key.format.slice("legacy:".length)})`] : null,
      key.external_id ? ["External id", h("code", {}, key.external_id)] : null,
      ["Scopes", key.scopes.length > 0 ? key.scopes.join(", ") : "none"],
      ["State", stateBadges(keyState(key, context))],
      isPowerful(key) ? ["Powerful", power.join(", ")] : null,
      ["Created", timeEl(key.created_at)],
      ["Expires", key.expires_at ? h("span", {}, expiryEl(key), " · ", timeEl(key.expires_at)) : expiryEl(key)],
      [
        "Last used",
        key.last_used_at
          ? h("span", {}, timeEl(key.last_used_at), ` (${relative(key.last_used_at)})`, key.last_used_ip ? ` from ${key.last_used_ip}` : "")
          : "never",
      ],
      key.grace_ends_at && key.replaced_by ? ["Old key works until", timeEl(key.grace_ends_at)] : null,
      key.replaced_by ? ["Replaced by", keyLink(successor, key.replaced_by)] : null,
      key.rotated_from ? ["Rotated from", keyLink(predecessor, key.rotated_from)] : null,
      key.revoked_at ? ["Revoked", timeEl(key.revoked_at)] : null,
      key.revoked_reason ? ["Revoked because", key.revoked_reason] : null,
      key.grantable_scopes || key.grantable_environments
        ? [
            "May grant",
            `${(key.grantable_scopes ?? []).join(", ") || "no scopes"} in ${(key.grantable_environments ?? [key.environment]).join(" and ")}`,
          ]
        : null,
      ["Metadata", Object.keys(key.metadata).length > 0 ? h("pre", { class: "mono" }, JSON.stringify(key.metadata, null, 2)) : "none"],
    ]),
    h(
      "div",
      { class: "action-bar" },
      keyActions(key, {
        reveal,
        reload,
        context,
        details: false,
        detail: true,
        afterRevoke: async () => reload(),
        readOnly,
      }),
    ),
  );
  let edit = null;
  if (readOnly)
    edit = section(
      "Edit settings",
      h(
        "p",
        { class: "muted" },
        `As a viewer of ${organization.name ?? organization.id} you read its keys; its developers and admins change them.`,
      ),
    );
  else if (key.status === "revoked") edit = section("Edit settings", h("p", { class: "muted" }, "A revoked key cannot be changed."));
  else if (key.status === "awaiting_pickup" && !isAdmin())
    edit = section(
      "Edit settings",
      h("p", { class: "muted" }, "This production key is awaiting pickup: pick it up from My API keys first."),
    );
  else
    edit = keyForm({
      mode: "edit",
      key,
      onDone: (_updated, changed) => {
        toast(`Saved: ${changed.map((f) => f.replaceAll("_", " ")).join(", ")}`);
        reload();
      },
    });
  page(
    key.name,
    h("p", { class: "subtitle" }, h("code", { class: "ref" }, key.ref), " ", stateBadges(keyState(key, context))),
    revealSlot,
    settings,
    section("Limits", dl(limitPairs(key))),
    edit,
    section("Usage", usageTimeline({ params: { key_id: key.id }, title: `Requests with ${key.name}` })),
    section("Recent requests", requestLog(key)),
    isAdmin() ? section("Audit", recentAudit(key)) : null,
  );
}
