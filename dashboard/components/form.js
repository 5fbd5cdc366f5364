// Form fields with their errors next to them: each field has a label, an optional hint and an
// error line, tied to the control with aria-describedby; a field in error has aria-invalid.
// Server validation errors (400 VALIDATION_FAILED, `errors: [{field, message}]`) are put next
// to the field they name, in words a person uses.
import { ApiError } from "../lib/api.js";
import { h, uid } from "../lib/dom.js";
import { num } from "../lib/format.js";
import { errorText } from "./states.js";

/**
 * One labelled control. `control` is an <input>, <select> or <textarea> (or a fieldset for a
 * group, with `group: true`). Returns {node, control, setError(text), clearError()}.
 */
export function field({ label, control, hint, group = false, className = "field", extra = null }) {
  const id = control.id || uid("f");
  const hintId = hint ? uid("hint") : null;
  const errorId = uid("err");
  const error = h("p", { class: "field-error", id: errorId });
  const hintEl = hint ? h("p", { class: "hint", id: hintId }, hint) : null;
  const target = group ? (control.querySelector("input, select, textarea") ?? control) : control;
  if (!group) control.id = id;
  const describedBy = [hintId, errorId].filter(Boolean).join(" ");
  if (group) control.setAttribute("aria-describedby", describedBy);
  else control.setAttribute("aria-describedby", describedBy);
  const node = group
    ? h("div", { class: className }, control, hintEl, error, extra)
    : h("div", { class: className }, h("label", { for: id }, label), control, hintEl, extra, error);
  return {
    node,
    control,
    hintEl,
    setError(text) {
      error.textContent = text;
      target.setAttribute("aria-invalid", "true");
      // A field inside a closed <details> (or a hidden part of the form) is shown with its error.
      for (let d = node.closest("details"); d; d = d.parentElement?.closest("details")) d.open = true;
      node.hidden = false;
    },
    clearError() {
      error.textContent = "";
      target.removeAttribute("aria-invalid");
    },
    focus() {
      target.focus();
    },
  };
}

/** A form's error summary line (role=alert), for errors that belong to no one field. */
export const formError = () => h("p", { class: "error form-error", role: "alert" });

/** `body.scopes.1`, `scopes[1]`, `querystring.since` → `scopes.1`, `since`. */
export const fieldPath = (path) =>
  String(path)
    .replace(/^(body|querystring|params)\.?/, "")
    .replace(/\[(\d+)\]/g, ".$1");

const RANGE = /^an integer from (\d+) to (\d+)/;

/** The server's message for `path`, in words a person uses. */
export function humanMessage(path, message) {
  const p = fieldPath(path);
  const range = RANGE.exec(message);
  if (range) return `Enter a whole number from ${num(Number(range[1]))} to ${num(Number(range[2]))}.`;
  if (/^scopes\.\d+$|^grantable_scopes\.\d+$/.test(p))
    return `Scope ${Number(p.split(".")[1]) + 1} is not a scope name: use lower-case letters, digits, _ . - in parts separated by colons, like orders:read (or * for every scope).`;
  if (/^allowed_cidrs\.\d+$/.test(p))
    return `Line ${Number(p.split(".")[1]) + 1} is not an IP address or range (like 203.0.113.7, 203.0.113.0/24 or 2001:db8::/32).`;
  if (/must be (\d+) to (\d+) characters/.test(message)) {
    const [, a, b] = /must be (\d+) to (\d+) characters/.exec(message);
    return `Use ${a} to ${b} characters.`;
  }
  if (/must NOT have fewer than (\d+) characters/.test(message)) return `Use at least ${/(\d+)/.exec(message)[1]} characters.`;
  if (/must NOT have more than (\d+) characters/.test(message)) return `Use at most ${/(\d+)/.exec(message)[1]} characters.`;
  if (message === "must be in the future") return "Choose a time in the future.";
  if (message.includes("control characters or < >")) return "Use letters, digits and punctuation, without < or >.";
  if (message === "must be an email address") return "Enter an email address, like name@example.com.";
  if (message === "a positive integer") return "Enter a whole number of 1 or more.";
  if (message === "a non-negative integer") return "Enter a whole number of 0 or more.";
  if (message === "required") return "This is required.";
  if (/^must be >= (\d+)/.test(message)) return `Enter ${num(Number(/(\d+)/.exec(message)[1]))} or more.`;
  if (/^must be <= (\d+)/.test(message)) return `Enter ${num(Number(/(\d+)/.exec(message)[1]))} or less.`;
  return message.charAt(0).toUpperCase() + message.slice(1) + (/[.!?]$/.test(message) ? "" : ".");
}

/**
 * Errors for a set of fields named by API path (`name`, `rate_limit.requests`, `allowed_cidrs`).
 * A server error names the field, or a part of it (`allowed_cidrs.2` goes to `allowed_cidrs`).
 */
export function formErrors(fields, summary) {
  const clear = () => {
    for (const f of Object.values(fields)) f.clearError();
    summary.textContent = "";
  };
  const fieldFor = (path) => {
    let p = fieldPath(path);
    while (p) {
      if (fields[p]) return fields[p];
      p = p.includes(".") ? p.slice(0, p.lastIndexOf(".")) : "";
    }
    return null;
  };
  /** Shows [{field, message}] (messages already in people's words); focuses the first field in error. */
  const show = (errors) => {
    let first = null;
    const rest = [];
    for (const e of errors) {
      const f = fieldFor(e.field);
      if (f) {
        f.setError(e.message);
        first ??= f;
      } else rest.push(e.message);
    }
    summary.textContent = rest.length > 0 ? rest.join(" ") : errors.length > 0 ? "Check the fields marked above." : "";
    if (first) first.focus();
    else summary.focus?.();
  };
  const showError = (error) => {
    if (error instanceof ApiError && error.errors.length > 0) {
      show(error.errors.map((e) => ({ field: e.field, message: humanMessage(e.field, e.message) })));
    } else {
      summary.textContent = errorText(error);
    }
  };
  return { clear, show, showError };
}

/**
 * Runs `action` with `button` marked busy (aria-disabled, a spinner): a second press while it
 * runs does nothing. The button keeps focus (a disabled button would drop it to the page).
 */
export async function busy(button, action) {
  if (button.getAttribute("aria-disabled") === "true") return undefined;
  button.setAttribute("aria-disabled", "true");
  button.classList.add("is-busy");
  try {
    return await action();
  } finally {
    button.removeAttribute("aria-disabled");
    button.classList.remove("is-busy");
  }
}

/** The server's password rule (docs/security.md): 12 to 256 characters. */
export const PASSWORD_MIN = 12;
export const PASSWORD_MAX = 256;

/** A new-password input with the server's length rule, so the browser checks what the server will. */
export const newPasswordInput = (name, { required = true } = {}) =>
  h("input", { type: "password", name, required, minlength: PASSWORD_MIN, maxlength: PASSWORD_MAX, autocomplete: "new-password" });

/** The field error for a new password the server would refuse, or null. */
export function passwordProblem(fieldName, value) {
  if (value.length >= PASSWORD_MIN && value.length <= PASSWORD_MAX) return null;
  return { field: fieldName, message: `Use ${PASSWORD_MIN} to ${PASSWORD_MAX} characters (this one has ${value.length}).` };
}
