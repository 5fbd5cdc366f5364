// Users (administrators): create people, find them, disable and enable them (with what that does
// to their keys said first).
import { idChip } from "../components/copy.js";
import { confirmDialog } from "../components/dialog.js";
import { filterField, filterForm, searchInput } from "../components/filters.js";
import { busy, field, formError, formErrors, newPasswordInput, passwordProblem } from "../components/form.js";
import { linkPanel } from "../components/link-panel.js";
import { pagedTable } from "../components/table.js";
import { api, me, query } from "../lib/api.js";
import { h, section, toast, uid } from "../lib/dom.js";
import { badge, num, plural, timeEl } from "../lib/format.js";
import { forgetPeople } from "../lib/people.js";
import { intro, page } from "../lib/router.js";

/** How many working keys a user holds: {count, more} (more: at least that many, where the API cannot count). */
export async function liveKeyCount(userId) {
  const filter = { owner_type: "user", owner_id: userId, status: "active" };
  const first = await api("GET", `/v1/keys${query({ ...filter, limit: 200, include_total: true })}`);
  if (typeof first.total === "number") return { count: first.total, more: false };
  let count = first.data.length;
  let cursor = first.next_cursor;
  // Counted page by page up to 1,000; past that "1,000 or more".
  while (cursor && count < 1000) {
    const page = await api("GET", `/v1/keys${query({ ...filter, limit: 200, cursor })}`);
    count += page.data.length;
    cursor = page.next_cursor;
  }
  return { count, more: Boolean(cursor) };
}

/** A new invite (for someone who has not chosen a password) or password-reset link; shows it with `show(panel)`. */
export async function issueLink(user, purpose, show) {
  const ok = await confirmDialog(
    purpose === "invite"
      ? {
          title: `New invite link for ${user.email}`,
          impact: ["Any earlier invite link for them stops working.", "The new link works once, for 72 hours."],
          confirm: "Create invite link",
        }
      : {
          title: `Password reset link for ${user.email}`,
          impact: [
            "The link lets whoever opens it choose a new password for this account: send it to them only.",
            "It works once, for 1 hour; their current password keeps working until it is used.",
          ],
          confirm: "Create reset link",
        },
  );
  if (!ok) return;
  try {
    const link = await api("POST", `/v1/users/${user.id}/${purpose === "invite" ? "invite" : "password-reset"}`);
    show(linkPanel(link, user.email));
  } catch (error) {
    toast(error.message, { error: true });
  }
}

/** Requires (or stops requiring) a new password at the person's next request. */
export async function requirePassword(user, required) {
  const ok = await confirmDialog({
    title: required ? `Require a new password from ${user.email}` : `Stop requiring a new password from ${user.email}`,
    impact: required
      ? ["At their next request they must choose a new password before they can do anything else.", "Their keys keep working."]
      : ["They can use the dashboard again with their current password."],
    confirm: required ? "Require new password" : "Stop requiring it",
  });
  if (!ok) return false;
  try {
    await api("PATCH", `/v1/users/${user.id}`, { must_change_password: required });
    forgetPeople();
    toast(required ? "They will have to choose a new password" : "No new password required");
    return true;
  } catch (error) {
    toast(error.message, { error: true });
    return false;
  }
}

/** The state of a person's account, in words. */
export function userBadges(u) {
  return [
    badge(u.disabled ? "disabled" : "active", u.disabled ? "disabled" : "active"),
    u.password_set === false ? [" ", badge("pending", "invited — no password yet")] : null,
    u.must_change_password ? [" ", badge("warn", "must choose a new password")] : null,
  ];
}

