// Page plumbing shared by the pages: drawing a page, going to a route, the highlighted section.
import { append, h } from "./dom.js";

const hooks = { route: null, renderNav: null };

/** app.js registers the router's functions here (pages must not import app.js). */
export const registerRouter = (functions) => Object.assign(hooks, functions);

/** Goes to a route, drawing it even when the address is already there. */
export function navigate(hash) {
  if (location.hash === hash) void hooks.route?.();
  else location.hash = hash;
}

/** Highlights `section` in the navigation (a key page of an application key is under Applications). */
export const setSection = (section) => hooks.renderNav?.(section);

/** Replaces the page: its title (also the document's) and content. */
export function page(title, ...children) {
  document.title = `${title} · Keyward`;
  const main = document.getElementById("main");
  main.replaceChildren(h("h1", {}, title));
  append(main, children);
}

/** A page's introduction line. */
export const intro = (...children) => h("p", { class: "intro muted" }, ...children);
