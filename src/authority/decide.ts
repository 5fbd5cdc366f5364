import type { AskedKey } from "../core/accounts.js";
import type { KeyRecord, OwnerRef } from "../core/model.js";
import { managesRole, type OrganizationRole } from "../core/organizations.js";
import { findEscalatingScopes, findMissingScopes } from "../core/scopes.js";
import { CONTROL_NAMES, loosenedControls } from "./controls.js";
import type { Action, Authority, Bound, Decision, KeyRights, MemberRights } from "./model.js";

/**
 * The one place that decides authority (docs/authority.md): may `authority` do `action`? An
 * action may not confer, reveal, restore or widen a right the actor does not hold; admin rights
 * (no bounds) are the only unbounded ones. Pure: what it needs from storage is in the action.
 */
export function decide(authority: Authority, action: Action): Decision {
  for (const bound of authority.bounds) {
    const refusal = decideForBound(bound, action);
    if (refusal) return refusal;
  }
  return decideUnbounded(authority, action);
}

const ALLOW: Decision = { allowed: true };

const refuse = (message: string): Decision => ({ allowed: false, code: "FORBIDDEN", message });
const notFound = (what: string): Decision => ({ allowed: false, code: "RESOURCE_NOT_FOUND", message: `no ${what}` });

const sameOwner = (a: OwnerRef, b: OwnerRef | null) => b !== null && a.type === b.type && a.id === b.id;

export const rightsOf = (key: Pick<KeyRecord, "owner" | "environment" | "scopes" | "delegation">): KeyRights => ({
  owner: key.owner,
  environment: key.environment,
  scopes: key.scopes,
  delegation: key.delegation,
});

function whose(bound: Bound): string {
  if (bound.source === "portal") return "this portal session";
  if (bound.source === "organization") return "your role in this organization";
  return bound.source === "member" ? "your role" : bound.source === "admin_role" ? "the admin role" : "this key";
}

/** Scopes `bound` may not confer: outside its ceiling, or management scopes it lacks. */
function scopesBeyond(bound: Bound, scopes: readonly string[]): string[] {
  const outside = bound.grantable === "all" ? [] : findMissingScopes(bound.grantable, scopes);
  // A portal session's management scopes reach its own keys only: it confers none of them.
  const escalating = findEscalatingScopes(bound.source === "portal" ? [] : bound.management, scopes);
  return [...new Set([...outside, ...escalating])];
}

/** Why `bound` may not confer `rights` (ignoring the owner), or null when it may. */
function beyondRights(bound: Bound, rights: KeyRights): string | null {
  if (!bound.environments.includes(rights.environment)) return `${whose(bound)} may not confer ${rights.environment} keys`;
  const scopes = scopesBeyond(bound, rights.scopes);
  if (scopes.length > 0) return `the caller cannot grant: ${scopes.join(", ")}`;
  if (rights.delegation) {
    const ceiling = scopesBeyond(bound, rights.delegation.scopes);
    if (ceiling.length > 0) return `the caller cannot delegate: ${ceiling.join(", ")}`;
    const environments = rights.delegation.environments.filter((environment) => !bound.environments.includes(environment));
    if (environments.length > 0) return `the caller cannot delegate: ${environments.join(", ")}`;
  }
  return null;
}

/** Whether `bound` may act on `key` at all; a member's view of another's key is a 404. */
function reachRefusal(bound: Bound, key: KeyRecord): Decision | null {
  if (bound.reach === "owner") return sameOwner(key.owner, bound.owner) ? null : notFound(`key ${key.id}`);
  if (bound.reach === "conferrable") {
    const beyond = beyondRights(bound, rightsOf(key));
    if (beyond) return refuse(`the key is beyond this key's reach (${beyond})`);
  }
  return null;
}

function confersRefusal(bound: Bound, rights: KeyRights): Decision | null {
  if (bound.reach === "owner" && !sameOwner(rights.owner, bound.owner))
    return refuse(
      bound.source === "portal" ? "a portal session creates keys for its owner only" : "members create keys for themselves only",
    );
  const beyond = beyondRights(bound, rights);
  return beyond ? refuse(beyond) : null;
}

/** Whether `bound` could confer what a member is given. */
function memberRightsRefusal(bound: Bound, member: MemberRights): Decision | null {
  if (bound.reach === "owner") return refuse("members may not manage users");
  const management = findEscalatingScopes(bound.management, member.management);
  const scopes = scopesBeyond(bound, member.scopes);
  const environments = member.environments.filter((environment) => !bound.environments.includes(environment));
  const beyond = [...management, ...scopes, ...environments];
  return beyond.length > 0 ? refuse(`the caller cannot confer what a member holds: ${beyond.join(", ")}`) : null;
}

