// Organizations (docs/organizations.md): owners of keys whose members, console users, manage them
// together by role. Administrators see every organization, create them and set the limits their
// keys share; a member sees the organizations they belong to, and each page offers only what
// their role there may do (the server decides again on every call).
import { usageTimeline } from "../components/chart.js";
import { idChip } from "../components/copy.js";
import { confirmDialog } from "../components/dialog.js";
import { filterForm, searchInput } from "../components/filters.js";
import { busy, field, formError, formErrors } from "../components/form.js";
import { keyForm, limitControls } from "../components/key-form.js";
import { keyList } from "../components/key-list.js";
import { secretPanel } from "../components/secret.js";
import { errorText, loadInto } from "../components/states.js";
import { apiPages, dataTable, pagedTable } from "../components/table.js";
import { ApiError, api, isAdmin, me } from "../lib/api.js";
import { dl, h, section, toast } from "../lib/dom.js";
import { askedSummary, badge, num, quotaText, rateText, timeEl } from "../lib/format.js";
import { keyEl, lookupKeys, people, userIdsOf, whoEl } from "../lib/people.js";
import { intro, navigate, page, setSection } from "../lib/router.js";
import { requestState } from "./my-keys.js";

const ORGANIZATION_ID = /^[A-Za-z0-9_.@:-]{1,128}$/;

export const ROLES = ["owner", "admin", "developer", "viewer"];
const ROLE_LABEL = { owner: "Owner", admin: "Admin", developer: "Developer", viewer: "Viewer" };
/** What the person looking may do, by their role. */
const YOU_MAY = {
  owner: "you manage its keys and every member, owners included",
  admin: "you manage all its keys, and its developers and viewers",
  developer: "you create keys and manage the ones you created; you read the others",
  viewer: "you read its keys, key requests and usage",
};
const ROLE_WHAT = {
  owner: "everything an admin may, and any member's role",
  admin: "all the organization's keys, and its developers and viewers",
  developer: "creates keys and manages the ones they created; reads the rest",
  viewer: "reads the keys, requests and usage",
};

/** Whom a role manages (as the server decides, src/core/organizations.ts): an owner anyone, an admin developers and viewers. */
const managesRole = (manager, role) => manager === "owner" || (manager === "admin" && (role === "developer" || role === "viewer"));

/** What the person looking may do with this organization. */
function powersOver(org) {
  const admin = isAdmin();
  const role = org.role ?? null;
  return {
    admin,
    role,
    rename: admin || role === "owner" || role === "admin",
    limits: admin,
    writeKeys: admin || (role !== null && role !== "viewer"),
    manages: (memberRole) => admin || (role !== null && managesRole(role, memberRole)),
    /** The roles this person may give. */
    grantable: admin ? ROLES : ROLES.filter((r) => role !== null && managesRole(role, r)),
  };
}

const roleBadge = (role) => (role ? badge(role === "viewer" ? "muted" : "active", ROLE_LABEL[role]) : h("span", { class: "muted" }, "—"));
const orgName = (org) => org.name ?? org.id;

/** The shared limits as [label, text] pairs. */
const sharedPairs = (limits) => [
  ["Rate limit", rateText(limits?.rate_limit ?? null)],
  ["Concurrency", limits?.concurrency ? `${num(limits.concurrency)} in flight` : "none"],
  ["Quota", quotaText(limits?.quota ?? null)],
];

const sharedSummary = (limits) => {
  if (!limits) return h("span", { class: "muted" }, "none");
  const parts = [];
  if (limits.rate_limit) parts.push(rateText(limits.rate_limit));
  if (limits.concurrency) parts.push(`${num(limits.concurrency)} in flight`);
  if (limits.quota) parts.push(quotaText(limits.quota));
  return parts.join(" · ");
};

const roleOptions = (roles) => roles.map((r) => [r, `${ROLE_LABEL[r]}: ${ROLE_WHAT[r]}`]);

// ---------------------------------------------------------------- the list

