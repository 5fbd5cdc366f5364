import type { AskedKey, KeyRequestRecord, UserRecord, UserRole } from "../core/accounts.js";
import type { Environment } from "../core/key-format.js";
import type { Actor, DelegationCeiling, KeyChanges, KeyRecord, OwnerRef } from "../core/model.js";
import type { OrganizationRole } from "../core/organizations.js";
import type { ControlField } from "./controls.js";

/**
 * One limit on what an actor may do (docs/authority.md). An actor's authority is a list of
 * bounds, and an action is allowed only when every bound allows it: an admin key has none, a
 * member-owned key has its own ceiling and its owner's member policy.
 */
export interface Bound {
  /**
   * Who set this bound, for messages: the key's ceiling, the member policy, the admin role, or a
   * portal session's policy (docs/embedding.md).
   */
  source: "key" | "member" | "admin_role" | "portal" | "organization";
  /** Management scopes held (`admin` covers them all): nothing conferred may exceed them. */
  management: readonly string[];
  /** Scopes it may confer; "all" for no limit. */
  grantable: readonly string[] | "all";
  /** Environments it may confer. */
  environments: readonly Environment[];
  /**
   * Which keys it may act on: `all`; `owner` (only `owner`'s keys: members); `conferrable` (only
   * keys it could have minted itself: delegates).
   */
  reach: "all" | "owner" | "conferrable";
  owner: OwnerRef | null;
  /** Controls of keys in reach may be tightened, and loosened only where this actor set them. */
  tightenOnly: boolean;
  /** Keys it creates must expire, at most this long after they are made (portal sessions). */
  maxLifetimeMs?: number;
  /** False: it may neither ask for a production key nor pick one up (portal sessions that may not). */
  productionRequests?: boolean;
  /** Reads only: an organization's viewer, or a developer before a key someone else created (docs/organizations.md). */
  readOnly?: boolean;
  /** An organization bound's role there, and the person who holds it (whose own settings they may loosen). */
  organizationRole?: OrganizationRole;
  person?: string;
}

export interface Authority {
  actor: Actor;
  bounds: readonly Bound[];
}

/** The rights a key holds: what minting, rotating, approving or re-enabling it confers. */
export interface KeyRights {
  owner: OwnerRef;
  environment: Environment;
  scopes: readonly string[];
  delegation: DelegationCeiling | null;
}

/** What a member is given by its role: what creating or re-enabling one confers. */
export interface MemberRights {
  management: readonly string[];
  scopes: readonly string[];
  environments: readonly Environment[];
}

/**
 * Every management action, as data. `decide` answers each; the authorization matrix names, for
 * every route, which of these it asks about.
 */
export type Action =
  | { type: "key.read"; key: KeyRecord }
  | {
      type: "key.create";
      rights: KeyRights;
      /** The expiry asked for and the time now: what a bound with `maxLifetimeMs` decides on. */
      expiry?: { at: number | null; now: number };
    }
  | {
      type: "key.update";
      key: KeyRecord;
      changes: KeyChanges;
      /** For each control the change loosens: whether the acting member set it (from the audit trail). */
      setByActor: Partial<Record<ControlField, boolean>>;
    }
  | { type: "key.rotate"; key: KeyRecord }
  | { type: "key.revoke"; key: KeyRecord }
  | { type: "key_request.create"; sandbox: KeyRecord; forItself: boolean }
  | { type: "key_request.read"; request: KeyRequestRecord }
  | { type: "key_request.approve"; request: KeyRequestRecord; asked: AskedKey }
  | { type: "key_request.reject"; request: KeyRequestRecord }
  /** Picking up an approved key: its plaintext goes to the requester (the sandbox key, or the person who asked) only. */
  | {
      type: "key_request.claim";
      request: KeyRequestRecord;
      /** A portal session claims for its owner: any approved request of that owner. */
      claimant: { type: "key" | "user"; id: string } | { type: "portal"; id: string; owner: OwnerRef };
    }
  | { type: "user.create"; role: UserRole; member: MemberRights }
  | { type: "user.update"; user: UserRecord; disabled: boolean; member: MemberRights; keys: readonly KeyRecord[] }
  /**
   * An invite or password-reset link for a user: whoever holds it becomes that person, with their
   * role, member rights and keys, so it is decided as managing that user is.
   */
  | { type: "user.credentials"; user: UserRecord; member: MemberRights; keys: readonly KeyRecord[] }
  /**
   * Ending a user's dashboard sessions (docs/authority.md): decided as managing that user is, so
   * no caller signs out someone with more rights than it holds.
   */
  | { type: "user.sessions"; user: UserRecord; member: MemberRights; keys: readonly KeyRecord[] }
  | { type: "owner.update"; owner: OwnerRef; disabled: boolean; user: UserRecord | null; keys: readonly KeyRecord[] }
  /**
   * Opening a portal session (docs/embedding.md): it hands its holder the power to mint keys of
   * `owner` within `policy`, so it is decided as conferring those rights is.
   */
  | { type: "portal_session.create"; owner: OwnerRef; scopes: readonly string[]; environments: readonly Environment[] }
  /** Reading or revoking a portal session: an admin, or a key of the owner of the key that opened it. */
  | { type: "portal_session.manage"; openedBy: OwnerRef | null; caller: OwnerRef | null }
  /** Creating an organization, or setting the limits its keys share: administrators only (docs/organizations.md). */
  | { type: "organization.govern" }
  /** Renaming an organization: an administrator, or its owners and admins. */
  | { type: "organization.update"; organization: OwnerRef }
  /**
   * Adding, changing or removing a member of an organization: decided on the role they have
   * and the role they get, so nobody hands out or takes away a role mightier than their own.
   */
  | {
      type: "organization.members";
      organization: OwnerRef;
      from: OrganizationRole | null;
      to: OrganizationRole | null;
      /** The caller removing themselves: any member may leave (the last owner excepted, by the store). */
      leaving?: boolean;
    }
  | { type: "leaks.report" }
  /**
   * Importing keys (docs/migrating.md): any owner, any scopes, any environment, keys whose
   * secrets someone already holds. It confers whatever the file says, so only an unbounded actor
   * (an admin key, the CLI) may.
   */
  | { type: "keys.import" }
  | { type: "webhooks.manage" }
  | { type: "audit.read" }
  | { type: "usage.read" }
  | { type: "users.read" };

export type ActionType = Action["type"];

/** Every action type, for the matrix test: a route that names none of these has no decision. */
export const ACTION_TYPES: readonly ActionType[] = [
  "key.read",
  "key.create",
  "key.update",
  "key.rotate",
  "key.revoke",
  "key_request.create",
  "key_request.read",
  "key_request.approve",
  "key_request.reject",
  "key_request.claim",
  "user.create",
  "user.update",
  "user.credentials",
  "user.sessions",
  "owner.update",
  "portal_session.create",
  "portal_session.manage",
  "organization.govern",
  "organization.update",
  "organization.members",
  "leaks.report",
  "keys.import",
  "webhooks.manage",
  "audit.read",
  "usage.read",
  "users.read",
];

export type Decision =
  | { allowed: true }
  | { allowed: false; code: "FORBIDDEN" | "RESOURCE_NOT_FOUND" | "KEY_AWAITING_PICKUP" | "OWNER_FOLLOWS_USER"; message: string };