/** Disables or enables a user, after saying what it does. Resolves true when done. */
export async function toggleUser(user) {
  const disabling = !user.disabled;
  let impact;
  if (disabling) {
    const { count, more } = await liveKeyCount(user.id);
    impact = [
      `${user.email} is signed out everywhere and cannot sign in.`,
      count === 0
        ? "They hold no working keys."
        : `${more ? `${num(count)} or more keys` : plural(count, "key")} will stop working at once (requests get 401 DISABLED).`,
      "Enabling the user again makes their keys work again.",
    ];
  } else {
    impact = [`${user.email} can sign in again.`, "Their keys that were working before work again (revoked and expired ones stay so)."];
  }
  const ok = await confirmDialog({
    title: disabling ? `Disable ${user.email}` : `Enable ${user.email}`,
    impact,
    confirm: disabling ? "Disable user" : "Enable user",
    danger: disabling,
  });
  if (!ok) return false;
  try {
    await api("PATCH", `/v1/users/${user.id}`, { disabled: disabling });
    forgetPeople();
    toast(disabling ? `${user.email} disabled` : `${user.email} enabled`);
    return true;
  } catch (error) {
    toast(error.message, { error: true });
    return false;
  }
}

function createUserForm(onCreated, showLink) {
  const summary = formError();
  const email = h("input", { type: "email", name: "email", required: true, maxlength: 320, autocomplete: "off" });
  const how = uid("how");
  const inviteRadio = h("input", { type: "radio", name: how, value: "invite", checked: true });
  const passwordRadio = h("input", { type: "radio", name: how, value: "password" });
  const howLegend = uid("legend");
  const howGroup = h(
    "fieldset",
    { class: "radios", "aria-labelledby": howLegend },
    h("legend", { id: howLegend }, "How they get in"),
    h("label", {}, inviteRadio, "Invite link: they choose their password"),
    h("label", {}, passwordRadio, "Set an initial password"),
  );
  const password = newPasswordInput("password", { required: false });
  const role = h("select", { name: "role" }, h("option", { value: "member" }, "Member"), h("option", { value: "admin" }, "Administrator"));
  const fields = {
    email: field({ label: "Email", control: email }),
    how: field({ control: howGroup, group: true, hint: "An invite link works once, for 72 hours; you send it to them." }),
    password: field({
      label: "Initial password",
      control: password,
      hint: "12 to 256 characters. Give it to them privately; they can change it under their account.",
    }),
    role: field({ label: "Role", control: role, hint: "Members manage their own keys; administrators manage everything." }),
  };
  const sync = () => {
    fields.password.node.hidden = !passwordRadio.checked;
  };
  inviteRadio.addEventListener("change", sync);
  passwordRadio.addEventListener("change", sync);
  sync();
  const errors = formErrors(fields, summary);
  const submit = h("button", { type: "submit" }, "Create user");
  return h(
    "form",
    {
      class: "card",
      "aria-label": "Create a user",
      novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        const form = event.currentTarget;
        void busy(submit, async () => {
          errors.clear();
          const problems = [];
          if (!email.value.trim() || !email.validity.valid)
            problems.push({ field: "email", message: "Enter an email address, like name@example.com." });
          const tooShortOrLong = passwordRadio.checked ? passwordProblem("password", password.value) : null;
          if (tooShortOrLong) problems.push(tooShortOrLong);
          if (problems.length > 0) return errors.show(problems);
          try {
            const body = { email: email.value.trim(), role: role.value, ...(passwordRadio.checked ? { password: password.value } : {}) };
            const user = await api("POST", "/v1/users", body);
            form.reset();
            sync();
            toast(`${user.email} created`);
            if (user.invite) showLink(linkPanel(user.invite, user.email));
            onCreated(user);
          } catch (error) {
            if (error.status === 409) errors.show([{ field: "email", message: "A user with this email already exists." }]);
            else errors.showError(error);
          }
        });
      },
    },
    h("h2", {}, "Create a user"),
    h("div", { class: "form-grid" }, fields.email.node, fields.role.node, fields.how.node, fields.password.node),
    summary,
    h("div", { class: "buttons-row" }, submit),
  );
}