function createOrganizationForm() {
  const summary = formError();
  summary.tabIndex = -1;
  const id = h("input", { name: "id", maxlength: 128, autocomplete: "off", spellcheck: "false", placeholder: "acme" });
  const name = h("input", { name: "name", required: true, maxlength: 100, autocomplete: "off" });
  const limits = limitControls(null, { maxConcurrency: 100_000 });
  const fields = {
    name: field({ label: "Name", control: name, hint: "Up to 100 characters, like Acme Inc." }),
    id: field({
      label: "Id (optional)",
      control: id,
      hint: "Up to 128 letters, digits and _ . @ : - (no spaces). Empty: one is made up (org_…). It cannot change later.",
    }),
    ...limits.fields,
  };
  const errors = formErrors(fields, summary);
  const submit = h("button", { type: "submit" }, "Create organization");
  return h(
    "form",
    {
      class: "card",
      "aria-label": "New organization",
      novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        void busy(submit, async () => {
          errors.clear();
          const problems = [];
          const body = {};
          if (!name.value.trim()) problems.push({ field: "name", message: "Give the organization a name." });
          else body.name = name.value.trim();
          if (id.value.trim()) {
            if (ORGANIZATION_ID.test(id.value.trim())) body.id = id.value.trim();
            else problems.push({ field: "id", message: "Use only letters, digits and _ . @ : - (no spaces), up to 128." });
          }
          Object.assign(body, limits.read(problems));
          if (problems.length > 0) return errors.show(problems);
          try {
            const created = await api("POST", "/v1/organizations", body);
            toast(`${orgName(created)} created`);
            navigate(`#/organizations/${encodeURIComponent(created.id)}`);
          } catch (error) {
            if (error.status === 409) errors.show([{ field: "id", message: "An organization with this id exists already." }]);
            else errors.showError(error);
          }
        });
      },
    },
    h("h2", {}, "New organization"),
    h("div", { class: "form-grid" }, fields.name.node, fields.id.node),
    h(
      "details",
      { class: "more" },
      h("summary", {}, "Shared limits (optional)"),
      h("p", { class: "hint" }, "Limits every key of the organization draws from together, beside each key's own: the tighter one holds."),
      ...limits.grids(),
    ),
    summary,
    h("div", { class: "buttons-row" }, submit),
  );
}

export function organizationsPage() {
  const admin = isAdmin();
  const search = searchInput({ maxlength: 100 });
  let q = "";
  const list = pagedTable({
    label: "Organizations",
    caption: "Organizations",
    rowAttrs: (o) => ({ "data-organization-id": o.id }),
    empty: () =>
      q
        ? "No organization matches."
        : admin
          ? "No organizations yet: create one above."
          : "You belong to no organization yet: its owners or admins add you.",
    fetchPage: apiPages("/v1/organizations", () => (q ? { q } : {})),
    columns: [
      { label: "Name", cell: (o) => h("a", { href: `#/organizations/${encodeURIComponent(o.id)}` }, orgName(o)) },
      { label: "Id", cell: (o) => h("code", {}, o.id) },
      { label: admin ? "Your role" : "Role", cell: (o) => roleBadge(o.role) },
      { label: "Shared limits", cell: (o) => sharedSummary(o.shared_limits) },
      { label: "Status", cell: (o) => (o.disabled ? badge("disabled", "disabled") : badge("active", "active")) },
      { label: "Created", cell: (o) => timeEl(o.created_at) },
    ],
  });
  const apply = () => {
    q = search.value.trim();
    return list.reload();
  };
  void list.reload();
  page(
    "Organizations",
    intro(
      admin
        ? "Companies and teams that own keys together. Their members manage the keys by role; the limits you set are shared by all their keys."
        : "The organizations you belong to. What you may do with their keys depends on your role in each.",
    ),
    admin ? createOrganizationForm() : null,
    section(
      admin ? "All organizations" : "Your organizations",
      filterForm({
        label: "Find organizations",
        search,
        hint: "Part of the name or the id.",
        fields: [],
        onApply: apply,
        onClear: () => {
          search.value = "";
          return apply();
        },
      }),
      list.node,
    ),
  );
}

// ---------------------------------------------------------------- one organization

function renameForm(org, reload) {
  const summary = formError();
  const name = h("input", { name: "name", required: true, maxlength: 100, value: org.name ?? "", autocomplete: "off" });
  const fields = { name: field({ label: "Organization name", control: name, hint: "Up to 100 characters." }) };
  const errors = formErrors(fields, summary);
  const submit = h("button", { type: "submit", class: "secondary" }, "Rename");
  return h(
    "form",
    {
      "aria-label": "Rename the organization",
      novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        void busy(submit, async () => {
          errors.clear();
          const value = name.value.trim();
          if (!value) return errors.show([{ field: "name", message: "Give the organization a name." }]);
          if (value === org.name) return errors.show([{ field: "name", message: "This is its name already." }]);
          try {
            await api("PATCH", `/v1/organizations/${encodeURIComponent(org.id)}`, { name: value });
            toast(`Renamed to ${value}`);
            reload();
          } catch (error) {
            errors.showError(error);
          }
        });
      },
    },
    h("div", { class: "form-grid" }, fields.name.node),
    summary,
    h("div", { class: "buttons-row" }, submit),
  );
}

