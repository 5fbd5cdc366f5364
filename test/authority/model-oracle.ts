/**
 * The oracle of the authority model test (test/authority/model.test.ts): a small reading of
 * docs/authority.md written on its own. It imports nothing from src/ (not src/authority, not
 * src/core/scopes): where it and the service agree, it is because both follow the contract.
 *
 * The model holds what the test knows of one run: every key it has seen created (its plaintext
 * when the actor that obtained it legitimately did, its owner, environment, scopes, ceiling,
 * controls, and which actor conferred it), the dashboard users, the owners' disabled flags and
 * the production key requests. For each action the oracle answers a `Verdict`:
 *   - refuse: the contract forbids it; the service must answer 4xx (never 2xx);
 *   - allow: a clear-cut case the contract allows; the service must answer 2xx;
 *   - may: anything else (the contract allows it, or does not say, or it is a plain conflict).
 * Only "refuse" is the invariant ("nothing beyond what was held"); "allow" is kept to a few
 * clear-cut cases so the test cannot become flaky.
 *
 * Where the contract is ambiguous the stricter reading is taken, and a comment says so.
 */

export type Env = "sandbox" | "production";
export type Role = "admin" | "member";
export interface OwnerRef {
  type: "user" | "application";
  id: string;
}
export interface RateLimit {
  requests: number;
  per_seconds: number;
}
/** Who set a control (or disabled a key): a member (or a key a member owns), anyone else, or nobody. */
export type SetBy = "member" | "other" | null;

export const MANAGEMENT_SCOPES = ["keys:read", "keys:write", "keys:verify", "users:write", "audit:read", "portal:create"] as const;
/** The management scopes a member's dashboard session holds. */
export const MEMBER_ROLE_SCOPES: readonly string[] = ["keys:read", "keys:write"];

// ---------------------------------------------------------------- scopes

/**
 * Does `granted` cover `required`? `*` as the last segment covers one or more trailing segments
 * (`orders:*` covers `orders:read`, `*` covers everything, management scopes included); `*`
 * elsewhere covers exactly one segment; `admin` covers the management scopes.
 */
export function scopeCovers(granted: string, required: string): boolean {
  if (granted === required) return true;
  if (granted === "admin") return (MANAGEMENT_SCOPES as readonly string[]).includes(required);
  const g = granted.split(":");
  const r = required.split(":");
  for (let i = 0; i < g.length; i++) {
    if (g[i] === "*" && i === g.length - 1) return r.length > i;
    if (i >= r.length) return false;
    if (g[i] !== "*" && g[i] !== r[i]) return false;
  }
  return g.length === r.length;
}

export const holds = (granted: readonly string[], scope: string): boolean => granted.some((g) => scopeCovers(g, scope));
/** The management scopes a scope grants (`keys:*` grants three, `admin` and `*` all five). */
export const managementIn = (scope: string): string[] => MANAGEMENT_SCOPES.filter((m) => scopeCovers(scope, m));
export const isManagement = (scope: string): boolean => managementIn(scope).length > 0;
/** An admin key: scope `admin` or `*`. */
export const isUnboundedScopes = (scopes: readonly string[]): boolean => scopes.includes("admin") || scopes.includes("*");

export const sameSet = <T>(a: readonly T[] | null | undefined, b: readonly T[] | null | undefined): boolean => {
  if (a === null || a === undefined || b === null || b === undefined) return (a ?? null) === (b ?? null);
  const sa = new Set(a);
  const sb = new Set(b);
  return sa.size === sb.size && [...sa].every((x) => sb.has(x));
};
export const fmt = (list: readonly string[] | null | undefined): string => (list ? `[${list.join(",")}]` : "none");
export const ownedBy = (owner: OwnerRef, userId: string): boolean => owner.type === "user" && owner.id === userId;
export const ownerKey = (owner: OwnerRef): string => `${owner.type}:${owner.id}`;

// ---------------------------------------------------------------- bounds

/** What a key is, for the question "could this actor have conferred it". */
export interface KeyShape {
  owner: OwnerRef;
  env: Env;
  scopes: readonly string[];
  ceilingScopes: readonly string[] | null;
  ceilingEnvs: readonly Env[] | null;
}

/** One bound of an actor's authority (docs/authority.md, "Actors and their bounds"). */
export interface Bound {
  label: string;
  /** The member this bound confines to their own keys, or null. */
  member: string | null;
  /** The portal session this bound is the policy of (its owner's keys only), or null. */
  portal: ModelPortal | null;
  /** The route gate: does it hold this management scope? */
  holds(managementScope: string): boolean;
  confersScope(scope: string): boolean;
  confersEnv(env: Env): boolean;
  /** The keys it may act on at all. */
  reaches(key: KeyShape): boolean;
}

function shapeWithin(key: KeyShape, confersScope: (s: string) => boolean, confersEnv: (e: Env) => boolean): boolean {
  return (
    key.scopes.every(confersScope) &&
    confersEnv(key.env) &&
    (key.ceilingScopes ?? []).every(confersScope) &&
    (key.ceilingEnvs ?? []).every(confersEnv)
  );
}

/**
 * A delegate (a key that is not an admin key): it confers the environments of its
 * `grantable_environments`, or with none its own environment; scopes covered by its
 * `grantable_scopes`, or with no ceiling its own non-management scopes; never a management scope
 * it does not hold. It reaches only keys it could have minted itself.
 *
 * Ambiguous: "its own environment, or the environments in its grantable_environments" reads
 * either as a union or, like the scopes bullet beside it ("or, with no ceiling set, its own
 * non-management scopes"), as the ceiling replacing the own environment. The stricter reading is
 * taken: a production key whose ceiling names only sandbox confers sandbox only.
 */
