/**
 * URL text as the server (or a proxy in front of it) will read it: percent-decoding that never
 * throws, and a path normalised the way routers and proxies resolve it. Checks that decide on a
 * path or look for keys in a URL must look at this form, not at the raw bytes
 * (docs/hardening.md, "URLs as the server reads them").
 */

/** How many times text is decoded: a proxy in front may decode once more than the router does. */
const DECODE_ROUNDS = 3;

/** `%XX` escapes decoded once, as `decodeURIComponent` does, but never throwing. */
export function percentDecodeOnce(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    // A malformed escape or invalid UTF-8 somewhere: decode the ASCII escapes, keep the rest.
    return text.replace(/%([0-7][0-9A-Fa-f])/g, (_escape, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
  }
}

/** `%XX` escapes decoded, again while a round still changes the text (`%2573` → `%73` → `s`). Never throws. */
export function percentDecode(text: string): string {
  let current = text;
  for (let round = 0; round < DECODE_ROUNDS && current.includes("%"); round++) {
    const next = percentDecodeOnce(current);
    if (next === current) break;
    current = next;
  }
  return current;
}

/** RFC 3986 §5.2.4: `.` and `..` segments resolved; `..` never climbs above the root. */
export function removeDotSegments(path: string): string {
  const segments = path.split("/");
  const out: string[] = [];
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] as string;
    const last = i === segments.length - 1;
    if (segment === "." || segment === "..") {
      if (segment === ".." && out.length > 1) out.pop();
      // `/a/b/..` is the directory `/a/`, not `/a`.
      if (last) out.push("");
      continue;
    }
    out.push(segment);
  }
  return out.join("/");
}

/**
 * The path of a request URL (`/v1/%73ession/?x` → `/v1/session`) for deciding what it targets:
 * query and fragment dropped, percent-decoded, `\` read as `/` (as some proxies do), repeated
 * slashes collapsed, dot segments resolved, no trailing slash, lower case. Wider than what the
 * router matches, never narrower, so a check keyed on it cannot be skipped by spelling.
 */
export function normalisedPath(url: string): string {
  const end = url.search(/[?#]/);
  const raw = end < 0 ? url : url.slice(0, end);
  const decoded = percentDecode(raw)
    .replaceAll("\\", "/")
    .replace(/\/{2,}/g, "/");
  const resolved = removeDotSegments(decoded.startsWith("/") ? decoded : `/${decoded}`);
  const trimmed = resolved.length > 1 && resolved.endsWith("/") ? resolved.slice(0, -1) : resolved;
  return trimmed.toLowerCase();
}
