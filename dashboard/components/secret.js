// The one-time key panel. A plaintext key lives only in the DOM of the panel that shows it,
// once: never in a URL, web storage or a log. While one is on screen, leaving the page asks
// first (the browser's own prompt for reloads and closing the tab, ours for links).
import { h } from "../lib/dom.js";
import { copyButton } from "./copy.js";

/** Panels showing a key right now. */
const shown = new Set();

export const keyOnScreen = () => [...shown].some((panel) => panel.isConnected);

window.addEventListener("beforeunload", (event) => {
  if (!keyOnScreen()) return;
  event.preventDefault();
  event.returnValue = "";
});

/** Forgets every panel (after the person chose to leave without copying). */
export function dropSecrets() {
  for (const panel of shown) {
    const input = panel.querySelector("input");
    if (input) input.value = "";
    panel.remove();
  }
  shown.clear();
}

/**
 * Shows a plaintext key once, with a Copy button and a warning. "I have stored it" removes the
 * key from the page; nothing else keeps it.
 */
export function secretPanel(title, key, onDone) {
  const input = h("input", {
    id: "new-key",
    readonly: true,
    value: key,
    "aria-label": "The new API key",
    spellcheck: "false",
    autocomplete: "off",
  });
  const panel = h(
    "section",
    { class: "card secret", role: "region", "aria-labelledby": "secret-title" },
    h("h2", { id: "secret-title" }, title),
    h(
      "p",
      {},
      h("strong", {}, "This key is shown only once. "),
      "Copy it now and keep it somewhere safe; Keyward stores only its hash and cannot show it again.",
    ),
    h("div", { class: "row" }, input, copyButton({ text: () => input.value, label: "Copy", fallbackInput: input, className: "" })),
    h(
      "button",
      {
        type: "button",
        class: "secondary",
        onclick: () => {
          input.value = "";
          shown.delete(panel);
          panel.remove();
          onDone?.();
        },
      },
      "I have stored it",
    ),
  );
  shown.add(panel);
  // Keyboard users land on the key itself: Tab then reaches Copy.
  setTimeout(() => {
    input.focus();
    input.select();
  }, 0);
  return panel;
}
