/**
 * Organizations (docs/organizations.md): an owner of keys whose members, console users, manage
 * them together by role.
 * - `owner`: everything an admin may, and the members who are owners or admins.
 * - `admin`: the organization's keys (every one of them) and its developers and viewers.
 * - `developer`: creates keys in the organization and manages the ones they created; asks for production.
 * - `viewer`: reads the organization's keys and usage.
 */
export type OrganizationRole = "owner" | "admin" | "developer" | "viewer";

export const ORGANIZATION_ROLES: readonly OrganizationRole[] = ["owner", "admin", "developer", "viewer"];

export interface MembershipRecord {
  organizationId: string;
  userId: string;
  role: OrganizationRole;
  addedAt: number;
  /** Who added the member: `<actor type>:<actor id>`. */
  addedBy: string;
}

/** Roles that manage members, and whom: an owner any role, an admin developers and viewers. */
export function managesRole(manager: OrganizationRole, role: OrganizationRole): boolean {
  if (manager === "owner") return true;
  return manager === "admin" && (role === "developer" || role === "viewer");
}

/** Roles that may write keys of the organization (create, and rotate or revoke within reach). */
export const writesKeys = (role: OrganizationRole): boolean => role !== "viewer";