export function delegateBound(key: KeyShape, label: string): Bound {
  const grantable = key.ceilingScopes ?? key.scopes.filter((s) => !isManagement(s));
  const envs = new Set<Env>(key.ceilingEnvs ?? [key.env]);
  const confersScope = (s: string) => holds(grantable, s) && managementIn(s).every((m) => holds(key.scopes, m));
  const confersEnv = (e: Env) => envs.has(e);
  return {
    label: `the ceiling of ${label}`,
    member: null,
    portal: null,
    holds: (m) => holds(key.scopes, m),
    confersScope,
    confersEnv,
    reaches: (target) => shapeWithin(target, confersScope, confersEnv),
  };
}

/** The member policy: own keys only, sandbox only, the scopes of KEYWARD_MEMBER_KEY_SCOPES. */
export function memberBound(userId: string, label: string, memberKeyScopes: readonly string[]): Bound {
  return {
    label: `the member policy of ${label}`,
    member: userId,
    portal: null,
    holds: (m) => MEMBER_ROLE_SCOPES.includes(m),
    confersScope: (s) => holds(memberKeyScopes, s) && managementIn(s).every((m) => holds(MEMBER_ROLE_SCOPES, m)),
    confersEnv: (e) => e === "sandbox",
    reaches: (target) => ownedBy(target.owner, userId),
  };
}

/**
 * A portal session (docs/embedding.md, docs/authority.md "Portal sessions"): its owner's keys
 * only, conferring the policy's scopes (never a management scope) in the policy's environments,
 * with an expiry within the policy's longest; holds keys:read and keys:write over those keys and
 * nothing else, and only on the portal routes (create, list, read, rotate, revoke, ask, claim).
 */
export interface ModelPortal {
  id: string;
  token: string;
  label: string;
  owner: OwnerRef;
  scopes: string[];
  envs: Env[];
  maxDays: number;
  mayRequestProduction: boolean;
}

export const PORTAL_ROLE_SCOPES: readonly string[] = ["keys:read", "keys:write"];

export function portalBound(portal: ModelPortal): Bound {
  const confersScope = (s: string) => holds(portal.scopes, s) && !isManagement(s) && s !== "admin";
  const confersEnv = (e: Env) => portal.envs.includes(e);
  return {
    label: `the policy of ${portal.label}`,
    member: null,
    portal,
    holds: (m) => PORTAL_ROLE_SCOPES.includes(m),
    confersScope,
    confersEnv,
    reaches: (target) => target.owner.type === portal.owner.type && target.owner.id === portal.owner.id,
  };
}

/** Within a portal's policy: its owner, its scopes, its environments (production once approved, when it may ask). */
export function withinPortalPolicy(portal: ModelPortal, key: KeyShape): string | null {
  if (key.owner.type !== portal.owner.type || key.owner.id !== portal.owner.id) return "another owner";
  const outside = key.scopes.filter((s) => !holds(portal.scopes, s) || isManagement(s));
  if (outside.length > 0) return `scopes ${fmt(outside)} outside the policy`;
  if (!portal.envs.includes(key.env) && !(key.env === "production" && portal.mayRequestProduction))
    return `${key.env}, which the policy does not allow`;
  if (key.ceilingScopes !== null || key.ceilingEnvs !== null) return "a delegation ceiling";
  return null;
}

export interface Authority {
  label: string;
  /** No bounds: an admin key, an admin session (KEYWARD_ADMIN_KEY_SCOPES is `*`), the CLI. */
  bounds: Bound[];
  /** The route gate: may it call a route that needs this management scope? */
  gate(managementScope: string): boolean;
}
export const isUnbounded = (a: Authority): boolean => a.bounds.length === 0;

// ---------------------------------------------------------------- verdicts

export class Verdict {
  readonly refusals: string[] = [];
  allowed: string | null = null;
  readonly notes: string[] = [];
  refuse(why: string): void {
    if (!this.refusals.includes(why)) this.refusals.push(why);
  }
  get kind(): "refuse" | "may" | "allow" {
    return this.refusals.length > 0 ? "refuse" : this.allowed !== null ? "allow" : "may";
  }
  describe(): string {
    if (this.refusals.length > 0) return `refuse: ${this.refusals.join("; ")}`;
    if (this.allowed !== null) return `allow: ${this.allowed}`;
    return this.notes.length > 0 ? `may (${this.notes.join("; ")})` : "may";
  }
}

// ---------------------------------------------------------------- the model

export type Actor = { kind: "key"; keyId: string } | { kind: "session"; userId: string } | { kind: "portal"; portalId: string };
export const sameActor = (a: Actor, b: Actor): boolean =>
  a.kind === "key"
    ? b.kind === "key" && a.keyId === b.keyId
    : a.kind === "portal"
      ? b.kind === "portal" && a.portalId === b.portalId
      : b.kind === "session" && a.userId === b.userId;

export interface Controls {
  cidrs: string[];
  rateLimit: RateLimit | null;
  /** Epoch ms; undefined while not known (an approved key's expiry is not part of what is asked). */
  expiresAt: number | null | undefined;
}

export interface ModelKey extends KeyShape, Controls {
  id: string;
  label: string;
  plaintext: string | null;
  scopes: string[];
  ceilingScopes: string[] | null;
  ceilingEnvs: Env[] | null;
  enabled: boolean;
  disabledBy: SetBy;
  revoked: boolean;
  replacedBy: string | null;
  rotatedFrom: string | null;
  awaitingPickup: boolean;
  fromApproval: boolean;
  setBy: { cidrs: SetBy; rateLimit: SetBy; expiresAt: SetBy };
  /** The actor whose authority conferred its current rights (created, last widened, rotated or approved it). */
  conferredBy: string;
  /** The portal session that conferred them, when one did: the key must lie within its policy. */
  portalId?: string;
}

export interface ModelUser {
  id: string;
  email: string;
  label: string;
  role: Role;
  disabled: boolean;
  /** Once disabled, its sessions ended; after re-enabling, whether an old session works is not this test's question. */
  everDisabled: boolean;
  /** Created by an unbounded actor: the only way an admin may come to exist. */
  legitAdmin: boolean;
  createdBy: string;
}

