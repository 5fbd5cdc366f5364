import {
  adminRoleBound,
  keyAuthority,
  type MemberPolicy,
  memberBound,
  memberRights,
  organizationBound,
  portalBound,
} from "../authority/actors.js";
import { CONTROL_NAMES, type ControlField, loosenedControls } from "../authority/controls.js";
import { decide } from "../authority/decide.js";
import type { Action, Authority, MemberRights } from "../authority/model.js";
import type { UserRecord } from "../core/accounts.js";
import { KeywardError } from "../core/errors.js";
import { type Actor, type AuditEvent, computeKeyStatus, type KeyChanges, type KeyRecord, type OwnerRef } from "../core/model.js";
import type { PortalSessionRecord } from "../core/portal-policy.js";
import type { Page } from "../engine/keyward.js";
import type { ServiceContext } from "./context.js";
import type { Caller } from "./sessions.js";

/** The member policy of this deployment (docs/authority.md). */
export function memberPolicyOf(ctx: Pick<ServiceContext, "config">): MemberPolicy {
  return { scopes: ctx.config.dashboard.memberKeyScopes, productionKeys: ctx.config.dashboard.memberProductionKeys };
}

export function memberRightsOf(ctx: Pick<ServiceContext, "config">): MemberRights {
  return memberRights(memberPolicyOf(ctx));
}

/** The dashboard role of a user owner, when it has an account. */
async function ownerRole(ctx: ServiceContext, owner: KeyRecord["owner"]): Promise<"admin" | "member" | null> {
  if (owner.type !== "user" || !ctx.accounts) return null;
  return (await ctx.accounts.store.getUser(owner.id))?.role ?? null;
}

/**
 * The authority of a management caller. A key is read afresh from the store (its ceiling as it
 * is now, not as a cache holds it); a key owned by a member carries the member's bound too.
 */
export async function authorityOf(ctx: ServiceContext, caller: Caller): Promise<Authority> {
  if (caller.kind === "user") {
    const bound =
      caller.user.role === "admin" ? adminRoleBound(ctx.config.dashboard.adminKeyScopes) : memberBound(caller.user.id, memberPolicyOf(ctx));
    return { actor: caller.actor, bounds: [bound] };
  }
  const key = await ctx.keyward.getKey(caller.result.key.id);
  return keyAuthority(key, await ownerRole(ctx, key.owner), memberPolicyOf(ctx));
}

/** The person behind a key: who made the first key of its rotation lineage, or who asked for it when an approval issued it. */
async function personBehind(ctx: ServiceContext, key: KeyRecord): Promise<string | null> {
  let root = key;
  for (let hops = 0; root.rotatedFrom !== null && hops < 1000; hops++) {
    const previous = await ctx.keyward.store.getKey(root.rotatedFrom);
    if (!previous) break;
    root = previous;
  }
  const created = (await ctx.keyward.store.listAuditEvents({ targetId: root.id, action: "key.created" }, 1, null)).events[0];
  if (!created) return null;
  const requestId = created.details?.key_request_id;
  if (typeof requestId === "string" && ctx.accounts) {
    const asked = await ctx.accounts.store.getKeyRequest(requestId);
    if (asked?.requestedBy.type === "user") return asked.requestedBy.id;
  }
  return created.actor.type === "user" ? created.actor.id : null;
}

/**
 * The caller as it acts on `owner`'s keys (docs/organizations.md): a console member acting on
 * an organization they belong to does so by their role there, read afresh at every request
 * (someone removed loses access at once); `key`, when the action is on one, tells a developer's
 * own keys from the rest. Every other caller keeps its own authority.
 */
export async function scopedTo<C extends { kind: string; authority: Authority }>(
  ctx: ServiceContext,
  caller: C,
  owner: OwnerRef,
  key?: KeyRecord,
): Promise<C> {
  if (owner.type !== "organization" || !ctx.accounts) return caller;
  const user = (caller as { kind: string; user?: UserRecord }).user;
  if (caller.kind !== "user" || !user || user.role === "admin") return caller;
  const membership = await ctx.accounts.store.getMembership(owner.id, user.id);
  if (!membership) return caller;
  const ownsKey = key === undefined || membership.role !== "developer" || (await personBehind(ctx, key)) === user.id;
  const bound = organizationBound(owner, membership.role, user.id, memberPolicyOf(ctx), ownsKey);
  return { ...caller, authority: { actor: caller.authority.actor, bounds: [bound] } };
}