function sharedLimitsForm(org, reload) {
  const summary = formError();
  summary.tabIndex = -1;
  const limits = limitControls(org.shared_limits, { maxConcurrency: 100_000 });
  const errors = formErrors(limits.fields, summary);
  const submit = h("button", { type: "submit" }, "Save shared limits");
  return h(
    "form",
    {
      "aria-label": "Shared limits",
      novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        void busy(submit, async () => {
          errors.clear();
          const problems = [];
          const body = limits.read(problems);
          if (problems.length > 0) return errors.show(problems);
          const ok = await confirmDialog({
            title: `Change the shared limits of ${orgName(org)}`,
            impact: [
              `Rate limit: ${rateText(body.rate_limit)}; concurrency: ${body.concurrency ? num(body.concurrency) : "none"}; quota: ${quotaText(body.quota)}.`,
              "Every key of the organization draws from these together, from its next request, on every instance.",
              "A key's own limits still hold: whichever is tighter refuses first (429).",
            ],
            confirm: "Save shared limits",
          });
          if (!ok) return;
          try {
            await api("PATCH", `/v1/organizations/${encodeURIComponent(org.id)}`, body);
            toast("Shared limits saved");
            reload();
          } catch (error) {
            errors.showError(error);
          }
        });
      },
    },
    ...limits.grids(),
    summary,
    h("div", { class: "buttons-row" }, submit),
  );
}

function addMemberForm(org, powers, onAdded) {
  const summary = formError();
  const email = h("input", { type: "email", name: "email", required: true, maxlength: 320, autocomplete: "off" });
  const role = h(
    "select",
    { name: "role" },
    powers.grantable.map((r) => h("option", { value: r, selected: r === "developer" }, ROLE_LABEL[r])),
  );
  const fields = {
    email: field({ label: "Email", control: email, hint: "Someone who signs in to this console." }),
    role: field({
      label: "Role",
      control: role,
      hint: powers.grantable.map((r) => `${ROLE_LABEL[r]}: ${ROLE_WHAT[r]}.`).join(" "),
    }),
  };
  const errors = formErrors(fields, summary);
  const submit = h("button", { type: "submit" }, "Add member");
  return h(
    "form",
    {
      class: "add-member",
      "aria-label": "Add a member",
      novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        const form = event.currentTarget;
        void busy(submit, async () => {
          errors.clear();
          if (!email.value.trim() || !email.validity.valid)
            return errors.show([{ field: "email", message: "Enter an email address, like name@example.com." }]);
          try {
            const added = await api("POST", `/v1/organizations/${encodeURIComponent(org.id)}/members`, {
              email: email.value.trim(),
              role: role.value,
            });
            form.reset();
            toast(`${added.email} added as ${ROLE_LABEL[added.role].toLowerCase()}`);
            await onAdded();
          } catch (error) {
            if (error.status === 404 && error.code === "RESOURCE_NOT_FOUND")
              errors.show([
                {
                  field: "email",
                  message: powers.admin
                    ? "No one with this email uses the console: create them under Users first."
                    : "No one with this email uses the console: ask an administrator to invite them.",
                },
              ]);
            else if (error.status === 409)
              errors.show([{ field: "email", message: "They are a member already: change their role below." }]);
            else errors.showError(error);
          }
        });
      },
    },
    h("h3", {}, "Add a member"),
    h("div", { class: "form-grid" }, fields.email.node, fields.role.node),
    summary,
    h("div", { class: "buttons-row" }, submit),
  );
}

