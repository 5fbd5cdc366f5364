// Usage: the timeline of verifications for the whole deployment (administrators), or for one
// owner; a member sees their own keys'.
import { usageTimeline } from "../components/chart.js";
import { field, formError, formErrors } from "../components/form.js";
import { hashParams, ownerOfText } from "../components/key-list.js";
import { isAdmin, me } from "../lib/api.js";
import { h, section } from "../lib/dom.js";
import { userByEmail } from "../lib/people.js";
import { intro, page } from "../lib/router.js";

export function usagePage() {
  if (!isAdmin()) {
    page(
      "Usage",
      intro("Requests made with your keys, by outcome. A key's own page has its timeline too."),
      section("Your keys", usageTimeline({ params: { owner: `user:${me().id}` }, title: "Requests with your keys" })),
    );
    return;
  }
  const chartSlot = h("div");
  const summary = formError();
  const owner = h("input", { name: "owner", value: hashParams().get("owner") ?? "", autocomplete: "off", maxlength: 320 });
  const ownerField = field({
    label: "Owner",
    control: owner,
    hint: "An email, an application id, or organization:<id>; empty for the whole deployment.",
  });
  const errors = formErrors({ owner: ownerField }, summary);
  const heading = h("h2", {}, "Whole deployment");
  const show = async () => {
    errors.clear();
    const text = owner.value.trim();
    let params = {};
    let title = "Whole deployment";
    if (text) {
      const user = text.includes("@") ? await userByEmail(text) : null;
      if (text.includes("@") && !user) return errors.show([{ field: "owner", message: `No user has the email ${text}.` }]);
      const other = user ? null : ownerOfText(text);
      params = { owner: user ? `user:${user.id}` : `${other.owner_type}:${other.owner_id}` };
      title = user ? `Keys of ${user.email}` : `Keys of ${other.owner_type} ${other.owner_id}`;
    }
    history.replaceState(null, "", `#/usage${text ? `?owner=${encodeURIComponent(text)}` : ""}`);
    heading.textContent = title;
    chartSlot.replaceChildren(usageTimeline({ params, title: `Requests: ${title.toLowerCase()}` }));
  };
  page(
    "Usage",
    intro(
      "Every verification, valid or refused, by outcome. Requests without a known key (missing, malformed, unknown) count for the whole deployment only.",
    ),
    h(
      "form",
      {
        class: "card",
        role: "search",
        "aria-label": "Usage of one owner",
        novalidate: true,
        onsubmit: (event) => {
          event.preventDefault();
          void show();
        },
      },
      h("div", { class: "form-grid" }, ownerField.node),
      summary,
      h("div", { class: "buttons-row" }, h("button", { type: "submit" }, "Show")),
    ),
    h("section", { class: "card" }, heading, chartSlot),
  );
  void show();
}