export interface AskedKey {
  scopes: string[];
  cidrs: string[];
  rateLimit: RateLimit | null;
  expiresAt: number | null;
}

export interface ModelRequest {
  id: string;
  label: string;
  sandboxKeyId: string;
  owner: OwnerRef;
  requester: Actor;
  asked: AskedKey;
  status: "pending" | "approved" | "rejected";
  issuedKeyId: string | null;
  claimed: boolean;
}

export type Change =
  | { kind: "scopes"; scopes: string[] }
  | { kind: "enabled"; enabled: boolean }
  | { kind: "cidrs"; cidrs: string[] }
  | { kind: "rateLimit"; rateLimit: RateLimit | null }
  | { kind: "expiresAt"; at: number | null }
  | { kind: "ceiling"; scopes: string[] | null; envs: Env[] | null };

export interface CreateRequest {
  owner: OwnerRef;
  env: Env;
  scopes: string[];
  ceilingScopes: string[] | null;
  ceilingEnvs: Env[] | null;
  controls: { cidrs: string[]; rateLimit: RateLimit | null; expiresAt: number | null };
}

/** The key object of the HTTP API, as far as the checks read it. */
export interface ListedKey {
  id: string;
  owner: OwnerRef;
  environment: Env;
  scopes: string[];
  status: string;
  created_at: string;
  expires_at: string | null;
  allowed_cidrs: string[];
  rate_limit: (RateLimit & { burst?: number }) | null;
  grantable_scopes?: string[] | null;
  grantable_environments?: Env[] | null;
}
export interface ListedUser {
  id: string;
  email: string;
  role: Role;
  disabled: boolean;
}

const loosensCidrs = (from: readonly string[], to: readonly string[]) => from.length > 0 && !sameSet(from, to);
const tightensCidrs = (from: readonly string[], to: readonly string[]) => from.length === 0 && to.length > 0;
const loosensRate = (from: RateLimit | null, to: RateLimit | null) =>
  from !== null && (to === null || to.requests / to.per_seconds > from.requests / from.per_seconds);
const loosensExpiry = (from: number | null | undefined, to: number | null) =>
  from !== null && from !== undefined && (to === null || to > from);

export class Model {
  readonly keys = new Map<string, ModelKey>();
  readonly users = new Map<string, ModelUser>();
  /** Owners that were disabled or enabled, by `type:id`. */
  readonly ownerDisabled = new Map<string, boolean>();
  readonly requests: ModelRequest[] = [];
  /** Owners of this run: every key and user the checks look at belongs to one of them. */
  readonly owners: OwnerRef[] = [];
  /** Portal sessions of this run, by id. */
  readonly portals = new Map<string, ModelPortal>();

  /** The run's first key's creation time (the test sets it): portal expiries are judged against it. */
  runStart = 0;

  constructor(
    readonly tag: string,
    readonly memberKeyScopes: readonly string[],
  ) {}

  key(id: string): ModelKey {
    const key = this.keys.get(id);
    if (!key) throw new Error(`model: no key ${id}`);
    return key;
  }
  user(id: string): ModelUser {
    const user = this.users.get(id);
    if (!user) throw new Error(`model: no user ${id}`);
    return user;
  }
  isRunOwner(owner: OwnerRef): boolean {
    return owner.type === "application" ? owner.id.startsWith(`${this.tag}-`) : this.users.has(owner.id);
  }
  isOwnerDisabled(owner: OwnerRef): boolean {
    return this.ownerDisabled.get(ownerKey(owner)) ?? false;
  }
  /** The member a key's owner is, if it is a dashboard user whose role is member. */
  memberOwning(owner: OwnerRef): string | null {
    return owner.type === "user" && this.users.get(owner.id)?.role === "member" ? owner.id : null;
  }
  ownerLabel(owner: OwnerRef): string {
    return owner.type === "user" ? `user:${this.users.get(owner.id)?.label ?? owner.id}` : `app:${owner.id}`;
  }
  actorLabel(actor: Actor): string {
    if (actor.kind === "portal") return this.portal(actor.portalId).label;
    return actor.kind === "key" ? this.key(actor.keyId).label : `session of ${this.user(actor.userId).label}`;
  }
  portal(id: string): ModelPortal {
    const portal = this.portals.get(id);
    if (!portal) throw new Error(`model: no portal ${id}`);
    return portal;
  }
  keysOf(owner: OwnerRef): ModelKey[] {
    return [...this.keys.values()].filter((k) => k.owner.type === owner.type && k.owner.id === owner.id);
  }

  authority(actor: Actor): Authority {
    if (actor.kind === "portal") {
      const portal = this.portal(actor.portalId);
      const bound = portalBound(portal);
      return { label: portal.label, bounds: [bound], gate: (m) => bound.holds(m) };
    }
    if (actor.kind === "session") {
      const user = this.user(actor.userId);
      const label = `session of ${user.label}`;
      // An admin session is bounded by KEYWARD_ADMIN_KEY_SCOPES, left at its default `*`: unbounded.
      if (user.role === "admin") return { label, bounds: [], gate: () => true };
      const bound = memberBound(user.id, user.label, this.memberKeyScopes);
      return { label, bounds: [bound], gate: (m) => bound.holds(m) };
    }
    const key = this.key(actor.keyId);
    const bounds: Bound[] = [];
    if (!isUnboundedScopes(key.scopes)) bounds.push(delegateBound(key, key.label));
    // A key a member owns never manages beyond that member's own keys, whatever its scopes say.
    const member = this.memberOwning(key.owner);
    if (member) bounds.push(memberBound(member, this.user(member).label, this.memberKeyScopes));
    return { label: key.label, bounds, gate: (m) => holds(key.scopes, m) && bounds.every((b) => b.holds(m)) };
  }