function updateRefusal(bound: Bound, action: Extract<Action, { type: "key.update" }>): Decision | null {
  const { key, changes } = action;
  const reach = reachRefusal(bound, key);
  if (reach) return reach;
  if (key.awaitingPickup && bound.reach === "owner") return awaitingPickup(key);
  const after = { ...key, ...changes };
  const added = changes.scopes ? findMissingScopes(key.scopes, changes.scopes) : [];
  const addedBeyond = scopesBeyond(bound, added);
  if (addedBeyond.length > 0) return refuse(`the caller cannot grant: ${addedBeyond.join(", ")}`);
  // A scope added to a key is conferred in that key's environment.
  if ((added.length > 0 || changes.delegation) && !bound.environments.includes(key.environment))
    return refuse(`${whose(bound)} may not confer ${key.environment} rights`);
  if (changes.delegation) {
    const beyond = beyondRights(bound, { ...rightsOf(key), scopes: [], delegation: changes.delegation });
    if (beyond) return refuse(beyond);
  }
  const loosened = loosenedControls(key, after);
  if (bound.tightenOnly) {
    const refused = loosened.filter((field) => action.setByActor[field] !== true);
    if (refused.length > 0)
      return refuse(
        `an administrator set ${refused.map((field) => CONTROL_NAMES[field]).join(", ")} on this key: you may tighten it, not loosen it`,
      );
  } else if (loosened.includes("enabled")) {
    // Re-enabling confers the whole key again.
    const beyond = beyondRights(bound, rightsOf(after));
    if (beyond) return refuse(beyond);
  }
  return null;
}

/** A bound with a longest lifetime (a portal session's policy): every key it creates expires, and within it. */
function lifetimeRefusal(bound: Bound, expiry: { at: number | null; now: number } | undefined): Decision | null {
  if (bound.maxLifetimeMs === undefined) return null;
  if (!expiry || expiry.at === null) return refuse(`${whose(bound)} creates keys with an expiry only`);
  if (expiry.at - expiry.now > bound.maxLifetimeMs)
    return refuse(`${whose(bound)} creates keys expiring within ${Math.floor(bound.maxLifetimeMs / 86_400_000)} days only`);
  return null;
}

const awaitingPickup = (key: KeyRecord): Decision => ({
  allowed: false,
  code: "KEY_AWAITING_PICKUP",
  message: `key ${key.id} is awaiting pickup by its requester`,
});

const askedRights = (owner: OwnerRef, asked: AskedKey): KeyRights => ({
  owner,
  environment: "production",
  scopes: asked.scopes,
  delegation: null,
});

/** The actions that only read: all a read-only bound (a viewer, a developer before others' keys) may do. */
const READS: ReadonlySet<Action["type"]> = new Set(["key.read", "key_request.read", "audit.read", "usage.read", "users.read"]);

/** The organization roles that manage the organization itself (its name, its members). */
const governsOrganization = (bound: Bound, organization: OwnerRef): boolean =>
  bound.source === "organization" &&
  sameOwner(organization, bound.owner) &&
  (bound.organizationRole === "owner" || bound.organizationRole === "admin");

