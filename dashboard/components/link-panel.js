// A one-time invite or password-reset link, shown to the administrator to send (the token is in
// this answer only; the server keeps its hash). Like the setup link, it travels in the URL
// fragment, which browsers never send to a server. When the server emailed it (SMTP configured,
// docs/dashboard.md), the panel says so, or why it could not, so the admin sends it by hand.
import { h, uid } from "../lib/dom.js";
import { fmtTime, relative } from "../lib/format.js";
import { copyButton } from "./copy.js";

/** The line about emailing the link: none when the server has no mail settings (or was asked not to send). */
function deliveryNote(delivery) {
  if (delivery?.status === "sent") return h("p", { class: "delivery", role: "status" }, `Emailed to ${delivery.to}.`);
  if (delivery?.status === "failed")
    return h("p", { class: "delivery error", role: "alert" }, `Could not email: ${delivery.reason} — copy the link and send it yourself.`);
  return null;
}

export function linkPanel(link, email) {
  const titleId = uid("link-title");
  const input = h("input", {
    readonly: true,
    value: link.url,
    "aria-label": `${link.purpose === "invite" ? "Invite" : "Password reset"} link for ${email}`,
    spellcheck: "false",
    class: "link-url",
  });
  const panel = h(
    "section",
    { class: "card secret", role: "region", "aria-labelledby": titleId, "data-link": link.purpose },
    h("h2", { id: titleId }, link.purpose === "invite" ? `Invite link for ${email}` : `Password reset link for ${email}`),
    h(
      "p",
      {},
      "Send this link to them privately (not in a public channel). It works once, until ",
      h("time", { datetime: link.expires_at }, fmtTime(link.expires_at)),
      ` (${relative(link.expires_at)}); a newer link replaces it.`,
      link.purpose === "reset" ? " Their current password keeps working until they use it." : " They choose their own password.",
    ),
    deliveryNote(link.delivery),
    h("div", { class: "row" }, input, copyButton({ text: () => input.value, label: "Copy link", fallbackInput: input, className: "" })),
    h(
      "button",
      {
        type: "button",
        class: "secondary",
        onclick: () => {
          input.value = "";
          panel.remove();
        },
      },
      "Done",
    ),
  );
  return panel;
}
