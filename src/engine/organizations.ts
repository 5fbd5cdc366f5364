import type { UserRecord } from "../core/accounts.js";
import { KeywardError } from "../core/errors.js";
import type { OwnerRecord, OwnerRef, RequestContext, SharedLimits } from "../core/model.js";
import type { MembershipRecord, OrganizationRole } from "../core/organizations.js";
import { type SharedLimitsJson, sharedLimitsFromApi, sharedLimitsJson } from "../core/shared-limits.js";
import type { AccountStore } from "../ports/account-store.js";
import { buildAuditEvent } from "./audit.js";
import type { Keyward } from "./keyward.js";

/**
 * Organizations and their members (docs/organizations.md), as the API and the CLI both change
 * and show them. Callers decide authority first (`organization.*` actions); these only write,
 * audit and shape.
 */

export const organizationRef = (id: string): OwnerRef => ({ type: "organization", id });

/** An organization in the API's spelling; `role` is the caller's there, when known. */
export const organizationJson = (owner: OwnerRecord, role: OrganizationRole | null = null) => ({
  id: owner.id,
  name: owner.name,
  disabled: owner.disabled,
  created_at: new Date(owner.createdAt).toISOString(),
  shared_limits: sharedLimitsJson(owner.limits),
  role,
});

export const memberJson = (member: MembershipRecord, user: UserRecord | null) => ({
  user_id: member.userId,
  email: user?.email ?? null,
  role: member.role,
  added_at: new Date(member.addedAt).toISOString(),
  added_by: member.addedBy,
});

export type MemberJson = ReturnType<typeof memberJson>;

/** An organization's members with their emails, oldest first. */
export async function membersWithEmails(store: AccountStore, organization: string): Promise<MemberJson[]> {
  const members: MemberJson[] = [];
  for (const member of await store.listOrganizationMembers(organization))
    members.push(memberJson(member, await store.getUser(member.userId)));
  return members;
}

/**
 * The shared limits after a change that gives some fields (in the API's spelling): each given
 * replaces that limit, the others stay; undefined when none is given (nothing to change).
 */
export function mergeSharedLimits(given: Partial<SharedLimitsJson>, before: OwnerRecord | null): SharedLimits | null | undefined {
  if (given.rate_limit === undefined && given.concurrency === undefined && given.quota === undefined) return undefined;
  const was = sharedLimitsJson(before?.limits ?? null);
  return sharedLimitsFromApi({
    rate_limit: given.rate_limit !== undefined ? given.rate_limit : (was?.rate_limit ?? null),
    concurrency: given.concurrency !== undefined ? given.concurrency : (was?.concurrency ?? null),
    quota: given.quota !== undefined ? given.quota : (was?.quota ?? null),
  });
}

/**
 * Adds a member (`from` null), changes their role, or removes them (`to` null), with its audit
 * event in the same transaction. The store refuses to leave an organization that had an owner
 * without one (409).
 */
export async function changeOrganizationMember(
  keyward: Keyward,
  store: AccountStore,
  context: RequestContext,
  organization: string,
  user: UserRecord,
  from: OrganizationRole | null,
  to: OrganizationRole | null,
): Promise<MembershipRecord | null> {
  const now = keyward.clock.now();
  const action =
    from === null ? "organization.member_added" : to === null ? "organization.member_removed" : "organization.member_role_changed";
  const audit = buildAuditEvent(
    context,
    now,
    action,
    { type: "owner", id: `organization:${organization}` },
    from !== null && to !== null ? { role: { from, to } } : null,
    { user_id: user.id, role: to ?? from },
  );
  const membership: MembershipRecord | null =
    to === null
      ? null
      : { organizationId: organization, userId: user.id, role: to, addedAt: now, addedBy: `${context.actor.type}:${context.actor.id}` };
  const outcome = membership ? await store.saveMembership(membership, audit) : await store.removeMembership(organization, user.id, audit);
  if (outcome === "last_owner")
    throw new KeywardError("CONFLICT", "an organization keeps at least one owner: make someone else owner first");
  if (outcome === "not_found") throw new KeywardError("RESOURCE_NOT_FOUND", `${user.email} is not a member of ${organization}`);
  return membership ? ((await store.getMembership(organization, user.id)) ?? membership) : null;
}