  /**
   * Can the actor authenticate at all? "dead": certainly not (so whatever it does must be
   * refused); "unknown": a session whose user was disabled and enabled again, or a rate-limited key.
   */
  actorState(actor: Actor): { state: "live" | "dead" | "unknown"; why: string } {
    // Portal sessions of a run are opened by the CLI's key for 4 hours and never revoked.
    if (actor.kind === "portal") return { state: "live", why: "" };
    if (actor.kind === "session") {
      const user = this.user(actor.userId);
      if (user.disabled) return { state: "dead", why: "its user is disabled" };
      if (user.everDisabled) return { state: "unknown", why: "its user was disabled (sessions ended) and enabled again" };
      return { state: "live", why: "" };
    }
    const key = this.key(actor.keyId);
    if (key.plaintext === null) return { state: "dead", why: "nobody holds its plaintext" };
    if (key.revoked) return { state: "dead", why: "revoked" };
    if (key.awaitingPickup) return { state: "dead", why: "awaiting pickup" };
    if (!key.enabled) return { state: "dead", why: "disabled" };
    if (this.isOwnerDisabled(key.owner)) return { state: "dead", why: "its owner is disabled" };
    if (key.cidrs.length > 0) return { state: "dead", why: `allowed_cidrs ${fmt(key.cidrs)} exclude loopback` };
    // Management calls are not metered, but whether every route skips the limits is not this
    // test's question: a rate-limited key is never the actor of a must-succeed case.
    if (key.rateLimit !== null) return { state: "unknown", why: `${key.label} has a rate limit` };
    return { state: "live", why: "" };
  }

  /** The common start of a management action: the actor must authenticate and pass the route gate. */
  private begin(actor: Actor, gate: (a: Authority) => string | null): { v: Verdict; a: Authority; live: boolean } {
    const v = new Verdict();
    const a = this.authority(actor);
    const state = this.actorState(actor);
    if (state.state === "dead") v.refuse(`${a.label} cannot authenticate: ${state.why}`);
    if (state.state === "unknown") v.notes.push(state.why);
    const gated = gate(a);
    if (gated) v.refuse(gated);
    return { v, a, live: state.state === "live" };
  }
  private static needs =
    (scope: string) =>
    (a: Authority): string | null =>
      a.gate(scope) ? null : `${a.label} does not hold ${scope}`;

  /** Conferring a key of this shape: every bound must be able to confer all of it. */
  private confer(v: Verdict, bound: Bound, shape: Omit<KeyShape, "owner">): void {
    if (!bound.confersEnv(shape.env)) v.refuse(`${bound.label} cannot confer ${shape.env}`);
    for (const s of shape.scopes) if (!bound.confersScope(s)) v.refuse(`${bound.label} cannot confer ${s}`);
    for (const s of shape.ceilingScopes ?? []) if (!bound.confersScope(s)) v.refuse(`${bound.label} cannot confer ceiling scope ${s}`);
    for (const e of shape.ceilingEnvs ?? []) if (!bound.confersEnv(e)) v.refuse(`${bound.label} cannot confer ceiling environment ${e}`);
  }

  /** "The management scopes in a ceiling must be held by the key itself." */
  private static ceilingHeld(v: Verdict, ceilingScopes: readonly string[] | null, keyScopes: readonly string[]): void {
    for (const c of ceilingScopes ?? [])
      for (const m of managementIn(c))
        if (!holds(keyScopes, m)) v.refuse(`ceiling scope ${c} grants ${m}, which the key itself does not hold`);
  }

  // ---------------------------------------------------------------- verdicts, action by action

  judgeCreate(actor: Actor, request: CreateRequest): Verdict {
    const { v, a, live } = this.begin(actor, Model.needs("keys:write"));
    Model.ceilingHeld(v, request.ceilingScopes, request.scopes);
    for (const bound of a.bounds) {
      if (bound.member && !ownedBy(request.owner, bound.member)) v.refuse(`${bound.label}: a member creates keys for themselves only`);
      if (bound.portal) {
        const portal = bound.portal;
        if (!bound.reaches({ ...request, env: request.env })) v.refuse(`${bound.label}: a portal session creates keys for its owner only`);
        if (request.ceilingScopes !== null || request.ceilingEnvs !== null) v.refuse(`${bound.label}: a portal session sets no ceiling`);
        const expires = request.controls.expiresAt;
        if (expires === null) v.refuse(`${bound.label}: keys created through a portal session must expire`);
        // Judged against the run's start: a step's own clock is a little later, never earlier.
        else if (expires - this.runStart > portal.maxDays * 86_400_000)
          v.refuse(`${bound.label}: the expiry is beyond ${portal.maxDays} days`);
      }
      this.confer(v, bound, request);
    }
    const plain =
      live &&
      request.scopes.length > 0 &&
      request.ceilingScopes === null &&
      request.ceilingEnvs === null &&
      !this.isOwnerDisabled(request.owner);
    if (plain && request.owner.type === "application" && (isUnbounded(a) || a.bounds.every((b) => b.member === null)))
      v.allowed = isUnbounded(a) ? "an admin mints a key" : "a delegate mints a key within its ceiling";
    if (plain && actor.kind === "session" && ownedBy(request.owner, actor.userId) && a.bounds.length === 1)
      v.allowed = "a member mints their own sandbox key within the member scopes";
    return v;
  }

  /** The reach rule, shared by every action on an existing key. */
  private reach(v: Verdict, a: Authority, actor: Actor, key: ModelKey, conferring: boolean): void {
    const self = actor.kind === "key" && actor.keyId === key.id;
    for (const bound of a.bounds) {
      if (bound.reaches(key)) continue;
      // A delegate never reaches itself (it cannot confer the keys:write it holds). Disabling,
      // tightening or revoking itself confers nothing, so the contract is left unread there: may.
      if (self && !conferring) v.notes.push(`${key.label} acts on itself`);
      else if (bound.member) v.refuse(`${key.label} is not ${bound.label.replace("the member policy of ", "")}'s own key`);
      else v.refuse(`${key.label} is beyond the reach of ${bound.label}`);
    }
  }

