// Loading, empty and error states, the same on every page.
import { ApiError, NetworkError } from "../lib/api.js";
import { h } from "../lib/dom.js";

export const loading = (what = "Loading…") =>
  h("p", { class: "muted loading", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), what);

export const empty = (text, ...more) =>
  h("div", { class: "empty", "data-empty": "" }, typeof text === "string" ? h("p", {}, text) : text, ...more);

/** The words for an error: the server's own detail for API errors, a plain sentence otherwise. */
export function errorText(error) {
  if (error instanceof ApiError) {
    if (error.status === 403) return `Not allowed: ${error.message}`;
    if (error.status >= 500) return `The server could not do this just now (${error.title ?? error.status}). Try again in a moment.`;
    return error.message;
  }
  if (error instanceof NetworkError) return error.message;
  return "Something went wrong in the page. Reload it and try again.";
}

/** An error with a Retry button that runs `retry`. */
export function errorState(error, retry) {
  return h(
    "div",
    { class: "error-state", role: "alert" },
    h("p", { class: "error" }, errorText(error)),
    error instanceof ApiError && error.requestId ? h("p", { class: "muted small" }, `Request id ${error.requestId}`) : null,
    retry ? h("button", { type: "button", class: "secondary", onclick: retry }, "Retry") : null,
  );
}

/**
 * Fills `slot` with what `load` returns, showing a loading state first and an error with a
 * Retry button when it fails. Returns a function that loads again.
 */
export function loadInto(slot, load, { what } = {}) {
  let generation = 0;
  const run = async () => {
    const mine = ++generation;
    slot.setAttribute("aria-busy", "true");
    if (!slot.firstChild || slot.dataset.loaded !== "true") slot.replaceChildren(loading(what));
    try {
      const content = await load();
      if (mine !== generation) return;
      slot.replaceChildren(...[content].flat().filter(Boolean));
      slot.dataset.loaded = "true";
    } catch (error) {
      if (mine !== generation) return;
      slot.dataset.loaded = "false";
      slot.replaceChildren(errorState(error, () => void run()));
    } finally {
      if (mine === generation) slot.removeAttribute("aria-busy");
    }
  };
  void run();
  return run;
}
