// One person (administrators): who they are, their keys, their production key requests, their
// usage and what they did recently.
import { usageTimeline } from "../components/chart.js";
import { idChip } from "../components/copy.js";
import { keyList } from "../components/key-list.js";
import { loadInto } from "../components/states.js";
import { dataTable } from "../components/table.js";
import { ApiError, api, listAll, me, query } from "../lib/api.js";
import { dl, h, section } from "../lib/dom.js";
import { askedSummary, timeEl } from "../lib/format.js";
import { keyEl, lookupKeys, people, whoEl } from "../lib/people.js";
import { navigate, page, setSection } from "../lib/router.js";
import { requestState } from "./my-keys.js";
import { issueLink, requirePassword, toggleUser, userBadges } from "./users.js";

export async function userDetailPage(id) {
  if (!/^usr_[0-9A-Za-z]{16,40}$/.test(id)) throw new ApiError(404, { code: "RESOURCE_NOT_FOUND", detail: "no such user" });
  const user = await api("GET", `/v1/users/${encodeURIComponent(id)}`);
  setSection("users");
  const revealSlot = h("div", { class: "reveal" });
  const keys = keyList({
    base: { owner_type: "user", owner_id: user.id },
    label: `Keys of ${user.email}`,
    empty: "No keys.",
    reveal: (panel) => revealSlot.replaceChildren(panel),
  });
  const requestSlot = h("div");
  loadInto(requestSlot, async () => {
    const { data, complete } = await listAll("/v1/key-requests", {}, 600);
    const theirs = data.filter((r) => r.owner.type === "user" && r.owner.id === user.id);
    if (theirs.length === 0)
      return h("p", { class: "muted" }, complete ? "No production key requests." : "None among the latest 600 requests.");
    const lookup = await lookupKeys(theirs.map((r) => r.sandbox_key_id));
    return dataTable({
      caption: "Production key requests",
      rows: theirs,
      rowAttrs: (r) => ({ "data-request-id": r.id }),
      columns: [
        { label: "Sandbox key", cell: (r) => keyEl(r.sandbox_key_id, lookup) },
        { label: "Asks for", cell: (r) => askedSummary(r.asked) },
        { label: "Status", cell: (r) => requestState(r) },
        { label: "Asked", cell: (r) => timeEl(r.created_at) },
      ],
    });
  });
  const auditSlot = h("div");
  loadInto(auditSlot, async () => {
    const [byThem, aboutThem, directory] = await Promise.all([
      api("GET", `/v1/audit-events${query({ actor_id: user.id, limit: 20 })}`),
      api("GET", `/v1/audit-events${query({ key_id: user.id, limit: 20 })}`),
      people(),
    ]);
    const events = [...byThem.data, ...aboutThem.data.filter((e) => !byThem.data.some((b) => b.id === e.id))]
      .sort((a, b) => (a.at < b.at ? 1 : -1))
      .slice(0, 20);
    if (events.length === 0) return h("p", { class: "muted" }, "No audit events.");
    return [
      dataTable({
        caption: "Recent audit events",
        rows: events,
        columns: [
          { label: "When", cell: (e) => timeEl(e.at) },
          { label: "Who", cell: (e) => whoEl(e.actor, directory) },
          { label: "Action", cell: (e) => h("code", {}, e.action) },
          { label: "Target", cell: (e) => (e.target.type === "key" ? h("code", {}, e.target.id) : whoEl(e.target, directory)) },
          { label: "From", cell: (e) => e.ip ?? "—" },
        ],
      }),
      h("p", {}, h("a", { href: `#/audit?actor=${encodeURIComponent(user.email)}` }, `Everything ${user.email} did`)),
    ];
  });
  const self = user.id === me().id;
  const linkSlot = h("div", { class: "reveal" });
  const reload = () => navigate(location.hash);
  const button = (label, cls, onclick) => h("button", { type: "button", class: cls, onclick }, label);
  page(
    user.email,
    section(
      "Person",
      dl([
        ["Email", user.email],
        user.name ? ["Name", user.name] : null,
        ["Role", user.role === "admin" ? "administrator" : "member"],
        ["Status", userBadges(user)],
        ["Created", timeEl(user.created_at)],
        ["Id", idChip(user.id)],
      ]),
      self
        ? h("p", { class: "muted" }, "This is you. Change your password under ", h("a", { href: "#/account" }, "your account"), ".")
        : h(
            "div",
            { class: "action-bar buttons-row" },
            user.password_set === false
              ? button("New invite link", "secondary", () => issueLink(user, "invite", (panel) => linkSlot.replaceChildren(panel)))
              : button("Password reset link", "secondary", () => issueLink(user, "reset", (panel) => linkSlot.replaceChildren(panel))),
            user.password_set === false
              ? null
              : button(user.must_change_password ? "Stop requiring a new password" : "Require a new password", "secondary", async () => {
                  if (await requirePassword(user, !user.must_change_password)) reload();
                }),
            button(user.disabled ? "Enable user" : "Disable user", user.disabled ? "" : "danger", async () => {
              if (await toggleUser(user)) reload();
            }),
          ),
    ),
    linkSlot,
    revealSlot,
    section("Keys", keys.node),
    section("Production key requests", requestSlot),
    section(
      "Sessions",
      h("p", { class: "muted" }, "The API does not list a person's sessions. Disabling the user ends all of them at once."),
    ),
    section("Usage", usageTimeline({ params: { owner: `user:${user.id}` }, title: `Requests with keys of ${user.email}` })),
    section("Recent activity", auditSlot),
  );
}
