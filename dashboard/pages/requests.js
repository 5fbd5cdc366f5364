// Key requests (administrators): the production key queue; approve or reject with a reason.
import { confirmDialog } from "../components/dialog.js";
import { hashParams } from "../components/key-list.js";
import { apiPages, pagedTable } from "../components/table.js";
import { api } from "../lib/api.js";
import { h, section, toast, uid } from "../lib/dom.js";
import { askedSummary, badge, timeEl } from "../lib/format.js";
import { keyEl, lookupKeys, people, personName, userIdsOf, whoEl } from "../lib/people.js";
import { intro, page } from "../lib/router.js";

const FILTERS = [
  ["", "All requests"],
  ["pending", "Pending"],
  ["approved", "Approved"],
  ["rejected", "Rejected"],
];

function ownerWords(r, directory) {
  const user = r.owner.type === "user" ? directory.get(r.owner.id) : null;
  return user ? personName(user) : `${r.owner.type} ${r.owner.id}`;
}

export function requestsPage() {
  const status = h(
    "select",
    { id: uid("status"), name: "status" },
    FILTERS.map(([v, l]) => h("option", { value: v, selected: (hashParams().get("status") ?? "") === v }, l)),
  );
  const act = (r, directory, verb) => async () => {
    try {
      if (verb === "approve") {
        const ok = await confirmDialog({
          title: "Approve this request",
          text: `A production key for ${ownerWords(r, directory)}, exactly as asked: ${askedSummary(r.asked)}.`,
          impact: [
            "The key is created now and is awaiting pickup: the requester gets its secret once, from their dashboard.",
            "If the sandbox key was revoked, disabled or widened since the request, approval is refused.",
          ],
          confirm: "Approve",
        });
        if (!ok) return;
        await api("POST", `/v1/key-requests/${r.id}/approve`);
        toast("Approved: the requester can pick the key up");
      } else {
        const answer = await confirmDialog({
          title: "Reject this request",
          text: `${ownerWords(r, directory)} asked for a production key (${askedSummary(r.asked)}).`,
          impact: ["No key is issued. The requester sees your reason and may ask again."],
          fields: [{ name: "reason", label: "Reason", required: true, hint: "Shown to the requester." }],
          confirm: "Reject",
          danger: true,
        });
        if (!answer) return;
        await api("POST", `/v1/key-requests/${r.id}/reject`, { reason: answer.reason });
        toast("Rejected");
      }
      await list.refresh();
    } catch (error) {
      toast(error.message, { error: true });
    }
  };
  const list = pagedTable({
    label: "Key requests",
    caption: "Production key requests",
    empty: "No key requests.",
    rowAttrs: (r) => ({ "data-request-id": r.id }),
    fetchPage: apiPages(
      "/v1/key-requests",
      () => ({ status: status.value }),
      async (rows) => {
        const [directory, keys] = await Promise.all([
          people(userIdsOf(rows.flatMap((r) => [r.owner, r.requested_by]))),
          lookupKeys(rows.flatMap((r) => [r.sandbox_key_id, r.issued_key_id])),
        ]);
        return { directory, keys };
      },
    ),
    columns: [
      { label: "Owner", cell: (r, ctx) => whoEl(r.owner, ctx.directory) },
      { label: "Sandbox key", cell: (r, ctx) => keyEl(r.sandbox_key_id, ctx.keys) },
      // What approval issues: the sandbox key's permissions when the request was made (docs/authority.md).
      { label: "Asks for", cell: (r) => askedSummary(r.asked) },
      { label: "Reason", cell: (r) => r.reason ?? "—" },
      { label: "Asked", cell: (r) => timeEl(r.created_at) },
      {
        label: "Status",
        cell: (r) => [
          r.status === "approved" && !r.claimed_at ? badge("pending", "approved — awaiting pickup") : badge(r.status, r.status),
          r.decision_reason ? h("span", { class: "block small" }, r.decision_reason) : null,
        ],
      },
      {
        label: "",
        className: "actions",
        cell: (r, ctx) =>
          r.status === "pending"
            ? [
                h("button", { type: "button", onclick: act(r, ctx.directory, "approve") }, "Approve"),
                " ",
                h("button", { type: "button", class: "secondary", onclick: act(r, ctx.directory, "reject") }, "Reject"),
              ]
            : r.issued_key_id
              ? h("a", { href: `#/keys/${r.issued_key_id}` }, "Issued key")
              : "",
      },
    ],
  });
  status.addEventListener("change", () => {
    history.replaceState(null, "", `#/requests${status.value ? `?status=${status.value}` : ""}`);
    void list.reload();
  });
  page(
    "Key requests",
    intro("Requests for production keys, newest first. Approval issues exactly what was asked."),
    h("div", { class: "filters" }, h("div", { class: "field" }, h("label", { for: status.id }, "Show"), status)),
    section("Requests", list.node),
  );
  void list.reload();
}
