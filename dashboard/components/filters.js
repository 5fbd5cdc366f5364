// The search-and-filter form above a paged list (keys, users): a search box with its hint, the
// list's own filter fields, and Search / Clear. Submitting or clearing calls back; the list
// decides what the fields mean.
import { h, uid } from "../lib/dom.js";

/** The search box: `q`, described by the hint `filterForm` shows under it. */
export function searchInput({ value = "", maxlength = 100 } = {}) {
  const id = uid("search");
  return h("input", {
    type: "search",
    id,
    name: "q",
    value,
    autocomplete: "off",
    spellcheck: "false",
    maxlength,
    "aria-describedby": `${id}-hint`,
  });
}

/** A labelled control in the filter row. */
export const filterField = (label, control, ...extra) =>
  h("div", { class: "field" }, h("label", { for: control.id }, label), control, ...extra);

/** The form: `search` (from searchInput) with `hint`, then `fields` (nodes; nulls skipped), then the buttons. */
export function filterForm({ label, search, hint, fields, onApply, onClear }) {
  return h(
    "form",
    {
      class: "filters",
      role: "search",
      "aria-label": label,
      onsubmit: (event) => {
        event.preventDefault();
        void onApply();
      },
    },
    h(
      "div",
      { class: "field grow" },
      h("label", { for: search.id }, "Search"),
      search,
      h("p", { class: "hint", id: `${search.id}-hint` }, hint),
    ),
    ...fields,
    h(
      "div",
      { class: "field buttons-row" },
      h("button", { type: "submit" }, "Search"),
      h("button", { type: "button", class: "secondary", onclick: () => void onClear() }, "Clear"),
    ),
  );
}
