// Signing in, the first administrator's setup, and a deployment not set up yet.
import { busy, field, formError, formErrors, newPasswordInput, passwordProblem } from "../components/form.js";
import { ApiError, api, state } from "../lib/api.js";
import { h } from "../lib/dom.js";
import { timeEl } from "../lib/format.js";
import { navigate, page } from "../lib/router.js";

/** Email and password fields with their errors beside them. */
function credentialsForm({ submitLabel, newPassword = false, onSubmit, before = [] }) {
  const summary = formError();
  const email = h("input", { type: "email", name: "email", required: true, autocomplete: "username", maxlength: 320 });
  const password = newPassword
    ? newPasswordInput("password")
    : h("input", { type: "password", name: "password", required: true, autocomplete: "current-password", maxlength: 256 });
  const fields = {
    email: field({ label: "Email", control: email }),
    password: field({
      label: "Password",
      control: password,
      hint: newPassword ? "12 to 256 characters. A few unrelated words are easy to remember." : null,
    }),
  };
  const errors = formErrors(fields, summary);
  const submit = h("button", { type: "submit" }, submitLabel);
  const form = h(
    "form",
    {
      class: "card narrow",
      novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        void busy(submit, async () => {
          errors.clear();
          const problems = [];
          if (!email.value.trim()) problems.push({ field: "email", message: "Enter your email address." });
          else if (!email.validity.valid) problems.push({ field: "email", message: "Enter an email address, like name@example.com." });
          if (!password.value) problems.push({ field: "password", message: "Enter your password." });
          else if (newPassword && passwordProblem("password", password.value)) problems.push(passwordProblem("password", password.value));
          if (problems.length > 0) return errors.show(problems);
          try {
            await onSubmit(email.value.trim(), password.value);
          } catch (error) {
            if (error instanceof ApiError && error.code === "SIGN_IN_FAILED") {
              summary.textContent = "The email or password is wrong, or the account is disabled.";
              password.select();
            } else errors.showError(error);
          }
        });
      },
    },
    before,
    fields.email.node,
    fields.password.node,
    summary,
    h("div", { class: "buttons-row" }, submit),
  );
  return form;
}

/** Why single sign-on sent the person back here (`#/signin?error=…`, docs/dashboard.md). */
const SSO_ERRORS = {
  sso_failed: "Single sign-on did not complete. Start again; if it keeps failing, ask an administrator.",
  sso_denied: "The identity provider did not sign you in, or you cancelled. Start again to retry.",
  sso_unavailable: "The identity provider cannot be reached right now. Try again in a moment.",
  sso_bad_return_to: "That sign-in link pointed outside Keyward, so it was not followed. Start again from this page.",
  sso_too_many: "Too many sign-ins were started from your address in the last minute. Wait a minute, then start again.",
  sso_email_missing: "The identity provider did not share an email address, which Keyward needs to sign you in.",
  sso_email_unverified: "Your email address is not verified with the identity provider, so it cannot be used to sign in here.",
  sso_domain_not_allowed: "Accounts with this email domain may not sign in to this Keyward.",
  sso_account_disabled: "Your Keyward account is disabled. Ask an administrator.",
  sso_account_linked: "This email belongs to a Keyward account linked to another identity. Ask an administrator.",
};

/** What the sign-in page offers: from `GET /v1/setup` (`sso`, `password_sign_in` appear when SSO is configured). */
async function signInMethods() {
  const setup = await api("GET", "/v1/setup").catch(() => ({}));
  return { sso: setup.sso === true, passwords: setup.password_sign_in !== false, start: setup.sso_start ?? "/v1/session/oidc/start" };
}

/** A plain link to the provider (no script): back here on `#${next}` once signed in. */
function ssoLink(start, next) {
  const returnTo = `${location.pathname}#${next}`;
  return h("a", { class: "button", href: `${start}?return_to=${encodeURIComponent(returnTo)}` }, "Sign in with SSO");
}

