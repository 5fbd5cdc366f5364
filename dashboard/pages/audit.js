// The audit log (administrators): every management action, newest first, filtered by who did it
// (an email), the key or user it touched, the action and a time window.
import { field, formError, formErrors } from "../components/form.js";
import { hashParams } from "../components/key-list.js";
import { apiPages, pagedTable } from "../components/table.js";
import { h, section } from "../lib/dom.js";
import { timeEl } from "../lib/format.js";
import { keyEl, lookupKeys, people, userByEmail, userIdsOf, whoEl } from "../lib/people.js";
import { intro, page } from "../lib/router.js";

const ACTIONS = [
  "key.created",
  "key.updated",
  "key.enabled",
  "key.disabled",
  "key.rotated",
  "key.revoked",
  "key.leaked",
  "key.grace_ended",
  "key_request.created",
  "key_request.approved",
  "key_request.rejected",
  "key_request.claimed",
  "user.created",
  "user.disabled",
  "user.enabled",
  "user.password_changed",
  "user.invited",
  "user.invite_accepted",
  "user.password_reset_issued",
  "user.password_reset",
  "user.link_email_sent",
  "user.link_email_failed",
  "user.password_change_required",
  "user.password_change_waived",
  "session.signed_in",
  "session.sign_in_failed",
  "owner.disabled",
  "owner.enabled",
  "webhook.created",
  "webhook.deleted",
];

/** `2026-12-03` (a local date) → the ISO instant it starts, or of the next day for `until`. */
const dayStart = (value, next = false) => {
  if (!value) return undefined;
  const d = new Date(`${value}T00:00:00`);
  if (next) d.setDate(d.getDate() + 1);
  return d.toISOString();
};

function detailsCell(e) {
  const value = e.details ?? e.changes;
  if (!value) return "";
  const text = JSON.stringify(value);
  if (text.length <= 80) return h("code", { class: "small" }, text);
  return h("details", {}, h("summary", {}, "Show"), h("pre", { class: "mono small" }, JSON.stringify(value, null, 2)));
}

export function auditPage() {
  const params = hashParams();
  const summary = formError();
  const actor = h("input", {
    name: "actor",
    value: params.get("actor") ?? params.get("actor_id") ?? "",
    maxlength: 320,
    autocomplete: "off",
  });
  const target = h("input", {
    name: "key",
    value: params.get("key") ?? params.get("key_id") ?? "",
    maxlength: 128,
    autocomplete: "off",
    spellcheck: "false",
  });
  const action = h(
    "select",
    { name: "action" },
    h("option", { value: "" }, "Any action"),
    ACTIONS.map((a) => h("option", { value: a, selected: params.get("action") === a }, a)),
  );
  const since = h("input", { type: "date", name: "since", value: params.get("since") ?? "" });
  const until = h("input", { type: "date", name: "until", value: params.get("until") ?? "" });
  const fields = {
    actor: field({ label: "Who", control: actor, hint: "An email, or a user or key id." }),
    key: field({ label: "Key or user", control: target, hint: "The id of the key or user acted on." }),
    action: field({ label: "Action", control: action }),
    since: field({ label: "From", control: since }),
    until: field({ label: "To", control: until }),
  };
  const errors = formErrors(fields, summary);
  /** The API filters; null when the email matches nobody. */
  let filters = {};
  const resolve = async () => {
    errors.clear();
    const out = {};
    const who = actor.value.trim();
    if (who.includes("@")) {
      const user = await userByEmail(who);
      if (!user) {
        errors.show([{ field: "actor", message: `No user has the email ${who}.` }]);
        return null;
      }
      out.actor_id = user.id;
    } else if (who) out.actor_id = who;
    if (target.value.trim()) out.key_id = target.value.trim();
    if (action.value) out.action = action.value;
    if (since.value) out.since = dayStart(since.value);
    if (until.value) out.until = dayStart(until.value, true);
    if (since.value && until.value && since.value > until.value) {
      errors.show([{ field: "until", message: "Choose a day on or after the first one." }]);
      return null;
    }
    return out;
  };
  const list = pagedTable({
    label: "Audit events",
    caption: "Audit events",
    empty: "No events match.",
    fetchPage: async (args) => {
      if (!filters) return { data: [], next_cursor: null };
      return apiPages(
        "/v1/audit-events",
        () => filters,
        async (rows) => {
          const ids = rows.flatMap((e) => [e.actor.type.endsWith("key") ? e.actor.id : null, e.target.type === "key" ? e.target.id : null]);
          const [directory, keys] = await Promise.all([
            people(userIdsOf(rows.flatMap((e) => [e.actor, e.target]))),
            lookupKeys(ids.filter(Boolean)),
          ]);
          return { directory, keys };
        },
      )(args);
    },
    columns: [
      { label: "When", cell: (e) => timeEl(e.at) },
      { label: "Who", cell: (e, ctx) => whoEl(e.actor, ctx.directory, ctx.keys) },
      { label: "Action", cell: (e) => h("code", {}, e.action) },
      {
        label: "Target",
        cell: (e, ctx) => (e.target.type === "key" ? keyEl(e.target.id, ctx.keys) : whoEl(e.target, ctx.directory, ctx.keys)),
      },
      { label: "From", cell: (e) => e.ip ?? "—" },
      { label: "Details", cell: (e) => detailsCell(e) },
    ],
  });
  const apply = async () => {
    filters = await resolve();
    const next = new URLSearchParams();
    for (const [name, control] of [
      ["actor", actor],
      ["key", target],
      ["action", action],
      ["since", since],
      ["until", until],
    ])
      if (control.value.trim()) next.set(name, control.value.trim());
    history.replaceState(null, "", `#/audit${next.size > 0 ? `?${next}` : ""}`);
    await list.reload();
  };
  page(
    "Audit log",
    intro("Every management action, newest first: keys, requests, people and sign-ins."),
    h(
      "form",
      {
        class: "card",
        role: "search",
        "aria-label": "Filter the audit log",
        novalidate: true,
        onsubmit: (event) => {
          event.preventDefault();
          void apply();
        },
      },
      h(
        "div",
        { class: "form-grid" },
        Object.values(fields).map((f) => f.node),
      ),
      summary,
      h("div", { class: "buttons-row" }, h("button", { type: "submit" }, "Filter")),
    ),
    section("Events", list.node),
  );
  void apply();
}
