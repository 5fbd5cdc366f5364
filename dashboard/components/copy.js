// Copying to the clipboard, honestly: success is reported only when something was copied, a
// failure says what to do instead, and focus stays on the button that was pressed.
import { h, toast } from "../lib/dom.js";

/** Copies `text`; `fallbackInput`, when given, is selected for the old execCommand path. Returns whether it worked. */
export async function copyText(text, fallbackInput = null) {
  try {
    if (!navigator.clipboard?.writeText) throw new Error("no clipboard API");
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const active = document.activeElement;
    const input = fallbackInput ?? h("textarea", { class: "offscreen", readonly: true, "aria-hidden": "true", tabindex: "-1" }, text);
    if (!fallbackInput) document.body.append(input);
    let ok = false;
    try {
      input.select();
      ok = document.execCommand("copy");
    } catch {
      ok = false;
    } finally {
      if (!fallbackInput) input.remove();
      if (active instanceof HTMLElement) active.focus();
    }
    return ok;
  }
}

export const COPY_FAILED = "Could not copy to the clipboard: select the text and press Ctrl+C (⌘C on a Mac).";

/** A Copy button: `text()` gives what to copy. */
export function copyButton({ text, label = "Copy", ariaLabel = null, fallbackInput = null, className = "secondary" }) {
  const button = h(
    "button",
    {
      type: "button",
      class: className,
      "aria-label": ariaLabel,
      onclick: async () => {
        const ok = await copyText(text(), fallbackInput);
        if (!ok && fallbackInput) fallbackInput.select();
        button.focus();
        toast(ok ? "Copied to the clipboard" : COPY_FAILED, { error: !ok });
      },
    },
    label,
  );
  return button;
}

/** An id shown second to a name: monospace, with a small copy button. */
export function idChip(id) {
  return h(
    "span",
    { class: "id-chip" },
    h("code", {}, id),
    copyButton({ text: () => id, label: "Copy", ariaLabel: `Copy ${id}`, className: "link small" }),
  );
}
