// Dashboard sessions, as GET /v1/users/{id}/sessions and GET /v1/session/all list them: when each
// signed in, when it was last seen, from which address and browser, and which one is this one.
// Never a token: the API gives only a public id.
import { h } from "../lib/dom.js";
import { badge, relative, timeEl } from "../lib/format.js";
import { dataTable } from "./table.js";

/** "Firefox on Linux" from a user agent, or the user agent itself when it names neither. */
export function browserName(userAgent) {
  if (!userAgent) return "unknown";
  const browser = [
    [/Edg\//, "Edge"],
    [/OPR\//, "Opera"],
    [/Firefox\//, "Firefox"],
    [/Chrom(e|ium)\//, "Chrome"],
    [/Safari\//, "Safari"],
    [/curl\//, "curl"],
  ].find(([pattern]) => pattern.test(userAgent))?.[1];
  const system = [
    [/Android/, "Android"],
    [/iPhone|iPad/, "iOS"],
    [/Windows/, "Windows"],
    [/Mac OS X|Macintosh/, "macOS"],
    [/Linux/, "Linux"],
  ].find(([pattern]) => pattern.test(userAgent))?.[1];
  if (!browser) return userAgent.length > 60 ? `${userAgent.slice(0, 57)}…` : userAgent;
  return system ? `${browser} on ${system}` : browser;
}

/**
 * A table of sessions. `end(session)`: the per-row "End" action (omitted for the current session
 * when `endCurrent` is false).
 */
export function sessionTable({ sessions, caption, end, endCurrent = true }) {
  return dataTable({
    caption,
    rows: sessions,
    rowAttrs: (s) => ({ "data-session-id": s.id, ...(s.current ? { "data-current": "" } : {}) }),
    columns: [
      {
        label: "Signed in",
        cell: (s) => h("span", {}, timeEl(s.created_at), s.current ? [" ", badge("active", "this session")] : null),
      },
      { label: "Last seen", cell: (s) => timeEl(s.last_seen_at, relative(s.last_seen_at)) },
      { label: "Address", cell: (s) => (s.ip ? h("code", {}, s.ip) : h("span", { class: "muted" }, "unknown")) },
      { label: "Browser", cell: (s) => h("span", { title: s.user_agent ?? "" }, browserName(s.user_agent)) },
      {
        label: "",
        srLabel: "Actions",
        className: "actions",
        cell: (s) =>
          s.current && !endCurrent
            ? h("span", { class: "muted small" }, "you are here")
            : h(
                "button",
                {
                  type: "button",
                  class: "link",
                  "aria-label": `End the session signed in ${new Date(s.created_at).toLocaleString()}${s.current ? " (this session)" : ""}`,
                  onclick: () => end(s),
                },
                "End",
              ),
      },
    ],
  });
}
