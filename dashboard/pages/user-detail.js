// One person (administrators): who they are, their keys, their production key requests, their
// usage and what they did recently.
import { usageTimeline } from "../components/chart.js";
import { idChip } from "../components/copy.js";
import { confirmDialog } from "../components/dialog.js";
import { keyList } from "../components/key-list.js";
import { sessionTable } from "../components/session-list.js";
import { loadInto } from "../components/states.js";
import { apiPages, dataTable, pagedTable } from "../components/table.js";
import { ApiError, api, me, query } from "../lib/api.js";
import { dl, h, section, toast } from "../lib/dom.js";
import { askedSummary, plural, timeEl } from "../lib/format.js";
import { keyEl, lookupKeys, people, userIdsOf, whoEl } from "../lib/people.js";
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
  // This person's requests, asked of the server by owner and read page by page.
  const requests = pagedTable({
    label: "Production key requests",
    caption: "Production key requests",
    empty: "No production key requests.",
    pageSize: 20,
    rowAttrs: (r) => ({ "data-request-id": r.id }),
    fetchPage: apiPages(
      "/v1/key-requests",
      () => ({ owner_type: "user", owner_id: user.id }),
      async (rows) => ({ keys: await lookupKeys(rows.map((r) => r.sandbox_key_id)) }),
    ),
    columns: [
      { label: "Sandbox key", cell: (r, ctx) => keyEl(r.sandbox_key_id, ctx.keys ?? new Map()) },
      { label: "Asks for", cell: (r) => askedSummary(r.asked) },
      { label: "Status", cell: (r) => requestState(r) },
      { label: "Asked", cell: (r) => timeEl(r.created_at) },
    ],
  });
  void requests.reload();
  const sessionSlot = h("div");
  const sessionsPath = `/v1/users/${encodeURIComponent(user.id)}/sessions`;
  const endSessions = async (sessions, one) => {
    const count = one ? 1 : sessions.length;
    const includesMine = (one ? [one] : sessions).some((s) => s.current);
    const ok = await confirmDialog({
      title: one ? `End a session of ${user.email}` : `End all sessions of ${user.email}`,
      impact: [
        `${plural(count, "session")} will be signed out${one?.ip ? ` (the one from ${one.ip})` : ""}.`,
        includesMine
          ? "That includes this session: you will be signed out too."
          : `${user.email} can sign in again; their keys keep working.`,
      ],
      confirm: one ? "End session" : "End all sessions",
      danger: true,
    });
    if (!ok) return;
    try {
      const { ended } = await api("DELETE", one ? `${sessionsPath}/${encodeURIComponent(one.id)}` : sessionsPath);
      toast(`${plural(ended, "session")} ended`);
    } catch (error) {
      toast(error.message, { error: true });
    }
    if (!includesMine) await reloadSessions();
  };
  const reloadSessions = loadInto(sessionSlot, async () => {
    const { data } = await api("GET", sessionsPath);
    if (data.length === 0)
      return h("p", { class: "muted", "data-empty": "" }, "No live sessions: they are not signed in to the dashboard.");
    return [
      sessionTable({ sessions: data, caption: `Sessions of ${user.email}`, end: (s) => endSessions(data, s) }),
      h(
        "div",
        { class: "buttons-row" },
        h("button", { type: "button", class: "danger", onclick: () => endSessions(data, null) }, "End all sessions"),
      ),
    ];
  });
  const auditSlot = h("div");
  loadInto(auditSlot, async () => {
    const [byThem, aboutThem] = await Promise.all([
      api("GET", `/v1/audit-events${query({ actor_id: user.id, limit: 20 })}`),
      api("GET", `/v1/audit-events${query({ key_id: user.id, limit: 20 })}`),
    ]);
    const events = [...byThem.data, ...aboutThem.data.filter((e) => !byThem.data.some((b) => b.id === e.id))]
      .sort((a, b) => (a.at < b.at ? 1 : -1))
      .slice(0, 20);
    const directory = await people(userIdsOf(events.flatMap((e) => [e.actor, e.target])));
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
    section("Production key requests", requests.node),
    section("Sessions", sessionSlot),
    section("Usage", usageTimeline({ params: { owner: `user:${user.id}` }, title: `Requests with keys of ${user.email}` })),
    section("Recent activity", auditSlot),
  );
}