  judgePatch(actor: Actor, key: ModelKey, change: Change): Verdict {
    const { v, a } = this.begin(actor, Model.needs("keys:write"));
    if (actor.kind === "portal") v.refuse(`${a.label}: changing a key is not a portal route`);
    const memberBounds = a.bounds.filter((b) => b.member !== null);
    const conferring =
      (change.kind === "scopes" && change.scopes.some((s) => !holds(key.scopes, s))) ||
      change.kind === "ceiling" ||
      (change.kind === "enabled" && change.enabled && !key.enabled) ||
      (change.kind === "cidrs" && !tightensCidrs(key.cidrs, change.cidrs) && !sameSet(key.cidrs, change.cidrs)) ||
      (change.kind === "rateLimit" && loosensRate(key.rateLimit, change.rateLimit)) ||
      (change.kind === "expiresAt" && loosensExpiry(key.expiresAt, change.at));
    this.reach(v, a, actor, key, conferring);
    if (key.awaitingPickup && memberBounds.length > 0) v.refuse(`a member may not change ${key.label}, which is awaiting pickup`);
    if (key.revoked) v.notes.push(`${key.label} is revoked`);
    switch (change.kind) {
      case "scopes": {
        const added = change.scopes.filter((s) => !holds(key.scopes, s));
        for (const bound of a.bounds) {
          for (const s of added) if (!bound.confersScope(s)) v.refuse(`${bound.label} cannot confer ${s}`);
          // Widening a key confers the new scopes in the key's environment.
          if (added.length > 0 && !bound.confersEnv(key.env)) v.refuse(`${bound.label} cannot confer scopes in ${key.env}`);
        }
        // A narrowing that leaves a ceiling naming a management scope the key no longer holds:
        // the contract states the rule for setting a ceiling, not for this; left open (may).
        if (!(key.ceilingScopes ?? []).every((c) => managementIn(c).every((m) => holds(change.scopes, m))))
          v.notes.push("the ceiling would name a management scope the key no longer holds");
        break;
      }
      case "ceiling": {
        Model.ceilingHeld(v, change.scopes, key.scopes);
        const before = {
          scopes: key.ceilingScopes ?? key.scopes.filter((s) => !isManagement(s)),
          envs: new Set<Env>(key.ceilingEnvs ?? [key.env]),
        };
        const after = {
          scopes: change.scopes ?? key.scopes.filter((s) => !isManagement(s)),
          envs: change.envs ?? [key.env],
        };
        for (const bound of a.bounds) {
          for (const s of after.scopes)
            if (!holds(before.scopes, s) && !bound.confersScope(s)) v.refuse(`${bound.label} cannot confer ceiling scope ${s}`);
          for (const e of after.envs)
            if (!before.envs.has(e) && !bound.confersEnv(e)) v.refuse(`${bound.label} cannot confer ceiling environment ${e}`);
        }
        break;
      }
      case "enabled":
        if (change.enabled && !key.enabled) {
          if (memberBounds.length > 0 && key.disabledBy !== "member")
            v.refuse(`a member may not re-enable ${key.label}, which an admin disabled`);
          // A member re-enabling a production key it disabled itself: tighten-only says yes, "restoring
          // confers" (and members confer sandbox only) says no. Left open (may).
        }
        break;
      case "cidrs":
        if (loosensCidrs(key.cidrs, change.cidrs) && memberBounds.length > 0 && key.setBy.cidrs !== "member")
          v.refuse(`a member may not lift the allowed_cidrs of ${key.label}, which an admin set`);
        break;
      case "rateLimit":
        if (loosensRate(key.rateLimit, change.rateLimit) && memberBounds.length > 0 && key.setBy.rateLimit !== "member")
          v.refuse(`a member may not lift the rate limit of ${key.label}, which an admin set`);
        break;
      case "expiresAt":
        if (loosensExpiry(key.expiresAt, change.at) && memberBounds.length > 0 && key.setBy.expiresAt !== "member")
          v.refuse(`a member may not push back the expiry of ${key.label}, which an admin set`);
        break;
    }
    return v;
  }

  judgeRotate(actor: Actor, key: ModelKey): Verdict {
    const { v, a } = this.begin(actor, Model.needs("keys:write"));
    // Rotation confers the successor: the same reach as any conferring action. Stricter reading:
    // a delegate cannot rotate itself, since it could not have minted the keys:write it holds.
    this.reach(v, a, actor, key, true);
    if (key.revoked) v.refuse(`${key.label} is revoked: a successor would restore it`);
    if (key.replacedBy !== null) v.refuse(`${key.label} was already rotated`);
    if (key.awaitingPickup) v.refuse(`${key.label} is awaiting pickup: no rotation`);
    // Rotating hands over the key's rights: a portal session only within its policy.
    for (const bound of a.bounds) {
      if (!bound.portal) continue;
      const outside = withinPortalPolicy(bound.portal, { ...key, ceilingScopes: null, ceilingEnvs: null });
      if (outside) v.refuse(`${bound.label}: ${key.label} has ${outside}`);
      else if (key.ceilingScopes !== null || key.ceilingEnvs !== null) v.notes.push(`${key.label} has a ceiling`);
    }
    return v;
  }

  judgeRevoke(actor: Actor, key: ModelKey): Verdict {
    const { v, a, live } = this.begin(actor, Model.needs("keys:write"));
    this.reach(v, a, actor, key, false);
    if (key.awaitingPickup && a.bounds.some((b) => b.member !== null || b.portal !== null))
      v.refuse(`a member or portal session may not revoke ${key.label}, which is awaiting pickup`);
    if (key.revoked) v.notes.push(`${key.label} is already revoked`);
    else if (live && isUnbounded(a))
      v.allowed = key.awaitingPickup ? "an admin may revoke a key awaiting pickup" : "an admin revokes a key";
    return v;
  }

