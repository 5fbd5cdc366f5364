// The hosted portal page (GET /portal, docs/embedding.md): takes the portal token from the URL
// fragment (which browsers never send to a server), removes it from the address bar and the
// history at once, and hands it to <keyward-keys>. Shows "Back to <app>" when the session has a
// return URL.
import "./keys.js";

function takeToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get("token");
  if (location.hash) history.replaceState(null, "", `${location.pathname}${location.search}`);
  return token;
}

const token = takeToken();
const element = document.querySelector("keyward-keys");
const backLink = document.getElementById("back-link");

element?.addEventListener("keyward-session", (event) => {
  const session = event.detail;
  if (!session.return_url || !backLink) return;
  let url;
  try {
    url = new URL(session.return_url);
  } catch {
    return;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return;
  backLink.href = url.href;
  backLink.textContent = `Back to ${session.app_name ?? url.host}`;
  backLink.parentElement.hidden = false;
});

if (token) {
  if (element) element.token = token;
} else {
  document.getElementById("no-token").hidden = false;
  element?.remove();
}
