import { percentDecode } from "./url-text.js";

/** The longest route a recent request keeps; longer paths are cut (with `…`). */
export const MAX_ROUTE_LENGTH = 200;

// Anything shaped like a Keyward key, whatever the prefix (as the logger's scrubber sees them).
const KEY_SHAPED = /[a-z][a-z0-9]{1,15}_(?:live|test)_[0-9A-Za-z]{8,}/g;
const METHOD = /^[A-Z]{1,16}$/;
// Control characters and the Unicode line breaks: a route is one line of plain text.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

/** The path of a request target: a whole URL loses its scheme and host; the query and fragment go. */
function pathOf(target: string): string {
  let start = 0;
  const scheme = target.indexOf("://");
  if (scheme > 0 && scheme < 10) {
    const slash = target.indexOf("/", scheme + 3);
    if (slash < 0) return "/";
    start = slash;
  }
  let end = target.length;
  const question = target.indexOf("?", start);
  if (question >= 0) end = question;
  const hash = target.indexOf("#", start);
  if (hash >= 0 && hash < end) end = hash;
  return target.slice(start, end);
}

/**
 * What a recent request names its route (docs/usage.md): `GET /orders/7` for a request the key
 * came with (the query string is never kept: it may carry anything), or an API call's name
 * (`verify`). Key-shaped text is replaced by `[REDACTED]` (decoded too, as a server would read
 * it), control characters are dropped, and the result is at most MAX_ROUTE_LENGTH characters.
 * Runs when the log is written, never on the verify path. Null when there is nothing to name.
 */
export function recentRequestRoute(method: string | undefined, route: string | undefined): string | null {
  if (route === undefined || route === "") return method !== undefined && METHOD.test(method) ? method : null;
  // A call's name has no `?` or `://`: cutting to the path leaves it as it is.
  let text = pathOf(route);
  if (text.includes("%")) {
    const decoded = percentDecode(text);
    KEY_SHAPED.lastIndex = 0;
    if (KEY_SHAPED.test(decoded)) text = decoded;
  }
  text = text.replace(KEY_SHAPED, "[REDACTED]").replace(CONTROL, "");
  if (method !== undefined && METHOD.test(method)) text = `${method} ${text}`;
  return text.length > MAX_ROUTE_LENGTH ? `${text.slice(0, MAX_ROUTE_LENGTH - 1)}…` : text || null;
}
