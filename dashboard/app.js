// Keyward dashboard: ES modules, no framework, no build step. It calls the same HTTP API as
// every other client. This module is the router: who is signed in, which page to draw, and what
// happens when the session ends under the page.
import { confirmDialog } from "./components/dialog.js";
import { dropSecrets, keyOnScreen } from "./components/secret.js";
import { errorState, loading } from "./components/states.js";
import { ApiError, api, state } from "./lib/api.js";
import { h } from "./lib/dom.js";
import { forgetKeys } from "./lib/people.js";
import { registerRouter } from "./lib/router.js";
import { accountPage } from "./pages/account.js";
import { allKeysPage } from "./pages/all-keys.js";
import { applicationsPage } from "./pages/applications.js";
import { auditPage } from "./pages/audit.js";
import { keyDetailPage } from "./pages/key-detail.js";
import { myKeysPage } from "./pages/my-keys.js";
import { organizationPage, organizationsPage } from "./pages/organizations.js";
import { requestsPage } from "./pages/requests.js";
import { forcedPasswordPage, linkPage, notSetUpPage, setupPage, signInPage } from "./pages/signin.js";
import { notAllowedPage, notFoundPage, signedOutPage } from "./pages/status.js";
import { usagePage } from "./pages/usage.js";
import { userDetailPage } from "./pages/user-detail.js";
import { usersPage } from "./pages/users.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");

/** The pages: who may open them and what draws them. */
const PAGES = {
  keys: { admin: false, draw: (id) => (id ? keyDetailPage(id) : myKeysPage()) },
  "all-keys": { admin: true, draw: () => allKeysPage() },
  applications: { admin: true, draw: () => applicationsPage() },
  organizations: { admin: false, draw: (id) => (id ? organizationPage(id) : organizationsPage()) },
  requests: { admin: true, draw: () => requestsPage() },
  users: { admin: true, draw: (id) => (id ? userDetailPage(id) : usersPage()) },
  audit: { admin: true, draw: () => auditPage() },
  usage: { admin: false, draw: () => usagePage() },
  account: { admin: false, draw: () => accountPage() },
};

const NAV = [
  ["keys", "My API keys", false],
  ["all-keys", "All keys", true],
  ["applications", "Applications", true],
  ["organizations", "Organizations", false],
  ["requests", "Key requests", true],
  ["users", "Users", true],
  ["audit", "Audit log", true],
  ["usage", "Usage", false],
];

