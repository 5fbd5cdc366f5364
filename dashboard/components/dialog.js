// Confirmation dialogs that say what will happen, on <dialog> (focus kept inside and Escape
// handled by the browser). Focus returns to what was focused before, when it is still there.
import { h, uid } from "../lib/dom.js";
import { field } from "./form.js";

/**
 * Asks before an action. `impact`: the consequences, one sentence each (shown as a list);
 * `fields`: [{name, label, required, options: [[value, label]], hint, maxlength, value}].
 * Resolves to the fields' values ({} without fields), or null when cancelled.
 */
export function confirmDialog({ title, text = null, impact = [], confirm = "Confirm", danger = false, fields = [], cancel = "Cancel" }) {
  const opener = document.activeElement;
  return new Promise((resolve) => {
    const titleId = uid("dialog-title");
    const textId = uid("dialog-text");
    const controls = fields.map((f) => {
      const control =
        f.options !== undefined
          ? h(
              "select",
              { name: f.name },
              f.options.map(([value, label]) => h("option", { value, selected: value === f.value }, label)),
            )
          : h("input", { name: f.name, required: f.required, maxlength: f.maxlength ?? 500, value: f.value ?? null, autocomplete: "off" });
      return field({ label: f.label, control, hint: f.hint });
    });
    const dialog = h("dialog", { "aria-labelledby": titleId, "aria-describedby": textId, class: danger ? "danger-dialog" : null });
    const cancelButton = h("button", { type: "button", class: "secondary", onclick: () => dialog.close("cancel") }, cancel);
    const confirmButton = h("button", { type: "submit", value: "ok", class: danger ? "danger" : null }, confirm);
    const form = h(
      "form",
      { method: "dialog" },
      h("h2", { id: titleId }, title),
      h(
        "div",
        { id: textId },
        text ? h("p", {}, text) : null,
        impact.length > 0
          ? h(
              "ul",
              { class: "impact" },
              impact.map((line) => h("li", {}, line)),
            )
          : null,
      ),
      controls.map((c) => c.node),
      h("div", { class: "buttons" }, cancelButton, confirmButton),
    );
    dialog.append(form);
    dialog.addEventListener("close", () => {
      const ok = dialog.returnValue === "ok";
      const values = Object.fromEntries(controls.map((c) => [c.control.name, c.control.value.trim()]));
      dialog.remove();
      if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
      resolve(ok ? values : null);
    });
    document.body.append(dialog);
    dialog.showModal();
    // A destructive action starts on Cancel; anything with fields starts on its first field.
    if (controls.length > 0) controls[0].control.focus();
    else if (danger) cancelButton.focus();
    else confirmButton.focus();
  });
}