  /** What a member gets: keys:read, keys:write, the member scopes, sandbox. */
  private confersMember(v: Verdict, a: Authority): void {
    for (const bound of a.bounds) {
      if (bound.member || bound.portal) {
        v.refuse(`${bound.label}: members and portal sessions do not manage users or owners`);
        continue;
      }
      for (const s of new Set([...MEMBER_ROLE_SCOPES, ...this.memberKeyScopes]))
        if (!bound.confersScope(s)) v.refuse(`${bound.label} cannot confer what a member gets (${s})`);
      if (!bound.confersEnv("sandbox")) v.refuse(`${bound.label} cannot confer what a member gets (sandbox)`);
    }
  }

  judgeCreateUser(actor: Actor, role: Role): Verdict {
    const { v, a, live } = this.begin(actor, Model.needs("users:write"));
    if (role === "admin" && !isUnbounded(a)) v.refuse(`only an unbounded actor creates an admin; ${a.label} is bounded`);
    this.confersMember(v, a);
    if (live && isUnbounded(a)) v.allowed = "an admin creates a user";
    return v;
  }

  judgePatchUser(actor: Actor, user: ModelUser, disabled: boolean): Verdict {
    const { v, a } = this.begin(actor, Model.needs("users:write"));
    if (user.role === "admin" && !isUnbounded(a)) v.refuse(`${user.label} is an admin: beyond the reach of ${a.label}`);
    if (user.role === "member" && !isUnbounded(a)) {
      this.confersMember(v, a);
      // Stricter reading of "users within the actor's reach": disabling or enabling a user touches
      // every key it owns, so each of them must be within reach (as for any other owner).
      this.ownerKeysInReach(v, a, { type: "user", id: user.id });
    }
    if (actor.kind === "session" && actor.userId === user.id) v.notes.push("a session acts on its own user");
    if (!disabled && user.disabled) v.notes.push(`re-enables ${user.label}`);
    return v;
  }

  private ownerKeysInReach(v: Verdict, a: Authority, owner: OwnerRef): void {
    for (const key of this.keysOf(owner)) {
      if (key.revoked) continue;
      for (const bound of a.bounds) if (!bound.reaches(key)) v.refuse(`${key.label} of ${this.ownerLabel(owner)} is beyond ${bound.label}`);
    }
  }

  judgePatchOwner(actor: Actor, owner: OwnerRef, disabled: boolean): Verdict {
    // The contract names no route gate for owners; an actor with no management scope at all is
    // refused whatever the gate is.
    const { v, a } = this.begin(actor, (x) =>
      x.gate("users:write") || x.gate("keys:write") ? null : `${x.label} holds no management scope for owners`,
    );
    if (owner.type === "user") {
      const user = this.users.get(owner.id);
      if (user && user.disabled !== disabled)
        v.refuse(`the owner ${this.ownerLabel(owner)} follows its user (disabled: ${user.disabled}): 409 OWNER_FOLLOWS_USER`);
    }
    for (const bound of a.bounds)
      if (bound.member || bound.portal) v.refuse(`${bound.label}: members and portal sessions do not manage owners`);
    if (!isUnbounded(a)) this.ownerKeysInReach(v, a, owner);
    return v;
  }

  private askable(key: ModelKey): boolean {
    return (
      key.env === "sandbox" &&
      key.enabled &&
      !key.revoked &&
      !key.awaitingPickup &&
      key.replacedBy === null &&
      !this.isOwnerDisabled(key.owner) &&
      !this.requests.some((r) => r.sandboxKeyId === key.id && r.status === "pending")
    );
  }

  /** A key asks a production key for itself. */
  judgeAskByKey(key: ModelKey): Verdict {
    const v = new Verdict();
    const state = this.actorState({ kind: "key", keyId: key.id });
    if (state.state === "dead") v.refuse(`${key.label} cannot authenticate: ${state.why}`);
    else if (state.state === "live" && this.askable(key)) v.allowed = "a sandbox key asks for a production key";
    return v;
  }

  /** A member session asks for one of its keys. */
  judgeAskBySession(userId: string, key: ModelKey): Verdict {
    const { v, live } = this.begin({ kind: "session", userId }, () => null);
    if (!ownedBy(key.owner, userId)) v.refuse(`${key.label} is not the member's own key`);
    else if (live && this.askable(key)) v.allowed = "a member asks for a production key for their own sandbox key";
    return v;
  }

  /** A portal session asks for a production key for one of its owner's sandbox keys. */
  judgeAskByPortal(portalId: string, key: ModelKey): Verdict {
    const v = new Verdict();
    const portal = this.portal(portalId);
    if (!portal.mayRequestProduction) v.refuse(`${portal.label} may not ask for production keys`);
    if (portal.owner.type !== key.owner.type || portal.owner.id !== key.owner.id)
      v.refuse(`${key.label} is not ${portal.label}'s owner's key`);
    else if (portal.mayRequestProduction && this.askable(key)) v.allowed = "a portal session asks production for its owner's sandbox key";
    return v;
  }

  /** Stale: the sandbox key was revoked, disabled or expired since, or widened beyond what was asked. */
  staleness(request: ModelRequest): string | null {
    const key = this.key(request.sandboxKeyId);
    if (key.revoked) return `${key.label} was revoked`;
    if (!key.enabled) return `${key.label} was disabled`;
    const wider = key.scopes.filter((s) => !holds(request.asked.scopes, s));
    if (wider.length > 0) return `${key.label} was widened by ${fmt(wider)}`;
    if (loosensCidrs(request.asked.cidrs, key.cidrs)) return `${key.label} lost its allowed_cidrs`;
    if (loosensRate(request.asked.rateLimit, key.rateLimit)) return `${key.label} lost its rate limit`;
    if (loosensExpiry(request.asked.expiresAt, key.expiresAt ?? null)) return `${key.label} expires later than asked`;
    return null;
  }

