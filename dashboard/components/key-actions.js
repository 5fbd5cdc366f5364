// What can be done to a key, each asking first and saying what will happen: rotate, revoke,
// end a rotation's grace, disable or enable, ask for a production key.
import { ApiError, api, isAdmin } from "../lib/api.js";
import { h, toast } from "../lib/dom.js";
import { fmtTime } from "../lib/format.js";
import { confirmDialog } from "./dialog.js";
import { secretPanel } from "./secret.js";
import { errorText } from "./states.js";

const GRACE = [
  ["0", "Stop it now"],
  ["3600", "1 hour"],
  ["86400", "1 day"],
  ["604800", "7 days"],
  ["2592000", "30 days"],
];

const graceOpen = (key, now = Date.now()) =>
  key?.status === "active" && key.replaced_by && key.grace_ends_at && new Date(key.grace_ends_at).getTime() > now;

/** Ends the grace of `old` (the key a rotation replaced): the end-grace route, or revoking it where the service has none. */
export async function endGrace(old) {
  try {
    return await api("POST", `/v1/keys/${encodeURIComponent(old.id)}/end-grace`, {});
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404 && error.code === "ROUTE_NOT_FOUND")) throw error;
    return api("POST", `/v1/keys/${encodeURIComponent(old.id)}/revoke`, { reason: "rotation grace ended early" });
  }
}

const report = (error) => toast(errorText(error), { error: true });

function rotate(key, reveal, reload) {
  return async () => {
    const answer = await confirmDialog({
      title: `Rotate “${key.name}”`,
      text: "A new key with the same settings replaces this one. You see the new key once.",
      impact: [
        "Until the grace period ends, both keys work: deploy the new one, then end the grace.",
        "After it, requests with the old key get 401 REVOKED.",
      ],
      fields: [{ name: "grace", label: "The old key keeps working for", options: GRACE, value: "86400" }],
      confirm: "Rotate",
    });
    if (!answer) return;
    try {
      const rotated = await api("POST", `/v1/keys/${encodeURIComponent(key.id)}/rotate`, { grace_seconds: Number(answer.grace) });
      reveal(secretPanel(`Rotated: the new key for “${rotated.name}”`, rotated.key, reload));
      await reload();
    } catch (error) {
      report(error);
    }
  };
}

function revoke(key, reload, { predecessor = null, after = null } = {}) {
  return async () => {
    const answer = await confirmDialog({
      title: `Revoke “${key.name}”`,
      text: `${key.ref} stops working at once, everywhere. This cannot be undone.`,
      impact: [
        "Every request that uses it gets 401 REVOKED from now on.",
        ...(graceOpen(predecessor) ? [`The key it replaced (${predecessor.ref}), still in its grace period, stops working too.`] : []),
        ...(key.replaced_by ? ["Its successor keeps working."] : []),
      ],
      fields: [{ name: "reason", label: "Reason (optional)", hint: "Kept in the audit log." }],
      confirm: "Revoke",
      danger: true,
    });
    if (!answer) return;
    try {
      await api("POST", `/v1/keys/${encodeURIComponent(key.id)}/revoke`, answer.reason ? { reason: answer.reason } : {});
      toast("Key revoked");
      await (after ?? reload)();
    } catch (error) {
      report(error);
    }
  };
}

/** `old`: the key in its grace period; `successor`: the key that replaced it (may be null when unknown). */
function endGraceAction(old, reload) {
  return async () => {
    const ok = await confirmDialog({
      title: "End the grace period now",
      text: `The old key ${old.ref} of “${old.name}” works until ${fmtTime(old.grace_ends_at)}.`,
      impact: [
        `${old.ref} stops working at once: requests with it get 401 REVOKED.`,
        "Its successor keeps working. Do this when everything uses the new key, or at once if the old key leaked.",
      ],
      confirm: "End grace now",
      danger: true,
    });
    if (!ok) return;
    try {
      await endGrace(old);
      toast("Grace ended: the old key no longer works");
      await reload();
    } catch (error) {
      report(error);
    }
  };
}

