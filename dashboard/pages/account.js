// Your account: who you are signed in as, where else you are signed in (and signing those out),
// and changing your password (which signs out your other sessions).
import { confirmDialog } from "../components/dialog.js";
import { busy, field, formError, formErrors, newPasswordInput, passwordProblem } from "../components/form.js";
import { sessionTable } from "../components/session-list.js";
import { loadInto } from "../components/states.js";
import { api, state } from "../lib/api.js";
import { dl, h, section, toast } from "../lib/dom.js";
import { plural, timeEl } from "../lib/format.js";
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
  const next = newPasswordInput("new_password");
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
          const tooShortOrLong = passwordProblem("new_password", next.value);
          if (tooShortOrLong) problems.push(tooShortOrLong);
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

/** Your own sessions (GET /v1/session/all): end one elsewhere, or sign out every other one. */
function ownSessions() {
  const slot = h("div");
  const end = async (ask, path) => {
    if (!(await confirmDialog(ask))) return;
    try {
      const { ended } = await api("DELETE", path);
      toast(`${plural(ended, "session")} signed out`);
    } catch (error) {
      toast(error.message, { error: true });
    }
    await reload();
  };
  const reload = loadInto(slot, async () => {
    const { data } = await api("GET", "/v1/session/all");
    const others = data.filter((s) => !s.current);
    return [
      sessionTable({
        sessions: data,
        caption: "Your sessions",
        endCurrent: false,
        end: (s) =>
          end(
            {
              title: "Sign out that session",
              impact: [`1 session will be signed out${s.ip ? ` (the one from ${s.ip})` : ""}.`, "This session stays signed in."],
              confirm: "Sign it out",
              danger: true,
            },
            `/v1/session/${encodeURIComponent(s.id)}`,
          ),
      }),
      others.length === 0
        ? h("p", { class: "muted" }, "You are signed in here only.")
        : h(
            "div",
            { class: "buttons-row" },
            h(
              "button",
              {
                type: "button",
                class: "danger",
                onclick: () =>
                  end(
                    {
                      title: "Sign out other sessions",
                      impact: [`${plural(others.length, "session")} will be signed out.`, "This session stays signed in."],
                      confirm: "Sign out other sessions",
                      danger: true,
                    },
                    "/v1/session/others",
                  ),
              },
              "Sign out other sessions",
            ),
          ),
    ];
  });
  return slot;
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
    section("Where you are signed in", ownSessions()),
    passwordForm(),
  );
}