/** `next`: the page to go back to (already checked by the router). */
export async function signInPage(next = "/keys") {
  const error = new URLSearchParams(location.hash.split("?")[1] ?? "").get("error");
  const methods = await signInMethods();
  const parts = [];
  if (error && Object.hasOwn(SSO_ERRORS, error)) parts.push(h("p", { role: "alert" }, SSO_ERRORS[error]));
  if (methods.sso) parts.push(h("p", { class: "buttons-row" }, ssoLink(methods.start, next)));
  if (methods.passwords)
    parts.push(
      credentialsForm({
        submitLabel: "Sign in",
        before: methods.sso ? [h("p", { class: "muted" }, "Or sign in with your Keyward password.")] : [],
        onSubmit: async (email, password) => {
          state.session = await api("POST", "/v1/session", { email, password });
          navigate(`#${next}`);
        },
      }),
    );
  page("Sign in", ...parts);
}

export async function setupPage(token) {
  // The token came in the URL fragment (never sent to a server); drop it from the address bar and history.
  history.replaceState(null, "", "#/setup");
  if (!token) {
    page(
      "Create the first administrator",
      h("p", {}, "This address has no setup token. Open the setup link that ", h("code", {}, "keyward serve"), " printed again."),
    );
    return;
  }
  page("Create the first administrator", h("p", { class: "muted", role: "status" }, "Checking the setup link…"));
  const setup = await api("GET", "/v1/setup").catch(() => ({ needed: true }));
  if (!setup.needed) {
    page(
      "This setup link has been used",
      h("p", {}, "Keyward already has an administrator, so the one-time setup link no longer works."),
      h("p", {}, h("a", { href: "#/signin", class: "button" }, "Sign in")),
    );
    return;
  }
  page(
    "Create the first administrator",
    credentialsForm({
      submitLabel: "Create administrator",
      newPassword: true,
      before: [h("p", { class: "muted" }, "This link works once, for 24 hours after Keyward printed it.")],
      onSubmit: async (email, password) => {
        state.session = await api("POST", "/v1/setup", { token, email, password });
        navigate("#/keys");
      },
    }),
  );
}

export async function notSetUpPage() {
  const methods = await signInMethods();
  page(
    "Keyward is not set up yet",
    methods.sso
      ? h(
          "p",
          {},
          "An administrator can sign in with SSO when the identity provider puts them in an admin group: ",
          ssoLink(methods.start, "/keys"),
        )
      : null,
    h(
      "p",
      {},
      "Open the one-time setup link that ",
      h("code", {}, "keyward serve"),
      " printed on its first start, or create an administrator on the server with ",
      h("code", {}, "keyward users create --email you@example.com --admin"),
      ".",
    ),
  );
}

const LINKS = {
  invite: {
    api: "/v1/invites",
    title: "Accept your invitation",
    choose: (email) => `Choose a password for ${email}. Then you are signed in.`,
    submit: "Choose password and sign in",
  },
  reset: {
    api: "/v1/password-resets",
    title: "Choose a new password",
    choose: (email) => `Choose a new password for ${email}. Your other sessions are signed out.`,
    submit: "Set new password and sign in",
  },
};

