// All keys (administrators): every owner's keys, found by name, ref or id, owner, environment,
// status or expiry.
import { keyList } from "../components/key-list.js";
import { h, section } from "../lib/dom.js";
import { intro, page } from "../lib/router.js";

export function allKeysPage() {
  const revealSlot = h("div", { class: "reveal" });
  const list = keyList({
    showOwner: true,
    ownerFilter: true,
    label: "All keys",
    empty: "No keys yet.",
    reveal: (panel) => revealSlot.replaceChildren(panel),
  });
  page(
    "All keys",
    intro("Every key of every owner, newest first. A leaked key is revoked here, without disabling its owner."),
    revealSlot,
    section("Keys", list.node),
  );
}