  judgeApprove(actor: Actor, request: ModelRequest): Verdict {
    const { v, a, live } = this.begin(actor, Model.needs("keys:write"));
    for (const bound of a.bounds)
      if (bound.member || bound.portal) v.refuse(`${bound.label}: members and portal sessions do not approve key requests`);
    if (request.status !== "pending") v.refuse(`${request.label} is ${request.status}, not pending`);
    const stale = this.staleness(request);
    if (stale) v.refuse(`409 KEY_REQUEST_STALE: ${stale}`);
    // Approving confers what was asked, in production.
    for (const bound of a.bounds)
      if (!bound.member && !bound.portal)
        this.confer(v, bound, { env: "production", scopes: request.asked.scopes, ceilingScopes: null, ceilingEnvs: null });
    const sandbox = this.key(request.sandboxKeyId);
    if (live && isUnbounded(a) && sandbox.replacedBy === null && !this.isOwnerDisabled(sandbox.owner))
      v.allowed = "an admin approves a fresh, pending request";
    return v;
  }

  judgeReject(actor: Actor, request: ModelRequest): Verdict {
    const { v, a } = this.begin(actor, Model.needs("keys:write"));
    for (const bound of a.bounds)
      if (bound.member || bound.portal) v.refuse(`${bound.label}: members and portal sessions do not reject key requests`);
    if (request.status !== "pending") v.refuse(`${request.label} is ${request.status}, not pending`);
    return v;
  }

  /** The requester's counterpart: the member who owns the sandbox key, or that key when the member asked. */
  private counterpart(request: ModelRequest, actor: Actor): boolean {
    const sandbox = this.key(request.sandboxKeyId);
    if (request.requester.kind === "key") return actor.kind === "session" && ownedBy(sandbox.owner, actor.userId);
    // A portal session asks on behalf of the sandbox key: that key, and the person who owns it, are its counterparts.
    if (request.requester.kind === "portal")
      return (actor.kind === "key" && actor.keyId === sandbox.id) || (actor.kind === "session" && ownedBy(sandbox.owner, actor.userId));
    return actor.kind === "key" && actor.keyId === sandbox.id;
  }

  judgeClaim(actor: Actor, request: ModelRequest): Verdict {
    const v = new Verdict();
    const state = this.actorState(actor);
    const label = this.actorLabel(actor);
    if (state.state === "dead") v.refuse(`${label} cannot authenticate: ${state.why}`);
    if (request.status !== "approved") v.refuse(`${request.label} is ${request.status}, not approved`);
    if (request.claimed) v.refuse(`${request.label} was already claimed: the plaintext is handed over once`);
    const issued = request.issuedKeyId ? this.keys.get(request.issuedKeyId) : undefined;
    if (issued?.revoked) v.refuse(`${issued.label} was revoked before pickup`);
    if (actor.kind === "portal") {
      // A portal session picks up its owner's approved keys, and only when its policy lets it ask for production.
      const portal = this.portal(actor.portalId);
      if (!portal.mayRequestProduction) v.refuse(`${label} may not pick up production keys`);
      if (portal.owner.type !== request.owner.type || portal.owner.id !== request.owner.id)
        v.refuse(`${request.label} is not for ${label}'s owner`);
      return v;
    }
    if (sameActor(actor, request.requester)) {
      if (state.state === "live" && issued && !issued.revoked && !request.claimed && !this.isOwnerDisabled(issued.owner))
        v.allowed = "the requester picks up the approved key";
    } else if (this.counterpart(request, actor)) {
      // The contract says the claim hands the plaintext "to the requester"; whether the member who
      // owns the asking sandbox key (or that key, when the member asked) counts is left open: may.
      v.notes.push(`${label} is the requester's counterpart`);
    } else {
      v.refuse(`${label} is not the requester of ${request.label} (${this.actorLabel(request.requester)})`);
    }
    return v;
  }

  // ---------------------------------------------------------------- effects of a 2xx

  addKey(key: ModelKey): void {
    this.keys.set(key.id, key);
  }

  /** `actor` conferred the key's rights now: a portal's policy bounds it only while that portal is the conferrer. */
  private conferredNow(key: ModelKey, actor: Actor): void {
    key.conferredBy = this.actorLabel(actor);
    key.portalId = actor.kind === "portal" ? actor.portalId : undefined;
  }

  applyPatch(key: ModelKey, change: Change, actor: Actor): void {
    const member = this.authority(actor).bounds.some((b) => b.member !== null);
    const setter = (before: SetBy, tightening: boolean): SetBy =>
      member ? (before === "other" && tightening ? "other" : "member") : "other";
    switch (change.kind) {
      case "scopes": {
        if (change.scopes.some((s) => !holds(key.scopes, s))) this.conferredNow(key, actor);
        key.scopes = [...new Set(change.scopes)];
        break;
      }
      case "ceiling":
        key.ceilingScopes = change.scopes;
        key.ceilingEnvs = change.envs;
        this.conferredNow(key, actor);
        break;
      case "enabled":
        if (key.enabled !== change.enabled) key.disabledBy = change.enabled ? null : member ? "member" : "other";
        key.enabled = change.enabled;
        break;
      case "cidrs":
        key.setBy.cidrs = change.cidrs.length === 0 ? null : setter(key.setBy.cidrs, !loosensCidrs(key.cidrs, change.cidrs));
        key.cidrs = change.cidrs;
        break;
      case "rateLimit":
        key.setBy.rateLimit = change.rateLimit === null ? null : setter(key.setBy.rateLimit, !loosensRate(key.rateLimit, change.rateLimit));
        key.rateLimit = change.rateLimit;
        break;
      case "expiresAt":
        key.setBy.expiresAt = change.at === null ? null : setter(key.setBy.expiresAt, !loosensExpiry(key.expiresAt, change.at));
        key.expiresAt = change.at;
        break;
    }
  }

  /** Revoking any key of a lineage ends the grace of its predecessors too. */
  applyRevoke(key: ModelKey): void {
    key.revoked = true;
    for (let from = key.rotatedFrom; from !== null; ) {
      const predecessor = this.key(from);
      predecessor.revoked = true;
      from = predecessor.rotatedFrom;
    }
  }

