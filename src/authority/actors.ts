import type { Environment } from "../core/key-format.js";
import type { Actor, KeyRecord, OwnerRef } from "../core/model.js";
import type { OrganizationRole } from "../core/organizations.js";
import { findMissingScopes, MANAGEMENT_SCOPES, scopeCovers } from "../core/scopes.js";
import type { Authority, Bound, MemberRights } from "./model.js";

const ALL_ENVIRONMENTS: readonly Environment[] = ["sandbox", "production"];

/** What a dashboard member may do (docs/authority.md, the member policy). */
export interface MemberPolicy {
  /** Scopes a member may put on their keys (KEYWARD_MEMBER_KEY_SCOPES). */
  scopes: readonly string[];
  /** `request`: production keys only through a request and an admin's approval; `direct`: members mint them. */
  productionKeys: "request" | "direct";
}

/** The management scopes a member's role holds, over their own keys only. */
export const MEMBER_MANAGEMENT_SCOPES: readonly string[] = ["keys:read", "keys:write"];

/** Unbounded: an admin key, the CLI (it writes straight into the store, so it is the operator). */
export function unboundedAuthority(actor: Actor): Authority {
  return { actor, bounds: [] };
}

/** Whether `scopes` hold every management right (`admin`, `*`): the only unbounded keys. */
export function holdsAdmin(scopes: readonly string[]): boolean {
  return findMissingScopes(scopes, MANAGEMENT_SCOPES).length === 0;
}

/** A key's own scopes that grant no management right: what it confers without a ceiling. */
function nonManagementScopes(scopes: readonly string[]): string[] {
  return scopes.filter((scope) => !MANAGEMENT_SCOPES.some((management) => scopeCovers(scope, management)));
}

/** A delegate key's bound: its ceiling, or its own environment and non-management scopes. */
export function keyBound(key: Pick<KeyRecord, "scopes" | "environment" | "delegation">): Bound {
  return {
    source: "key",
    management: key.scopes,
    grantable: key.delegation?.scopes ?? nonManagementScopes(key.scopes),
    environments: key.delegation?.environments ?? [key.environment],
    reach: "conferrable",
    owner: null,
    tightenOnly: false,
  };
}

export function memberEnvironments(policy: MemberPolicy): readonly Environment[] {
  return policy.productionKeys === "direct" ? ALL_ENVIRONMENTS : ["sandbox"];
}

/** A member's bound: their own keys, the member scopes, sandbox unless direct production is allowed, tighten-only. */
export function memberBound(userId: string, policy: MemberPolicy): Bound {
  return {
    source: "member",
    management: MEMBER_MANAGEMENT_SCOPES,
    grantable: policy.scopes,
    environments: memberEnvironments(policy),
    reach: "owner",
    owner: { type: "user", id: userId },
    tightenOnly: true,
  };
}

/** An admin signed in to the dashboard: every key, conferring what KEYWARD_ADMIN_KEY_SCOPES allows. */
export function adminRoleBound(grantable: readonly string[]): Bound {
  return {
    source: "admin_role",
    management: ["admin"],
    grantable,
    environments: ALL_ENVIRONMENTS,
    reach: "all",
    owner: null,
    tightenOnly: false,
  };
}

/** What a portal session's policy lets its holder do (docs/embedding.md). */
export interface PortalBoundPolicy {
  scopes: readonly string[];
  environments: readonly Environment[];
  maxExpiresInDays: number;
  mayRequestProduction: boolean;
}

/** The management scopes a portal session holds, over its owner's keys only. */
export const PORTAL_MANAGEMENT_SCOPES: readonly string[] = ["keys:read", "keys:write"];

/**
 * A portal session: its owner's keys only, conferring the policy's scopes and environments, with
 * an expiry within the policy's longest; tighten-only; production only by request, if allowed.
 */
export function portalBound(owner: OwnerRef, policy: PortalBoundPolicy): Bound {
  return {
    source: "portal",
    management: PORTAL_MANAGEMENT_SCOPES,
    grantable: policy.scopes,
    environments: policy.environments,
    reach: "owner",
    owner,
    tightenOnly: true,
    maxLifetimeMs: policy.maxExpiresInDays * 86_400_000,
    productionRequests: policy.mayRequestProduction,
  };
}

/**
 * A console user acting on an organization's keys by their role there (docs/organizations.md):
 * the organization's keys only, conferring no more than a member may (the member policy's scopes
 * and environments), tighten-only, production by request. A viewer reads; a developer writes
 * the keys they created (`ownsKey`: the acting person made the key, or asked for it) and reads the rest.
 */
export function organizationBound(
  organization: OwnerRef,
  role: OrganizationRole,
  person: string,
  policy: MemberPolicy,
  ownsKey: boolean,
): Bound {
  return {
    source: "organization",
    management: role === "viewer" ? ["keys:read"] : MEMBER_MANAGEMENT_SCOPES,
    grantable: policy.scopes,
    environments: memberEnvironments(policy),
    reach: "owner",
    owner: organization,
    tightenOnly: true,
    organizationRole: role,
    person,
    ...(role === "viewer" || (role === "developer" && !ownsKey) ? { readOnly: true } : {}),
  };
}

/**
 * A key owned by an organization acting on the management API never manages beyond that
 * organization's keys, whatever its scopes (as a member's key stays within the member's own).
 */
export function organizationKeyBound(organization: OwnerRef): Bound {
  return {
    source: "key",
    management: ["keys:read", "keys:write"],
    grantable: "all",
    environments: ALL_ENVIRONMENTS,
    reach: "owner",
    owner: organization,
    tightenOnly: false,
  };
}

/** What creating or re-enabling a member confers. */
export function memberRights(policy: MemberPolicy): MemberRights {
  return { management: MEMBER_MANAGEMENT_SCOPES, scopes: policy.scopes, environments: memberEnvironments(policy) };
}

/**
 * A key acting on the management API: unbounded with admin scopes, else bounded by its ceiling;
 * and a key owned by a member never manages beyond that member's own keys, whatever its scopes.
 */
export function keyAuthority(
  key: Pick<KeyRecord, "id" | "scopes" | "environment" | "delegation" | "owner">,
  ownerRole: "admin" | "member" | null,
  policy: MemberPolicy,
): Authority {
  const bounds: Bound[] = [];
  if (!holdsAdmin(key.scopes)) bounds.push(keyBound(key));
  if (ownerRole === "member") bounds.push(memberBound(key.owner.id, policy));
  if (key.owner.type === "organization") bounds.push(organizationKeyBound(key.owner));
  return { actor: { type: "admin_key", id: key.id }, bounds };
}