function membersSection(org, powers) {
  const slot = h("div");
  const base = `/v1/organizations/${encodeURIComponent(org.id)}/members`;
  const report = (error) => toast(errorText(error), { error: true });
  const self = me();

  const changeRole = (member) => async () => {
    const answer = await confirmDialog({
      title: `Change the role of ${member.email}`,
      text: `${member.email} is ${ROLE_LABEL[member.role].toLowerCase()} of ${orgName(org)}.`,
      impact: ["The new role holds from their next request.", "Keys they created stay with the organization."],
      fields: [{ name: "role", label: "New role", options: roleOptions(powers.grantable), value: member.role }],
      confirm: "Change role",
    });
    if (!answer || answer.role === member.role) return;
    try {
      await api("PATCH", `${base}/${encodeURIComponent(member.user_id)}`, { role: answer.role });
      toast(`${member.email} is now ${ROLE_LABEL[answer.role].toLowerCase()}`);
      await reload();
    } catch (error) {
      report(error);
    }
  };

  const remove = (member, leaving) => async () => {
    const ok = await confirmDialog({
      title: leaving ? `Leave ${orgName(org)}` : `Remove ${member.email} from ${orgName(org)}`,
      impact: leaving
        ? [
            `You lose access to ${orgName(org)}'s keys, key requests and usage at once.`,
            "The keys you created stay with the organization and keep working.",
            "Only its owners, admins or a Keyward administrator can add you again.",
          ]
        : [
            `${member.email} loses access to ${orgName(org)}'s keys, key requests and usage at once.`,
            "The keys they created stay with the organization and keep working: revoke any they should no longer hold.",
          ],
      confirm: leaving ? "Leave organization" : "Remove member",
      danger: true,
    });
    if (!ok) return;
    try {
      await api("DELETE", `${base}/${encodeURIComponent(member.user_id)}`);
      if (leaving) {
        toast(`You left ${orgName(org)}`);
        navigate("#/organizations");
        return;
      }
      toast(`${member.email} removed`);
      await reload();
    } catch (error) {
      report(error);
    }
  };

  const reload = loadInto(slot, async () => {
    const { data } = await api("GET", base);
    const owners = data.filter((m) => m.role === "owner").length;
    if (data.length === 0) return h("p", { class: "muted", "data-empty": "" }, "No members yet.");
    return dataTable({
      caption: `Members of ${orgName(org)}`,
      rows: data,
      rowAttrs: (m) => ({ "data-member-id": m.user_id }),
      columns: [
        {
          label: "Member",
          cell: (m) => {
            const label = m.email ?? m.user_id;
            return [
              powers.admin ? h("a", { href: `#/users/${m.user_id}` }, label) : label,
              m.user_id === self.id ? h("span", { class: "muted small" }, " (you)") : null,
            ];
          },
        },
        { label: "Role", cell: (m) => roleBadge(m.role) },
        { label: "Added", cell: (m) => timeEl(m.added_at) },
        {
          label: "",
          srLabel: "Actions",
          className: "actions",
          cell: (m) => {
            const actions = [];
            const them = m.email ?? m.user_id;
            if (m.user_id !== self.id && powers.manages(m.role)) {
              actions.push(
                h(
                  "button",
                  { type: "button", class: "link", "aria-label": `Change role of ${them}`, onclick: changeRole(m) },
                  "Change role",
                ),
                h(
                  "button",
                  { type: "button", class: "link danger-link", "aria-label": `Remove ${them}`, onclick: remove(m, false) },
                  "Remove",
                ),
              );
            }
            if (m.user_id === self.id) {
              if (m.role === "owner" && owners === 1)
                actions.push(h("span", { class: "muted small" }, "The only owner: make someone else owner before you leave."));
              else actions.push(h("button", { type: "button", class: "link danger-link", onclick: remove(m, true) }, "Leave organization"));
            }
            return h("span", { class: "actions" }, actions);
          },
        },
      ],
    });
  });
  const canAdd = powers.grantable.length > 0;
  return {
    node: h("div", {}, slot, canAdd ? addMemberForm(org, powers, () => reload()) : null),
  };
}