function decideForBound(bound: Bound, action: Action): Decision | null {
  const leaving = action.type === "organization.members" && action.leaving === true;
  if (bound.readOnly && !READS.has(action.type) && !leaving) return refuse(`${whose(bound)} may read only`);
  switch (action.type) {
    case "key.read":
    case "key.revoke":
      if (bound.reach === "owner" || action.type === "key.revoke") {
        const reach = reachRefusal(bound, action.key);
        if (reach) return reach;
      }
      if (action.type === "key.revoke" && action.key.awaitingPickup && bound.reach === "owner") return awaitingPickup(action.key);
      return null;
    case "key.create":
      // A portal session mints plain keys: no delegation ceiling, whatever it would name.
      if (bound.source === "portal" && action.rights.delegation) return refuse("a portal session sets no delegation ceiling");
      return confersRefusal(bound, action.rights) ?? lifetimeRefusal(bound, action.expiry);
    case "key.update":
      return updateRefusal(bound, action);
    case "key.rotate": {
      const reach = reachRefusal(bound, action.key);
      if (reach) return reach;
      // A portal session is handed the rights of the key it rotates: within its policy, production
      // only when it may pick up approved production keys (docs/embedding.md).
      if (bound.source === "portal") {
        const environments = bound.productionRequests ? [...bound.environments, "production" as const] : bound.environments;
        return confersRefusal({ ...bound, environments }, rightsOf(action.key));
      }
      // An organization member may not hold the key they rotate (an administrator's, another
      // member's): they are handed its rights, so only rights their role could confer, and
      // production rights they could have asked for (docs/organizations.md).
      if (bound.source === "organization")
        return confersRefusal({ ...bound, environments: [...bound.environments, "production"] }, rightsOf(action.key));
      // A member already holds its own key; anyone else is handed a key's rights by rotating it.
      return bound.reach === "owner" ? null : confersRefusal(bound, rightsOf(action.key));
    }
    case "key_request.create":
      if (bound.productionRequests === false) return refuse(`${whose(bound)} may not ask for production keys`);
      return action.forItself ? null : reachRefusal(bound, action.sandbox);
    case "key_request.read":
      return bound.reach === "owner" && !sameOwner(action.request.owner, bound.owner) ? notFound("such key request") : null;
    case "key_request.approve":
      if (bound.tightenOnly || bound.reach === "owner") return refuse("only an administrator may approve");
      return confersRefusal(bound, askedRights(action.request.owner, action.asked));
    case "key_request.reject":
      return bound.tightenOnly || bound.reach === "owner" ? refuse("only an administrator may reject") : null;
    case "key_request.claim":
      return bound.productionRequests === false ? refuse(`${whose(bound)} may not pick up production keys`) : null;
    case "user.create":
      if (action.role === "admin")
        return bound.source === "admin_role" ? null : refuse("only an administrator may create an administrator");
      return bound.source === "admin_role" ? null : memberRightsRefusal(bound, action.member);
    case "user.update":
    case "user.credentials":
    case "user.sessions": {
      if (action.user.role === "admin")
        return bound.source === "admin_role" ? null : refuse("only an administrator may manage an administrator");
      if (bound.source === "admin_role") return null;
      const member = memberRightsRefusal(bound, action.member);
      if (member) return member;
      // Enabling or disabling a user enables or disables every key the user holds; a link to the
      // account hands them all over; ending sessions is limited to people no mightier than the caller.
      for (const key of action.keys) if (reachRefusal(bound, key)) return refuse(`the user holds ${key.id}, beyond the caller's reach`);
      return null;
    }
    case "owner.update":
      if (bound.source === "portal") return refuse("a portal session may not manage owners");
      if (bound.source === "organization" && !governsOrganization(bound, action.owner))
        return refuse("only the organization's owners and admins may disable it");
      // Enabling restores every key the organization holds, some beyond any member's rights.
      if (bound.source === "organization" && !action.disabled) return refuse("only an administrator re-enables an organization");
      for (const key of action.keys) {
        if (reachRefusal(bound, key)) return refuse(`the owner holds ${key.id}, beyond the caller's reach`);
      }
      return null;
    case "portal_session.create": {
      // Opening one confers what its policy lets the holder mint: decided as delegating those rights is.
      if (bound.reach === "owner") return refuse("only an admin key or a portal:create key may open a portal session");
      for (const environment of action.environments) {
        const beyond = beyondRights(bound, { owner: action.owner, environment, scopes: action.scopes, delegation: null });
        if (beyond) return refuse(beyond);
      }
      return null;
    }
    case "portal_session.manage":
      if (bound.reach === "owner") return refuse("only an admin key or a portal:create key may manage portal sessions");
      if (bound.source === "key" && !(action.openedBy && action.caller && sameOwner(action.openedBy, action.caller)))
        return notFound("such portal session");
      return null;
    case "organization.govern":
      return bound.source === "admin_role" ? null : refuse("organizations are created, and their shared limits set, by administrators");
    case "organization.update":
      return bound.source === "admin_role" || governsOrganization(bound, action.organization)
        ? null
        : refuse("only an administrator or the organization's owners and admins may change it");
    case "organization.members": {
      if (bound.source === "admin_role") return null;
      if (action.leaving && bound.source === "organization" && sameOwner(action.organization, bound.owner)) return null;
      if (!governsOrganization(bound, action.organization))
        return refuse("only an administrator or the organization's owners and admins manage its members");
      const role = bound.organizationRole as OrganizationRole;
      for (const affected of [action.from, action.to])
        if (affected !== null && !managesRole(role, affected)) return refuse(`an organization ${role} may not manage its ${affected}s`);
      return null;
    }
    case "keys.import":
      // Every bound refuses: an import may confer any right on any owner.
      return refuse("only an admin key or the CLI may import keys: an import confers whatever rights its records name");
    case "webhooks.manage":
      return bound.source === "admin_role" ? null : refuse("webhooks are managed by administrators");
    case "leaks.report":
    case "audit.read":
    case "usage.read":
    case "users.read":
      return bound.reach === "owner" && action.type !== "usage.read" ? refuse("your role may not do this") : null;
  }
}

/** What holds whatever the bounds: the state of the things acted on, not the actor's rights. */
function decideUnbounded(authority: Authority, action: Action): Decision {
  switch (action.type) {
    case "key.rotate":
      return action.key.awaitingPickup ? awaitingPickup(action.key) : ALLOW;
    case "user.update":
      return authority.actor.type === "user" && authority.actor.id === action.user.id && action.disabled
        ? refuse("you cannot disable your own account")
        : ALLOW;
    case "owner.update":
      if (action.user && action.user.disabled !== action.disabled)
        return {
          allowed: false,
          code: "OWNER_FOLLOWS_USER",
          message: `${action.owner.type}:${action.owner.id} is a dashboard user who is ${action.user.disabled ? "disabled" : "enabled"}: change the user instead`,
        };
      return ALLOW;
    case "key_request.claim": {
      const { request, claimant } = action;
      if (claimant.type === "portal") return sameOwner(request.owner, claimant.owner) ? ALLOW : notFound("such key request");
      const allowed =
        claimant.type === "key"
          ? claimant.id === request.sandboxKeyId
          : (request.requestedBy.type === "user" && request.requestedBy.id === claimant.id) ||
            (request.owner.type === "user" && request.owner.id === claimant.id);
      return allowed ? ALLOW : notFound("such key request");
    }
    default:
      return ALLOW;
  }
}
