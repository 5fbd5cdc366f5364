// Pages that say where you are not: not found, not allowed, signed out.
import { h } from "../lib/dom.js";
import { page } from "../lib/router.js";

export function notFoundPage() {
  page(
    "Not found",
    h("p", {}, "There is nothing here, or it is not yours."),
    h("p", {}, h("a", { href: "#/keys" }, "Go to your API keys")),
  );
}

/** An administrators' page opened by a member (a typed or shared address). */
export function notAllowedPage() {
  page(
    "Not allowed",
    h(
      "p",
      {},
      "This page is for administrators. Your account is a member account: you manage your own keys and ask an administrator for the rest.",
    ),
    h("p", {}, h("a", { href: "#/keys" }, "Go to your API keys")),
  );
}

/** The session ended under the page: say so, and come back here after signing in again. */
export function signedOutPage(path) {
  page(
    "Signed out",
    h(
      "p",
      { role: "alert" },
      "Your session has ended: you signed out in another tab, it was idle for too long, or it reached its time limit.",
    ),
    h("p", {}, h("a", { href: `#/signin?next=${encodeURIComponent(path)}`, class: "button" }, "Sign in again")),
  );
}