function requestsSection(org) {
  const self = me();
  const revealSlot = h("div", { class: "reveal" });
  const list = pagedTable({
    label: "Production key requests",
    caption: `Production key requests of ${orgName(org)}`,
    empty: "No production key requests.",
    pageSize: 20,
    rowAttrs: (r) => ({ "data-request-id": r.id }),
    fetchPage: apiPages(
      "/v1/key-requests",
      () => ({ owner_type: "organization", owner_id: org.id }),
      async (rows) => {
        const [keys, directory] = await Promise.all([
          lookupKeys(rows.map((r) => r.sandbox_key_id)),
          people(userIdsOf(rows.map((r) => r.requested_by))),
        ]);
        return { keys, directory };
      },
    ),
    columns: [
      { label: "Sandbox key", cell: (r, ctx) => keyEl(r.sandbox_key_id, ctx.keys ?? new Map()) },
      { label: "Asks for", cell: (r) => askedSummary(r.asked) },
      { label: "Asked by", cell: (r, ctx) => whoEl(r.requested_by, ctx.directory ?? new Map()) },
      { label: "Status", cell: (r) => requestState(r) },
      { label: "Asked", cell: (r) => timeEl(r.created_at) },
      {
        label: "",
        srLabel: "Actions",
        className: "actions",
        cell: (r) => {
          if (r.status === "approved" && !r.claimed_at && r.requested_by?.type === "user" && r.requested_by.id === self.id)
            return h(
              "button",
              {
                type: "button",
                onclick: async (event) => {
                  const button = event.currentTarget;
                  void busy(button, async () => {
                    try {
                      const claimed = await api("POST", `/v1/key-requests/${encodeURIComponent(r.id)}/claim`);
                      revealSlot.replaceChildren(secretPanel(`The production key “${claimed.name}” of ${orgName(org)}`, claimed.key, null));
                      await list.refresh();
                    } catch (error) {
                      toast(errorText(error), { error: true });
                    }
                  });
                },
              },
              "Get production key",
            );
          if (r.status === "pending" && isAdmin()) return h("a", { href: "#/requests?status=pending" }, "Review");
          return r.issued_key_id && r.claimed_at ? h("a", { href: `#/keys/${r.issued_key_id}` }, "Issued key") : "";
        },
      },
    ],
  });
  void list.reload();
  return { node: h("div", {}, revealSlot, list.node), reload: () => list.refresh() };
}

export async function organizationPage(id) {
  if (!ORGANIZATION_ID.test(id)) throw new ApiError(404, { code: "RESOURCE_NOT_FOUND", detail: "no such organization" });
  const org = await api("GET", `/v1/organizations/${encodeURIComponent(id)}`);
  setSection("organizations");
  const powers = powersOver(org);
  const reload = () => navigate(location.hash.split("?")[0]);
  const revealSlot = h("div", { class: "reveal" });
  const reveal = (panel) => revealSlot.replaceChildren(panel);
  const requests = requestsSection(org);
  const keys = keyList({
    base: { owner_type: "organization", owner_id: org.id },
    label: `Keys of ${orgName(org)}`,
    empty: powers.writeKeys ? "No keys yet: create one above." : "No keys yet.",
    reveal,
    readOnly: !powers.writeKeys,
    onChange: () => requests.reload(),
  });
  const members = membersSection(org, powers);
  const roleNote = powers.admin
    ? null
    : h(
        "p",
        { class: "muted", role: "note" },
        `You are ${/^[ao]/.test(powers.role) ? "an" : "a"} ${powers.role} here: ${YOU_MAY[powers.role]}.`,
        powers.writeKeys ? " Keys you create follow the same rules as your own: production keys are requested and approved." : "",
      );
  page(
    orgName(org),
    h(
      "p",
      { class: "subtitle" },
      h("code", {}, org.id),
      " ",
      org.disabled ? badge("disabled", "disabled") : badge("active", "active"),
      org.role ? [" ", roleBadge(org.role)] : null,
    ),
    roleNote,
    section(
      "Organization",
      dl([
        ["Name", org.name ?? h("span", { class: "muted" }, "none")],
        ["Id", idChip(org.id)],
        ["Your role", org.role ? ROLE_LABEL[org.role] : powers.admin ? "Keyward administrator" : "—"],
        ["Status", org.disabled ? "disabled: its keys do not work" : "active"],
        ["Created", timeEl(org.created_at)],
      ]),
      powers.rename ? renameForm(org, reload) : null,
    ),
    section(
      "Shared limits",
      h("p", { class: "hint" }, "Every key of the organization draws from these together, beside its own limits: the tighter one holds."),
      powers.limits
        ? sharedLimitsForm(org, reload)
        : [dl(sharedPairs(org.shared_limits)), h("p", { class: "muted small" }, "Set by Keyward administrators.")],
    ),
    section("Members", members.node),
    powers.writeKeys
      ? keyForm({
          mode: "create",
          label: `Create a key for ${orgName(org)}`,
          owner: () => ({ type: "organization", id: org.id }),
          onDone: async (created) => {
            reveal(secretPanel(`New key “${created.name}” of ${orgName(org)}`, created.key, null));
            await keys.reload();
          },
        })
      : null,
    revealSlot,
    section("Keys", keys.node),
    section("Production key requests", requests.node),
    section("Usage", usageTimeline({ params: { owner: `organization:${org.id}` }, title: `Requests with keys of ${orgName(org)}` })),
  );
}
