// My API keys: create keys (they belong to you), find them, and ask for production keys.
import { keyForm } from "../components/key-form.js";
import { keyList } from "../components/key-list.js";
import { secretPanel } from "../components/secret.js";
import { loadInto } from "../components/states.js";
import { dataTable } from "../components/table.js";
import { api, listAll, me } from "../lib/api.js";
import { h, section, toast } from "../lib/dom.js";
import { askedSummary, badge, timeEl } from "../lib/format.js";
import { keyEl, lookupKeys } from "../lib/people.js";
import { intro, page } from "../lib/router.js";

/** How a production key request stands, for its requester. */
export function requestState(r) {
  if (r.status === "approved" && !r.claimed_at) return badge("pending", "approved — awaiting pickup");
  if (r.status === "approved") return badge("approved", "picked up");
  return badge(r.status, r.status);
}

export async function myKeysPage() {
  const user = me();
  const revealSlot = h("div", { class: "reveal" });
  const reveal = (panel) => revealSlot.replaceChildren(panel);
  const requestSlot = h("div");
  const list = keyList({
    base: { owner_type: "user", owner_id: user.id },
    label: "Your keys",
    empty: "No keys yet: create one above.",
    reveal,
    onChange: () => reloadRequests(),
  });
  const reloadAll = async () => {
    await list.reload();
    await reloadRequests();
  };
  const reloadRequests = loadInto(requestSlot, async () => {
    const { data } = await listAll("/v1/key-requests", {}, 200);
    const mine = data.filter((r) => r.owner.type === "user" && r.owner.id === user.id);
    if (mine.length === 0)
      return h(
        "p",
        { class: "muted", "data-empty": "" },
        "No production key requests. Ask for one from a sandbox key: Request production.",
      );
    const keys = await lookupKeys(mine.map((r) => r.sandbox_key_id));
    return dataTable({
      caption: "Your production key requests",
      rows: mine,
      rowAttrs: (r) => ({ "data-request-id": r.id }),
      columns: [
        { label: "Sandbox key", cell: (r) => keyEl(r.sandbox_key_id, keys) },
        { label: "Asks for", cell: (r) => askedSummary(r.asked) },
        { label: "Status", cell: (r) => requestState(r) },
        { label: "Asked", cell: (r) => timeEl(r.created_at) },
        { label: "Decision", cell: (r) => r.decision_reason ?? (r.decided_at ? timeEl(r.decided_at) : "—") },
        {
          label: "",
          className: "actions",
          cell: (r) =>
            r.status === "approved" && !r.claimed_at
              ? h(
                  "button",
                  {
                    type: "button",
                    onclick: async (event) => {
                      const button = event.currentTarget;
                      button.setAttribute("aria-disabled", "true");
                      try {
                        const claimed = await api("POST", `/v1/key-requests/${r.id}/claim`);
                        reveal(secretPanel(`Your production key “${claimed.name}”`, claimed.key, null));
                        await reloadAll();
                      } catch (error) {
                        button.removeAttribute("aria-disabled");
                        toast(error.message, { error: true });
                      }
                    },
                  },
                  "Get production key",
                )
              : r.issued_key_id && r.claimed_at
                ? h("a", { href: `#/keys/${r.issued_key_id}` }, "Issued key")
                : "",
        },
      ],
    });
  });
  page(
    "My API keys",
    intro(
      "Keys you create here belong to you. Send one in an ",
      h("code", {}, "Authorization: Bearer"),
      " header; never put one in a URL. ",
      h("a", { href: "#/usage" }, "Usage of your keys"),
      ".",
    ),
    keyForm({
      mode: "create",
      owner: () => ({ type: "user", id: user.id }),
      onDone: async (created) => {
        reveal(secretPanel(`Your new key “${created.name}”`, created.key, null));
        await reloadAll();
      },
    }),
    revealSlot,
    section("Keys", list.node),
    section("Production key requests", requestSlot),
  );
}