/**
 * A key the caller may see, and the caller as it acts on that key (`scopedTo`): another owner's
 * key is simply not there (404), never "forbidden".
 */
export async function keyInReach<C extends { kind: string; authority: Authority }>(
  ctx: ServiceContext,
  caller: C,
  id: string,
): Promise<{ key: KeyRecord; caller: C }> {
  const key = await ctx.keyward.getKey(id);
  const scoped = await scopedTo(ctx, caller, key.owner, key);
  enforce(scoped.authority, { type: "key.read", key });
  return { key, caller: scoped };
}

/** A portal session's authority (docs/embedding.md): one bound, its owner's keys within its policy. */
export function portalAuthority(session: PortalSessionRecord): Authority {
  return { actor: { type: "portal", id: session.id }, bounds: [portalBound(session.owner, session.policy)] };
}

/** Throws the decision's problem unless `authority` may do `action`. */
export function enforce(authority: Authority, action: Action): void {
  const decision = decide(authority, action);
  if (!decision.allowed) throw new KeywardError(decision.code, decision.message);
}

/** Whether the audit trail names `actor` as the acting member or one of the member's own keys. */
async function actedAsMember(ctx: ServiceContext, memberId: string, actor: Actor): Promise<boolean> {
  if (actor.type === "user") return actor.id === memberId;
  if (actor.type !== "admin_key" && actor.type !== "key") return false;
  const key = await ctx.keyward.store.getKey(actor.id);
  return key !== null && key.owner.type === "user" && key.owner.id === memberId;
}

/**
 * Who last set each control that `changes` would loosen on `key`: the newest audit event that
 * changed it, or else the event that created the key (a rotated key inherits its predecessor's
 * controls). Only asked for members, whose loosening is limited to what they set themselves.
 * Each key of the lineage has its events read once, whatever the number of controls.
 */
async function loosenedSetByActor(
  ctx: ServiceContext,
  authority: Authority,
  key: KeyRecord,
  changes: KeyChanges,
): Promise<Partial<Record<ControlField, boolean>>> {
  const tight = authority.bounds.find((bound) => bound.tightenOnly);
  // The person whose own settings may be loosened: an organization member, or the member owning the keys.
  const member = tight?.person !== undefined ? { id: tight.person } : tight?.owner;
  if (!member) return {};
  const setters = new Map<ControlField, Actor | null>();
  const loosened = loosenedControls(key, { ...key, ...changes });
  let unresolved = loosened;
  for (let current: KeyRecord | null = key; current && unresolved.length > 0; ) {
    const events: AuditEvent[] = (await ctx.keyward.store.listAuditEvents({ targetId: current.id }, 500, null)).events;
    const created = current.rotatedFrom === null ? (events.find((event) => event.action === "key.created")?.actor ?? null) : undefined;
    for (const field of unresolved) {
      const changed = events.find((event) => event.changes && CONTROL_NAMES[field] in event.changes)?.actor;
      if (changed) setters.set(field, changed);
      else if (created !== undefined) setters.set(field, created);
    }
    unresolved = unresolved.filter((field) => !setters.has(field));
    current = unresolved.length === 0 || current.rotatedFrom === null ? null : await ctx.keyward.store.getKey(current.rotatedFrom);
  }
  const result: Partial<Record<ControlField, boolean>> = {};
  for (const field of loosened) {
    const setter = setters.get(field) ?? null;
    result[field] = setter !== null && (await actedAsMember(ctx, member.id, setter));
  }
  return result;
}

/** The authority decision for a key change, with what the audit trail says about loosened controls. */
export async function enforceKeyUpdate(ctx: ServiceContext, authority: Authority, key: KeyRecord, changes: KeyChanges): Promise<void> {
  enforce(authority, { type: "key.update", key, changes, setByActor: await loosenedSetByActor(ctx, authority, key, changes) });
}

/** Every key of an owner that is not revoked: what enabling or disabling the owner (or its user) touches. */
export async function liveKeysOf(ctx: ServiceContext, owner: OwnerRef): Promise<KeyRecord[]> {
  const keys: KeyRecord[] = [];
  let cursor: string | null = null;
  do {
    const page: Page<KeyRecord> = await ctx.keyward.listKeys(
      { ownerType: owner.type, ownerId: owner.id },
      { limit: 200, ...(cursor ? { cursor } : {}) },
    );
    const now = ctx.keyward.clock.now();
    keys.push(...page.data.filter((key) => computeKeyStatus(key, now) !== "revoked"));
    cursor = page.nextCursor;
  } while (cursor);
  return keys;
}
