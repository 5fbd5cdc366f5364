// Applications (administrators): keys owned by a service or integration rather than a person.
import { field } from "../components/form.js";
import { keyForm } from "../components/key-form.js";
import { keyList } from "../components/key-list.js";
import { secretPanel } from "../components/secret.js";
import { h, section } from "../lib/dom.js";
import { intro, page } from "../lib/router.js";

const APPLICATION_ID = /^[A-Za-z0-9_.@:-]{1,128}$/;

export function applicationsPage() {
  const revealSlot = h("div", { class: "reveal" });
  const reveal = (panel) => revealSlot.replaceChildren(panel);
  const app = h("input", {
    name: "application",
    required: true,
    maxlength: 128,
    placeholder: "billing-service",
    autocomplete: "off",
    spellcheck: "false",
  });
  const appField = field({
    label: "Application id",
    control: app,
    hint: "Up to 128 letters, digits and _ . @ : - (no spaces), like billing-service.",
  });
  const list = keyList({
    base: { owner_type: "application" },
    showOwner: true,
    label: "Application keys",
    empty: "No application keys yet.",
    reveal,
    requests: false,
  });
  page(
    "Applications",
    intro("Service accounts and integrations: keys owned by an application rather than a person."),
    keyForm({
      mode: "create",
      label: "Create an application key",
      owner: () => ({ type: "application", id: app.value.trim() }),
      extra: [{ name: "owner.id", field: appField }],
      extraErrors: () =>
        APPLICATION_ID.test(app.value.trim())
          ? []
          : [
              {
                field: "owner.id",
                message: app.value.trim()
                  ? "Use only letters, digits and _ . @ : - (no spaces), up to 128."
                  : "Name the application, like billing-service.",
              },
            ],
      onDone: async (created) => {
        reveal(secretPanel(`New key “${created.name}” for ${created.owner.id}`, created.key, null));
        await list.reload();
      },
    }),
    revealSlot,
    section("Keys", list.node),
  );
}