function setEnabled(key, enabled, reload) {
  return async () => {
    const ok = await confirmDialog(
      enabled
        ? {
            title: `Enable “${key.name}”`,
            text: `${key.ref} works again.`,
            impact: ["Requests with it are accepted again, within its scopes and limits."],
            confirm: "Enable",
          }
        : {
            title: `Disable “${key.name}”`,
            text: `${key.ref} stops working until it is enabled again.`,
            impact: [
              "Requests with it get 401 DISABLED.",
              isAdmin() && key.owner.type === "user"
                ? "A member who owns it cannot enable it again: only an administrator can."
                : "It can be enabled again later.",
            ],
            confirm: "Disable",
            danger: true,
          },
    );
    if (!ok) return;
    try {
      await api("PATCH", `/v1/keys/${encodeURIComponent(key.id)}`, { enabled });
      toast(enabled ? "Key enabled" : "Key disabled");
      await reload();
    } catch (error) {
      report(error);
    }
  };
}

function requestProduction(key, reload) {
  return async () => {
    const answer = await confirmDialog({
      title: "Request a production key",
      text: `For “${key.name}”. An administrator reviews the request.`,
      impact: [
        "The production key gets the scopes and limits this key has now.",
        "If they change before the decision, the request cannot be approved.",
        "Once approved, you pick the key up here, once.",
      ],
      fields: [{ name: "reason", label: "What will you use it for? (optional)" }],
      confirm: "Send request",
    });
    if (!answer) return;
    try {
      await api("POST", "/v1/key-requests", { key_id: key.id, ...(answer.reason ? { reason: answer.reason } : {}) });
      toast("Request sent");
      await reload();
    } catch (error) {
      report(error);
    }
  };
}

const link = (label, ariaLabel, onclick, cls = "link") =>
  h("button", { type: "button", class: cls, "aria-label": ariaLabel, onclick }, label);

/**
 * The actions for one key. context: {requests: Map sandbox key id → latest request,
 * predecessor: the key it replaced (when known), details: show a Details link, detail: the key
 * page (more actions)}. `reveal(panel)` shows a one-time key; `reload()` redraws; `readOnly`: no
 * action but Details.
 */
export function keyActions(key, { reveal, reload, context = {}, details = true, detail = false, afterRevoke = null, readOnly = false }) {
  const actions = [];
  if (details) actions.push(h("a", { href: `#/keys/${key.id}`, "aria-label": `Details of ${key.name}` }, "Details"));
  // Someone who may only read these keys (an organization's viewer) is offered no action.
  if (readOnly) return h("span", { class: "actions" }, actions);
  const memberPickup = key.status === "awaiting_pickup" && !isAdmin();
  const inGrace = graceOpen(key);
  const live = key.status === "active" && !key.replaced_by;
  if (live) actions.push(link("Rotate", `Rotate ${key.name}`, rotate(key, reveal, reload)));
  if (inGrace)
    actions.push(link("End grace now", `End grace now for ${key.name} (${key.ref})`, endGraceAction(key, reload), "link danger-link"));
  const predecessor = context.predecessor ?? null;
  if (graceOpen(predecessor) && predecessor.replaced_by === key.id)
    actions.push(
      link(
        "End grace now",
        `End grace now for the old key of ${key.name} (${predecessor.ref})`,
        endGraceAction(predecessor, reload),
        "link danger-link",
      ),
    );
  if (key.status !== "revoked" && !memberPickup && !inGrace)
    actions.push(link("Revoke", `Revoke ${key.name}`, revoke(key, reload, { predecessor, after: afterRevoke })));
  if (detail && (key.status === "active" || key.status === "disabled") && !memberPickup) {
    actions.push(
      link(
        key.status === "disabled" ? "Enable" : "Disable",
        `${key.status === "disabled" ? "Enable" : "Disable"} ${key.name}`,
        setEnabled(key, key.status === "disabled", reload),
      ),
    );
  }
  const request = context.requests?.get(key.id);
  const requestOpen = request && (request.status === "pending" || request.status === "approved");
  if (live && key.environment === "sandbox" && !requestOpen)
    actions.push(link("Request production", `Request production key for ${key.name}`, requestProduction(key, reload)));
  return h("span", { class: "actions" }, actions);
}
