// Tables. Every cell carries its column's name (data-label), so under ~600px the rows stack as
// cards with the label beside each value, and no header is left over a column it no longer
// names. Lists page with the API's cursors: Previous / Next, and "1–50 of 210" when the API
// says how many there are, "1–50, more on the next page" when it only says there are more.
import { api, query } from "../lib/api.js";
import { h, srOnly, uid } from "../lib/dom.js";
import { num } from "../lib/format.js";
import { empty as emptyState, errorState, loading } from "./states.js";

/**
 * columns: [{label, cell: (row, context) => node or text, className, hideLabel}]. An empty label
 * (the actions column) is named for screen readers only.
 */
export function dataTable({ columns, rows, context = {}, caption = null, rowAttrs = () => ({}) }) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "stack" },
      caption ? h("caption", { class: "sr-only" }, caption) : null,
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          columns.map((c) => h("th", { scope: "col", class: c.className ?? null }, c.label || srOnly(c.srLabel ?? "Actions"))),
        ),
      ),
      h(
        "tbody",
        {},
        rows.map((row) =>
          h(
            "tr",
            rowAttrs(row),
            columns.map((c) => h("td", { "data-label": c.label || "", class: c.className ?? null }, c.cell(row, context))),
          ),
        ),
      ),
    ),
  );
}

/**
 * A list read page by page. `fetchPage({cursor, limit})` answers {data, next_cursor, total?,
 * has_more?, context?}. Returns {node, reload()} (back to the first page) and refresh() (this page).
 */
export function pagedTable({ columns, fetchPage, empty, pageSize = 50, label, caption = null, rowAttrs }) {
  const status = h("p", { class: "page-status muted", "aria-live": "polite" });
  const body = h("div", { class: "page-body" });
  const previous = h("button", { type: "button", class: "secondary", disabled: true }, "Previous page");
  const next = h("button", { type: "button", class: "secondary", disabled: true }, "Next page");
  const navId = uid("pager");
  const pager = h("nav", { class: "pager", "aria-label": `${label}: pages`, id: navId }, previous, next, status);
  const node = h("div", { class: "paged" }, body, pager);
  /** The cursor of every page up to this one: cursors[0] is the first page (null). */
  let cursors = [null];
  let generation = 0;
  /** The next page's cursor, from the latest answer. */
  let lastNext = null;

  const show = async () => {
    const mine = ++generation;
    node.setAttribute("aria-busy", "true");
    if (body.dataset.loaded !== "true") body.replaceChildren(loading(`Loading ${label.toLowerCase()}…`));
    previous.disabled = true;
    next.disabled = true;
    try {
      const page = await fetchPage({ cursor: cursors[cursors.length - 1], limit: pageSize });
      if (mine !== generation) return;
      lastNext = page.next_cursor ?? null;
      const first = (cursors.length - 1) * pageSize;
      const more = page.next_cursor !== null && page.next_cursor !== undefined;
      body.dataset.loaded = "true";
      if (page.data.length === 0 && cursors.length === 1) {
        body.replaceChildren(typeof empty === "function" ? emptyState(...[empty()].flat()) : emptyState(empty));
        pager.hidden = true;
      } else {
        pager.hidden = false;
        body.replaceChildren(dataTable({ columns, rows: page.data, context: page.context ?? {}, caption, rowAttrs }));
        const range = page.data.length > 0 ? `${num(first + 1)}–${num(first + page.data.length)}` : "none";
        status.textContent =
          typeof page.total === "number"
            ? `Showing ${range} of ${num(page.total)}`
            : more || page.has_more
              ? `Showing ${range}; more on the next page`
              : `Showing ${range} of ${num(first + page.data.length)}`;
      }
      previous.disabled = cursors.length === 1;
      next.disabled = !more;
      const single = cursors.length === 1 && !more;
      previous.hidden = single;
      next.hidden = single;
      node.dataset.nextCursor = more ? "yes" : "no";
    } catch (error) {
      if (mine !== generation) return;
      body.dataset.loaded = "false";
      body.replaceChildren(errorState(error, () => void show()));
      pager.hidden = true;
    } finally {
      if (mine === generation) node.removeAttribute("aria-busy");
    }
  };
  next.addEventListener("click", () => {
    if (!lastNext) return;
    cursors.push(lastNext);
    void show().then(() => body.querySelector("table")?.scrollIntoView?.({ block: "nearest" }));
  });
  previous.addEventListener("click", () => {
    if (cursors.length === 1) return;
    cursors.pop();
    void show();
  });
  return {
    node,
    reload: () => {
      cursors = [null];
      return show();
    },
    refresh: () => show(),
  };
}

/** A fetchPage for a plain API list: `params()` gives the filters, `enrich(rows)` optional context. */
export function apiPages(path, params = () => ({}), enrich = null) {
  return async ({ cursor, limit }) => {
    const page = await api("GET", `${path}${query({ ...params(), limit, cursor })}`);
    return { ...page, context: enrich ? await enrich(page.data) : {} };
  };
}