/** The route in the address: #/keys/key_1?q=x → {parts: ["keys", "key_1"], path: "/keys/key_1?q=x"}. */
function current() {
  const raw = location.hash.replace(/^#/, "") || "/keys";
  const [path] = raw.split("?");
  return { parts: path.split("/").filter(Boolean), path: raw };
}

/** A page we may send someone back to after sign-in: one of ours, never the setup or sign-in page. */
function safeNext(next) {
  if (typeof next !== "string" || !/^\/[a-z-]+(\/[A-Za-z0-9_.@:%-]+)?(\?[A-Za-z0-9_.~%=&+:@-]*)?$/.test(next)) return "/keys";
  const section = next.split(/[/?]/)[1];
  return section in PAGES ? next : "/keys";
}

function renderNav(section = current().parts[0] ?? "keys") {
  nav.replaceChildren();
  if (!state.session) return;
  const admin = state.session.user.role === "admin";
  const links = NAV.filter(([, , adminOnly]) => admin || !adminOnly).map(([route, label]) =>
    h("a", { href: `#/${route}`, "aria-current": section === route ? "page" : null }, label),
  );
  nav.append(
    h("div", { class: "nav-links" }, links),
    h(
      "div",
      { class: "who" },
      h("a", { href: "#/account", "aria-current": section === "account" ? "page" : null }, state.session.user.email),
      h("span", { class: "muted" }, ` (${state.session.user.role}) `),
      h(
        "button",
        {
          type: "button",
          class: "link",
          onclick: async () => {
            if (keyOnScreen() && !(await confirmLeave())) return;
            dropSecrets();
            await api("DELETE", "/v1/session").catch(() => {});
            state.session = null;
            location.hash = "#/signin";
          },
        },
        "Sign out",
      ),
    ),
  );
}

function confirmLeave() {
  return confirmDialog({
    title: "Leave without the new key?",
    text: "The new key on this page is shown only once. If you leave now, it cannot be shown again.",
    impact: ["Copy it first, or revoke it later and create another."],
    confirm: "Leave without it",
    cancel: "Stay on this page",
    danger: true,
  });
}

async function loadSession() {
  try {
    state.session = await api("GET", "/v1/session");
  } catch (error) {
    state.session = null;
    if (!(error instanceof ApiError && error.status === 401)) throw error;
  }
}

let drawing = 0;

async function route() {
  const mine = ++drawing;
  const { parts, path } = current();
  forgetKeys();
  try {
    if (parts[0] === "setup") return await setupPage(parts[1]);
    if (parts[0] === "invite" || parts[0] === "reset") {
      state.session = null;
      renderNav();
      return await linkPage(parts[0], parts[1]);
    }
    if (parts[0] === "signin") {
      // Whoever was signed in in this tab is forgotten here; the server ends sessions on sign-out.
      state.session = null;
      renderNav();
      return signInPage(safeNext(new URLSearchParams(path.split("?")[1] ?? "").get("next")));
    }
    if (!state.session) await loadSession();
    if (mine !== drawing) return;
    if (!state.session) {
      renderNav();
      const setup = await api("GET", "/v1/setup").catch(() => ({ needed: false }));
      if (setup.needed) return notSetUpPage();
      // Back here once signed in.
      const next = safeNext(path);
      history.replaceState(null, "", `#/signin?next=${encodeURIComponent(next)}`);
      lastHash = location.hash;
      return signInPage(next);
    }
    if (state.session.password_change_required) {
      renderNav("account");
      return forcedPasswordPage(safeNext(path));
    }
    const page = PAGES[parts[0]];
    renderNav(page ? parts[0] : "keys");
    if (!page) return notFoundPage();
    if (page.admin && state.session.user.role !== "admin") return notAllowedPage();
    main.replaceChildren(loading());
    await page.draw(parts[1] ? decodeURIComponent(parts[1]) : undefined);
  } catch (error) {
    if (mine !== drawing) return;
    if (error instanceof ApiError && error.status === 404) notFoundPage();
    else if (!state.session && error instanceof ApiError && error.status === 401) signedOutPage(path);
    else {
      document.title = "Something went wrong · Keyward";
      main.replaceChildren(
        h("h1", {}, "Something went wrong"),
        errorState(error, () => void route()),
      );
    }
  } finally {
    if (mine === drawing) main.focus({ preventScroll: true });
  }
}

// A session that ended under the page: say so, and offer to sign in again, coming back here.
window.addEventListener("keyward:signed-out", () => {
  renderNav();
  const { path } = current();
  if (keyOnScreen()) {
    // The new key stays on screen: it cannot be shown again.
    main.prepend(
      h(
        "div",
        { class: "banner", role: "alert" },
        "You were signed out. Copy the key below first, then ",
        h("a", { href: `#/signin?next=${encodeURIComponent(path)}` }, "sign in again"),
        ".",
      ),
    );
    return;
  }
  signedOutPage(path);
});

// An administrator required a new password while the page was open: ask for it, then come back.
window.addEventListener("keyward:password-change-required", () => {
  if (state.session) state.session.password_change_required = true;
  if (!keyOnScreen()) void route();
});

/** The address before the latest change, to go back to when someone chooses to stay. */
let lastHash = location.hash;

window.addEventListener("hashchange", async () => {
  const target = location.hash;
  if (keyOnScreen()) {
    // The key stays: put the address back, and ask.
    history.replaceState(null, "", lastHash);
    if (!(await confirmLeave())) return;
    dropSecrets();
  }
  lastHash = target;
  if (location.hash !== target) location.hash = target;
  else void route();
});

registerRouter({ route, renderNav });
void route();
