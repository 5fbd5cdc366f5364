// Your account: who you are signed in as, and changing your password (which signs out your
// other sessions).
import { busy, field, formError, formErrors } from "../components/form.js";
import { api, state } from "../lib/api.js";
import { dl, h, section, toast } from "../lib/dom.js";
import { timeEl } from "../lib/format.js";
import { page } from "../lib/router.js";

function passwordForm() {
  const summary = formError();
  const current = h("input", {
    type: "password",
    name: "current_password",
    required: true,
    autocomplete: "current-password",
    maxlength: 256,
  });
  const next = h("input", {
    type: "password",
    name: "new_password",
    required: true,
    minlength: 12,
    maxlength: 256,
    autocomplete: "new-password",
  });
  const fields = {
    current_password: field({ label: "Current password", control: current }),
    new_password: field({ label: "New password", control: next, hint: "12 to 256 characters. Your other sessions are signed out." }),
  };
  const errors = formErrors(fields, summary);
  const submit = h("button", { type: "submit" }, "Change password");
  return h(
    "form",
    {
      class: "card",
      "aria-label": "Change your password",
      novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        const form = event.currentTarget;
        void busy(submit, async () => {
          errors.clear();
          const problems = [];
          if (!current.value) problems.push({ field: "current_password", message: "Enter your current password." });
          if (next.value.length < 12 || next.value.length > 256)
            problems.push({ field: "new_password", message: `Use 12 to 256 characters (this one has ${next.value.length}).` });
          if (problems.length > 0) return errors.show(problems);
          try {
            state.session = await api("POST", "/v1/session/password", { current_password: current.value, new_password: next.value });
            form.reset();
            toast("Password changed; your other sessions were signed out");
          } catch (error) {
            if (error.status === 401 || error.code === "SIGN_IN_FAILED")
              errors.show([{ field: "current_password", message: "This is not your current password." }]);
            else errors.showError(error);
          }
        });
      },
    },
    h("h2", {}, "Change your password"),
    h("div", { class: "form-grid" }, fields.current_password.node, fields.new_password.node),
    summary,
    h("div", { class: "buttons-row" }, submit),
  );
}

export function accountPage() {
  const { user, expires_at: expires, idle_timeout_seconds: idle } = state.session;
  page(
    "Your account",
    section(
      "You",
      dl([
        ["Email", user.email],
        user.name ? ["Name", user.name] : null,
        ["Role", user.role === "admin" ? "administrator" : "member"],
        ["This session ends", h("span", {}, timeEl(expires), ` at the latest, or after ${Math.round(idle / 60)} idle minutes`)],
      ]),
    ),
    passwordForm(),
  );
}