  applyUserDisabled(user: ModelUser, disabled: boolean): void {
    user.disabled = disabled;
    if (disabled) user.everDisabled = true;
    this.ownerDisabled.set(ownerKey({ type: "user", id: user.id }), disabled);
  }

  // ---------------------------------------------------------------- the state check

  /**
   * Compares the whole store (this run's part of it) with the model: every key is one the model
   * expects, with the scopes, environment and ceiling the oracle let its conferrer confer; no
   * control lifted, no key restored, no production key active before pickup; no admin user that
   * an unbounded actor did not create; no user re-enabled behind the oracle's back.
   */
  checkState(listedKeys: readonly ListedKey[], listedUsers: readonly ListedUser[], usersComplete: boolean): string[] {
    const problems: string[] = [];
    const seen = new Set<string>();
    for (const listed of listedKeys) {
      if (!this.isRunOwner(listed.owner)) continue;
      seen.add(listed.id);
      const key = this.keys.get(listed.id);
      const shape = `${this.ownerLabel(listed.owner)} ${listed.environment} ${fmt(listed.scopes)} ceiling ${fmt(listed.grantable_scopes)}/${fmt(listed.grantable_environments)}`;
      if (!key) {
        problems.push(`invariant 1: key ${listed.id} (${shape}, ${listed.status}) exists, but no action the oracle allowed created it`);
        continue;
      }
      const by = `conferred by ${key.conferredBy}`;
      if (key.portalId !== undefined) {
        const portal = this.portal(key.portalId);
        const outside = withinPortalPolicy(portal, {
          owner: listed.owner,
          env: listed.environment,
          scopes: listed.scopes,
          ceilingScopes: listed.grantable_scopes ?? null,
          ceilingEnvs: listed.grantable_environments ?? null,
        });
        if (outside) problems.push(`invariant 5: ${key.label}, ${by}, lies outside ${portal.label}'s owner and policy: ${outside}`);
      }
      if (listed.owner.type !== key.owner.type || listed.owner.id !== key.owner.id)
        problems.push(`invariant 1: ${key.label} is owned by ${this.ownerLabel(listed.owner)}, expected ${this.ownerLabel(key.owner)}`);
      if (listed.environment !== key.env) problems.push(`invariant 1: ${key.label} is ${listed.environment}, but ${key.env} was ${by}`);
      if (!sameSet(listed.scopes, key.scopes))
        problems.push(`invariant 1: ${key.label} has scopes ${fmt(listed.scopes)}, but ${fmt(key.scopes)} were ${by}`);
      if (!sameSet(listed.grantable_scopes ?? null, key.ceilingScopes))
        problems.push(
          `invariant 1: ${key.label} has grantable_scopes ${fmt(listed.grantable_scopes)}, but ${fmt(key.ceilingScopes)} were ${by}`,
        );
      if (!sameSet(listed.grantable_environments ?? null, key.ceilingEnvs))
        problems.push(
          `invariant 1: ${key.label} has grantable_environments ${fmt(listed.grantable_environments)}, but ${fmt(key.ceilingEnvs)} were ${by}`,
        );
      if (key.revoked && listed.status !== "revoked")
        problems.push(`${key.label} should be revoked (itself or a successor was revoked: that ends its grace) but is ${listed.status}`);
      if (!key.revoked && key.awaitingPickup && listed.status !== "awaiting_pickup")
        problems.push(`invariant 4: ${key.label}, issued by approval and never claimed, is ${listed.status}, not awaiting_pickup`);
      if (!key.revoked && !key.awaitingPickup && !key.enabled && listed.status === "active")
        problems.push(
          `invariant 1: ${key.label} was disabled (by ${key.disabledBy}) and no allowed action re-enabled it, but it is active`,
        );
      if (key.cidrs.length > 0 && !sameSet(listed.allowed_cidrs, key.cidrs))
        problems.push(`invariant 1: ${key.label} lost its allowed_cidrs ${fmt(key.cidrs)} (now ${fmt(listed.allowed_cidrs)})`);
      if (
        key.rateLimit !== null &&
        (listed.rate_limit === null ||
          listed.rate_limit.requests !== key.rateLimit.requests ||
          listed.rate_limit.per_seconds !== key.rateLimit.per_seconds)
      )
        problems.push(
          `invariant 1: ${key.label} lost its rate limit ${JSON.stringify(key.rateLimit)} (now ${JSON.stringify(listed.rate_limit)})`,
        );
      const expires = listed.expires_at === null ? null : Date.parse(listed.expires_at);
      // An approved key's expiry is not part of what is asked: learnt at first sight.
      if (key.expiresAt === undefined) key.expiresAt = expires;
      else if (key.expiresAt !== null && (expires === null || expires > key.expiresAt))
        problems.push(
          `invariant 1: ${key.label}'s expiry was pushed back from ${new Date(key.expiresAt).toISOString()} to ${listed.expires_at}`,
        );
    }
    for (const key of this.keys.values()) if (!seen.has(key.id)) problems.push(`${key.label} (${key.id}) is missing from the key listing`);
    const seenUsers = new Set<string>();
    for (const listed of listedUsers) {
      if (!listed.email.startsWith(`${this.tag}-`)) continue;
      seenUsers.add(listed.id);
      const user = this.users.get(listed.id);
      if (!user) {
        problems.push(`invariant 2: user ${listed.email} (${listed.role}) exists, but no action the oracle allowed created it`);
        continue;
      }
      if (listed.role === "admin" && !user.legitAdmin)
        problems.push(`invariant 2: ${user.label} is an admin, but was created by ${user.createdBy}, which is bounded`);
      if (listed.role !== user.role) problems.push(`invariant 2: ${user.label} has role ${listed.role}, created as ${user.role}`);
      if (user.disabled && !listed.disabled)
        problems.push(`invariant 1: ${user.label} was disabled and no allowed action re-enabled it, but it is enabled`);
    }
    if (usersComplete)
      for (const user of this.users.values()) if (!seenUsers.has(user.id)) problems.push(`${user.label} is missing from the user listing`);
    return problems;
  }
}