export function usersPage() {
  const linkSlot = h("div", { class: "reveal" });
  const search = searchInput({ maxlength: 320 });
  const role = h(
    "select",
    { name: "role", id: uid("role") },
    [
      ["", "Any role"],
      ["admin", "Administrators"],
      ["member", "Members"],
    ].map(([v, l]) => h("option", { value: v }, l)),
  );
  const state = h(
    "select",
    { name: "state", id: uid("state") },
    [
      ["", "Any status"],
      ["false", "Active"],
      ["true", "Disabled"],
    ].map(([v, l]) => h("option", { value: v }, l)),
  );
  /** The filters the list was drawn with, and the number of matches from its first page. */
  let filters = {};
  let total = null;
  const filtering = () => Object.keys(filters).length > 0;
  const list = pagedTable({
    label: "Users",
    caption: "Users",
    rowAttrs: (u) => ({ "data-user-id": u.id }),
    empty: () => [
      h("p", { "data-empty": "" }, filtering() ? "No users match." : "No users."),
      filtering() ? h("button", { type: "button", class: "secondary", onclick: () => void clear() }, "Clear filters") : null,
    ],
    // Searched, filtered and paged by the server (docs/api.md): the count is asked with the first page only.
    fetchPage: async ({ cursor, limit }) => {
      const page = await api("GET", `/v1/users${query({ ...filters, limit, cursor, include_total: cursor ? undefined : true })}`);
      if (!cursor) total = typeof page.total === "number" ? page.total : null;
      return { ...page, total: total ?? undefined };
    },
    columns: [
      {
        label: "Email",
        cell: (u) =>
          h("span", {}, h("a", { href: `#/users/${u.id}` }, u.email), u.name ? h("span", { class: "block small" }, u.name) : null),
      },
      { label: "Role", cell: (u) => (u.role === "admin" ? "administrator" : "member") },
      { label: "Status", cell: (u) => userBadges(u) },
      { label: "Created", cell: (u) => timeEl(u.created_at) },
      { label: "Id", cell: (u) => idChip(u.id) },
      {
        label: "",
        className: "actions",
        cell: (u) =>
          u.id === me().id
            ? h("span", { class: "muted small" }, "you")
            : h(
                "span",
                { class: "actions" },
                u.password_set === false
                  ? h(
                      "button",
                      {
                        type: "button",
                        class: "link",
                        "aria-label": `New invite link for ${u.email}`,
                        onclick: () => issueLink(u, "invite", (panel) => linkSlot.replaceChildren(panel)),
                      },
                      "New invite link",
                    )
                  : null,
                h(
                  "button",
                  {
                    type: "button",
                    class: "link",
                    "aria-label": `${u.disabled ? "Enable" : "Disable"} ${u.email}`,
                    onclick: async () => {
                      if (await toggleUser(u)) await list.refresh();
                    },
                  },
                  u.disabled ? "Enable" : "Disable",
                ),
              ),
      },
    ],
  });
  const apply = () => {
    const q = search.value.trim();
    filters = { ...(q ? { q } : {}), ...(role.value ? { role: role.value } : {}), ...(state.value ? { disabled: state.value } : {}) };
    return list.reload();
  };
  const clear = () => {
    search.value = "";
    role.value = "";
    state.value = "";
    return apply();
  };
  for (const control of [role, state]) control.addEventListener("change", () => void apply());
  void apply();
  page(
    "Users",
    intro("People who sign in to this dashboard. Disabling someone signs them out and stops their keys."),
    createUserForm(
      () => void list.reload(),
      (panel) => linkSlot.replaceChildren(panel),
    ),
    linkSlot,
    section(
      "People",
      filterForm({
        label: "Find users",
        search,
        hint: "Part of the email, or the user's id.",
        fields: [filterField("Role", role), filterField("Status", state)],
        onApply: apply,
        onClear: clear,
      }),
      list.node,
    ),
  );
}