/** An invite or password-reset link: #/invite/<token> or #/reset/<token>, the token in the fragment only. */
export async function linkPage(purpose, token) {
  const link = LINKS[purpose];
  // Like the setup token: never left in the address bar or history.
  history.replaceState(null, "", `#/${purpose}`);
  if (!token) {
    page(link.title, h("p", {}, "This address has no link token. Open the link you were sent again."));
    return;
  }
  page(link.title, h("p", { class: "muted", role: "status" }, "Checking the link…"));
  let found;
  try {
    found = await api("POST", `${link.api}/inspect`, { token });
  } catch (error) {
    const used = error instanceof ApiError && error.code === "ACCOUNT_LINK_INVALID";
    page(
      "This link does not work",
      h(
        "p",
        { role: "alert" },
        used
          ? `It was already used, replaced by a newer link, or has expired (invites last 72 hours, password resets 1 hour). Ask an administrator for a new one.`
          : error.message,
      ),
      h("p", {}, h("a", { href: "#/signin" }, "Sign in"), " if you already have a password."),
    );
    return;
  }
  const summary = formError();
  const password = newPasswordInput("password");
  const email = h("input", { type: "email", name: "email", value: found.email, readonly: true, autocomplete: "username" });
  const repeat = h("input", { type: "password", name: "repeat", required: true, maxlength: 256, autocomplete: "new-password" });
  const fields = {
    email: field({ label: "Email", control: email }),
    password: field({
      label: "New password",
      control: password,
      hint: "12 to 256 characters. A few unrelated words are easy to remember.",
    }),
    repeat: field({ label: "New password again", control: repeat }),
  };
  const errors = formErrors(fields, summary);
  const submit = h("button", { type: "submit" }, link.submit);
  page(
    link.title,
    h(
      "form",
      {
        class: "card narrow",
        novalidate: true,
        "aria-label": link.title,
        onsubmit: (event) => {
          event.preventDefault();
          void busy(submit, async () => {
            errors.clear();
            const tooShortOrLong = passwordProblem("password", password.value);
            if (tooShortOrLong) return errors.show([tooShortOrLong]);
            if (repeat.value !== password.value)
              return errors.show([{ field: "repeat", message: "The two passwords differ: type the same one twice." }]);
            try {
              state.session = await api("POST", `${link.api}/accept`, { token, password: password.value });
              navigate("#/keys");
            } catch (error) {
              if (error instanceof ApiError && error.code === "ACCOUNT_LINK_INVALID")
                summary.textContent = "This link no longer works: it was used or has expired. Ask an administrator for a new one.";
              else errors.showError(error);
            }
          });
        },
      },
      h("p", {}, link.choose(found.email)),
      h("p", { class: "muted small" }, "The link works until ", timeEl(found.expires_at), "."),
      fields.email.node,
      fields.password.node,
      fields.repeat.node,
      summary,
      h("div", { class: "buttons-row" }, submit),
    ),
  );
}

/** An administrator requires a new password: nothing else works until it is chosen. */
export function forcedPasswordPage(next) {
  const summary = formError();
  const current = h("input", {
    type: "password",
    name: "current_password",
    required: true,
    autocomplete: "current-password",
    maxlength: 256,
  });
  const repeat = h("input", { type: "password", name: "repeat", required: true, maxlength: 256, autocomplete: "new-password" });
  const fresh = newPasswordInput("new_password");
  const fields = {
    current_password: field({ label: "Current password", control: current }),
    new_password: field({ label: "New password", control: fresh, hint: "12 to 256 characters, different from the current one." }),
    repeat: field({ label: "New password again", control: repeat }),
  };
  const errors = formErrors(fields, summary);
  const submit = h("button", { type: "submit" }, "Change password");
  page(
    "Choose a new password",
    h(
      "form",
      {
        class: "card narrow",
        novalidate: true,
        "aria-label": "Choose a new password",
        onsubmit: (event) => {
          event.preventDefault();
          void busy(submit, async () => {
            errors.clear();
            const problems = [];
            if (!current.value) problems.push({ field: "current_password", message: "Enter your current password." });
            const tooShortOrLong = passwordProblem("new_password", fresh.value);
            if (tooShortOrLong) problems.push(tooShortOrLong);
            else if (fresh.value === current.value)
              problems.push({ field: "new_password", message: "Choose a password different from the current one." });
            else if (repeat.value !== fresh.value)
              problems.push({ field: "repeat", message: "The two passwords differ: type the same one twice." });
            if (problems.length > 0) return errors.show(problems);
            try {
              state.session = await api("POST", "/v1/session/password", { current_password: current.value, new_password: fresh.value });
              navigate(`#${next}`);
            } catch (error) {
              if (error instanceof ApiError && (error.status === 401 || error.code === "SIGN_IN_FAILED"))
                errors.show([{ field: "current_password", message: "This is not your current password." }]);
              else errors.showError(error);
            }
          });
        },
      },
      h("p", { role: "alert" }, "An administrator requires you to choose a new password before you continue."),
      fields.current_password.node,
      fields.new_password.node,
      fields.repeat.node,
      summary,
      h("div", { class: "buttons-row" }, submit),
    ),
  );
}
