import fc from "fast-check";
import { afterAll, beforeAll, describe, it } from "vitest";
import { buildApp } from "../../src/service/app.js";
import { loadConfig } from "../../src/service/config.js";
import { createLogger } from "../../src/service/logger.js";
import { ServiceMetrics } from "../../src/service/metrics.js";
import { assembleKeyward, createAdminKey } from "../../src/service/open-keyward.js";
import { storesBeside } from "../../src/service/store-factory.js";
import { PostgresKeyStore } from "../../src/stores/postgres/postgres-key-store.js";
import { backendsAvailable, createTestSchema, DATABASE_URL } from "../helpers/backends.js";
import { fuzzAsync } from "../helpers/fuzz.js";
import { startTestService } from "../helpers/service.js";
import {
  type Actor,
  type Change,
  type CreateRequest,
  type Env,
  fmt,
  holds,
  type ListedKey,
  type ListedUser,
  Model,
  type ModelKey,
  type ModelPortal,
  type ModelRequest,
  type ModelUser,
  managementIn,
  type OwnerRef,
  type RateLimit,
  type Role,
  type Verdict,
} from "./model-oracle.js";

// The authority invariant of docs/authority.md, checked by a model-based property over real HTTP,
// on SQLite and on PostgreSQL: fast-check generates sequences of management actions by every kind
// of actor (admin key, admin session, member session, member-owned keys, delegates with and
// without ceilings, sandbox and production, disabled, revoked, portal sessions with their
// policies), sends them to the service, and
// after every step compares the whole store with its own oracle (./model-oracle.ts, which does
// not import src/authority). See the oracle's header for what "refuse", "allow" and "may" mean.
//
// One service per store; each run makes fresh actors (owners and users named after the run), so
// runs do not see each other. The seed is printed (replay with FC_SEED=<seed>, and FC_PATH=<path>
// for the shrunk case); a failure names the invariant and lists the steps, resolved, with the
// oracle's verdict for each.

const MEMBER_KEY_SCOPES = ["read", "write", "keys:read", "keys:write"];
const SERVICE_ENV: Record<string, string> = {
  // Members may mint management keys, so member-owned delegates exist.
  KEYWARD_MEMBER_KEY_SCOPES: MEMBER_KEY_SCOPES.join(","),
  // Neither cap may answer for the authority rules: the member creation cap and the failed-attempt throttle.
  KEYWARD_MEMBER_KEY_CREATES_PER_HOUR: "10000",
  KEYWARD_FAILED_ATTEMPTS_LIMIT: "0",
};
const NUM_RUNS = 15;
const MAX_COMMANDS = 12;
/** Shrinking replays whole runs over HTTP: after this long, remaining candidates are passed over (see `property`). */
const SHRINK_BUDGET_MS = 15_000;
const PASSWORD = "model test password";
const PLAINTEXT = /[a-z][a-z0-9]{1,15}_(live|test)_[0-9A-Za-z]{38}/;
const HOUR = 3_600_000;

// ---------------------------------------------------------------- the services

interface Reply {
  status: number;
  text: string;
  headers: Headers;
}
interface Harness {
  url: string;
  /** The CLI's admin key: sets up each run's actors and observes the store; never a target. */
  rootKey: string;
  call(path: string, init: RequestInit): Promise<Reply>;
  close(): Promise<void>;
}

async function sqliteHarness(): Promise<Harness> {
  const service = await startTestService({ env: SERVICE_ENV });
  return {
    url: service.url,
    rootKey: service.adminKey,
    call: (path, init) => service.call(path, init),
    close: () => service.close(),
  };
}

/** The service on PostgreSQL, built as accounts-postgres.test.ts builds it, in a schema of its own. */
async function postgresHarness(): Promise<Harness> {
  const schema = await createTestSchema();
  const store = new PostgresKeyStore({ connectionString: DATABASE_URL, schema: schema.schema, maxConnections: 4 });
  await store.migrate();
  const config = { ...loadConfig({ KEYWARD_DATABASE_URL: DATABASE_URL, ...SERVICE_ENV }), port: 0, host: "127.0.0.1" };
  const metrics = new ServiceMetrics();
  const logger = createLogger("error");
  const keyward = assembleKeyward(config, await storesBeside(store), { metrics, logger });
  const app = await buildApp({ keyward, config, logger, metrics });
  await app.listen({ port: 0, host: "127.0.0.1" });
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  const root = await createAdminKey(keyward, "model test root", { type: "cli", id: "model-test" });
  return {
    url,
    rootKey: root.key,
    async call(path, init) {
      const response = await fetch(url + path, init);
      return { status: response.status, text: await response.text(), headers: response.headers };
    },
    async close() {
      await app.close();
      await keyward.close();
      await schema.drop();
    },
  };
}

// ---------------------------------------------------------------- commands

const SCOPE_POOL = ["read", "write", "payments:refund", "orders:*", "keys:read", "keys:write", "users:write", "admin", "*"];
const CEILING_POOL = ["read", "write", "payments:refund", "orders:*", "keys:read", "keys:write", "*"];
const RATE: RateLimit = { requests: 5, per_seconds: 1 };

interface CeilingSpec {
  scopes: string[];
  envs: Env[];
}
/** Expiry as generated: 0 none, 1 the run's start + 1 h, 2 + 2 h (so "later" and "sooner" are exact). */
type Expiry = 0 | 1 | 2;
type AbstractChange =
  /** `fit`: keep the key's scopes and add those generated that the actor may confer (a widening within its scopes). */
  | { kind: "scopes"; fit: boolean; scopes: string[] }
  | { kind: "enabled"; enabled: boolean }
  | { kind: "cidrs"; on: boolean }
  | { kind: "rateLimit"; on: boolean }
  | { kind: "expiresAt"; at: Expiry }
  | { kind: "ceiling"; ceiling: CeilingSpec | null };

/**
 * Numbers pick among what exists when the command runs (modulo its count), so every target exists.
 * Half the time a target is picked among the keys the actor reaches, and a new key is fitted to
 * what the actor may confer (`fit`): so that actions succeed often enough for the runs to reach
 * deep states (keys minted by delegates acting in turn, approvals, rotations), while the other
 * half keeps probing beyond the actor's bounds.
 */
interface KeyPick {
  inReach: boolean;
  n: number;
}
/**
 * An actor: among all; among those holding the route's management scope ("gated", if any); or
 * one of the two dashboard sessions (the actors the dashboard gives every person).
 */
interface ActorPick {
  among: "all" | "gated" | "sessions" | "portals";
  n: number;
}
type Command =
  | {
      t: "createKey";
      actor: ActorPick;
      fit: boolean;
      owner: number;
      env: Env;
      scopes: string[];
      ceiling: CeilingSpec | null;
      controls: { cidrs: boolean; rateLimit: boolean; expiry: Expiry };
    }
  | { t: "patchKey"; actor: ActorPick; target: KeyPick; change: AbstractChange }
  | { t: "rotate"; actor: ActorPick; target: KeyPick; grace: 0 | 3600 }
  | { t: "revoke"; actor: ActorPick; target: KeyPick }
  | { t: "createUser"; actor: ActorPick; role: Role }
  | { t: "patchUser"; actor: ActorPick; user: number; disabled: boolean }
  | { t: "patchOwner"; actor: ActorPick; owner: number; disabled: boolean }
  | { t: "askByKey"; sandboxOnly: boolean; key: number }
  | { t: "askBySession"; ownKey: boolean; target: number }
  /** A portal session asks production for one of its owner's keys (or, to probe, anyone's). */
  | { t: "askByPortal"; portal: number; ownKey: boolean; target: number }
  | { t: "approve"; byAdmin: boolean; actor: number; ready: boolean; request: number }
  | { t: "reject"; actor: number; ready: boolean; request: number }
  | { t: "claim"; byRequester: boolean; actor: number; ready: boolean; request: number }
  /** A production key's way, in one command: a sandbox key asks, someone approves that request, someone claims it. */
  | { t: "flow"; key: number; byAdmin: boolean; approver: number; byRequester: boolean; claimer: number };

const pickArb = fc.nat({ max: 997 });
const keyPickArb: fc.Arbitrary<KeyPick> = fc.record({ inReach: fc.boolean(), n: pickArb });
const actorPickArb: fc.Arbitrary<ActorPick> = fc.record({
  among: fc.oneof(
    { arbitrary: fc.constant("all" as const), weight: 2 },
    { arbitrary: fc.constant("gated" as const), weight: 2 },
    { arbitrary: fc.constant("sessions" as const), weight: 1 },
    { arbitrary: fc.constant("portals" as const), weight: 1 },
  ),
  n: pickArb,
});
const envArb = fc.constantFrom<Env>("sandbox", "production");
const scopesArb = fc.uniqueArray(fc.constantFrom(...SCOPE_POOL), { minLength: 1, maxLength: 3 });
const expiryArb = fc.constantFrom<Expiry>(0, 1, 2);
const ceilingArb: fc.Arbitrary<CeilingSpec> = fc.record({
  scopes: fc.uniqueArray(fc.constantFrom(...CEILING_POOL), { minLength: 1, maxLength: 3 }),
  envs: fc.uniqueArray(envArb, { minLength: 1, maxLength: 2 }),
});
const NO_CONTROLS = { cidrs: false, rateLimit: false, expiry: 0 as Expiry };

const changeArb: fc.Arbitrary<AbstractChange> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant("scopes" as const), fit: fc.boolean(), scopes: scopesArb }), weight: 3 },
  { arbitrary: fc.boolean().map((enabled) => ({ kind: "enabled" as const, enabled })), weight: 3 },
  { arbitrary: fc.boolean().map((on) => ({ kind: "cidrs" as const, on })), weight: 1 },
  { arbitrary: fc.boolean().map((on) => ({ kind: "rateLimit" as const, on })), weight: 1 },
  { arbitrary: expiryArb.map((at) => ({ kind: "expiresAt" as const, at })), weight: 1 },
  { arbitrary: fc.option(ceilingArb, { nil: null }).map((ceiling) => ({ kind: "ceiling" as const, ceiling })), weight: 2 },
);

/** A key created by one of the portal sessions: fitted to its policy, or probing beyond it. */
const portalCreateArb: fc.Arbitrary<Command> = fc.record({
  t: fc.constant("createKey" as const),
  actor: fc.record({ among: fc.constant("portals" as const), n: pickArb }),
  fit: fc.boolean(),
  owner: pickArb,
  env: envArb,
  scopes: scopesArb,
  ceiling: fc.option(ceilingArb, { nil: null, freq: 3 }),
  controls: fc.record({ cidrs: fc.constant(false), rateLimit: fc.constant(false), expiry: expiryArb }),
});

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { arbitrary: portalCreateArb, weight: 3 },
  {
    arbitrary: fc.record({
      t: fc.constant("createKey" as const),
      actor: actorPickArb,
      fit: fc.boolean(),
      owner: pickArb,
      env: envArb,
      scopes: scopesArb,
      ceiling: fc.option(ceilingArb, { nil: null, freq: 3 }),
      controls: fc.oneof(
        { arbitrary: fc.constant(NO_CONTROLS), weight: 3 },
        { arbitrary: fc.record({ cidrs: fc.boolean(), rateLimit: fc.boolean(), expiry: expiryArb }), weight: 1 },
      ),
    }),
    weight: 4,
  },
  { arbitrary: fc.record({ t: fc.constant("patchKey" as const), actor: actorPickArb, target: keyPickArb, change: changeArb }), weight: 4 },
  {
    arbitrary: fc.record({
      t: fc.constant("rotate" as const),
      actor: actorPickArb,
      target: keyPickArb,
      grace: fc.constantFrom<0 | 3600>(0, 3600),
    }),
    weight: 2,
  },
  { arbitrary: fc.record({ t: fc.constant("revoke" as const), actor: actorPickArb, target: keyPickArb }), weight: 2 },
  {
    arbitrary: fc.record({ t: fc.constant("createUser" as const), actor: actorPickArb, role: fc.constantFrom<Role>("member", "admin") }),
    weight: 1,
  },
  { arbitrary: fc.record({ t: fc.constant("patchUser" as const), actor: actorPickArb, user: pickArb, disabled: fc.boolean() }), weight: 2 },
  {
    arbitrary: fc.record({ t: fc.constant("patchOwner" as const), actor: actorPickArb, owner: pickArb, disabled: fc.boolean() }),
    weight: 1,
  },
  { arbitrary: fc.record({ t: fc.constant("askByKey" as const), sandboxOnly: fc.boolean(), key: pickArb }), weight: 3 },
  { arbitrary: fc.record({ t: fc.constant("askBySession" as const), ownKey: fc.boolean(), target: pickArb }), weight: 1 },
  {
    arbitrary: fc.record({ t: fc.constant("askByPortal" as const), portal: pickArb, ownKey: fc.boolean(), target: pickArb }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      t: fc.constant("approve" as const),
      byAdmin: fc.boolean(),
      actor: pickArb,
      ready: fc.boolean(),
      request: pickArb,
    }),
    weight: 4,
  },
  { arbitrary: fc.record({ t: fc.constant("reject" as const), actor: pickArb, ready: fc.boolean(), request: pickArb }), weight: 1 },
  {
    arbitrary: fc.record({
      t: fc.constant("claim" as const),
      byRequester: fc.oneof({ arbitrary: fc.constant(true), weight: 3 }, { arbitrary: fc.constant(false), weight: 1 }),
      actor: pickArb,
      ready: fc.boolean(),
      request: pickArb,
    }),
    weight: 4,
  },
  {
    arbitrary: fc.record({
      t: fc.constant("flow" as const),
      key: pickArb,
      byAdmin: fc.oneof({ arbitrary: fc.constant(true), weight: 2 }, { arbitrary: fc.constant(false), weight: 1 }),
      approver: pickArb,
      byRequester: fc.oneof({ arbitrary: fc.constant(true), weight: 3 }, { arbitrary: fc.constant(false), weight: 1 }),
      claimer: pickArb,
    }),
    weight: 2,
  },
);

// ---------------------------------------------------------------- one run

interface Session {
  cookie: string;
  csrf: string;
}
interface World {
  h: Harness;
  model: Model;
  tag: string;
  runStart: number;
  sessions: Map<string, Session>;
  adminUserId: string;
  memberUserId: string;
  trace: string[];
  created: number;
}

type Json = Record<string, unknown>;
const parse = (text: string): Json => {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === "object" ? (value as Json) : {};
  } catch {
    return {};
  }
};
function field(json: Json, name: string): string {
  const value = json[name];
  if (typeof value !== "string") throw new Error(`expected a string ${name} in ${JSON.stringify(json).slice(0, 400)}`);
  return value;
}

function fail(w: World, problem: string): never {
  throw new Error(`${problem}\n  run ${w.tag}, steps:\n    ${w.trace.join("\n    ")}`);
}

type Who = Actor | { kind: "root" };

function headersFor(w: World, who: Who, withBody: boolean): Record<string, string> {
  const json: Record<string, string> = withBody ? { "content-type": "application/json" } : {};
  if (who.kind === "root") return { ...json, authorization: `Bearer ${w.h.rootKey}` };
  if (who.kind === "key") {
    const plaintext = w.model.key(who.keyId).plaintext;
    if (plaintext === null) throw new Error(`no plaintext for ${who.keyId}`);
    return { ...json, authorization: `Bearer ${plaintext}` };
  }
  if (who.kind === "portal") return { ...json, authorization: `Portal ${w.model.portal(who.portalId).token}` };
  const session = w.sessions.get(who.userId);
  if (!session) throw new Error(`no session for ${who.userId}`);
  return { ...json, cookie: session.cookie, "x-csrf-token": session.csrf, origin: w.h.url };
}

function send(w: World, who: Who, method: string, path: string, body?: unknown): Promise<Reply> {
  return w.h.call(path, {
    method,
    headers: headersFor(w, who, body !== undefined),
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
}

/** Every key the actors hold, the run's admin key first, then the two sessions, the portal sessions, then the other keys. */
function actors(w: World): Actor[] {
  const keys: Actor[] = [...w.model.keys.values()].filter((k) => k.plaintext !== null).map((k) => ({ kind: "key", keyId: k.id }));
  const sessions: Actor[] = [
    { kind: "session", userId: w.adminUserId },
    { kind: "session", userId: w.memberUserId },
  ];
  const portals: Actor[] = [...w.model.portals.keys()].map((portalId) => ({ kind: "portal", portalId }));
  return [...keys.slice(0, 1), ...sessions, ...portals, ...keys.slice(1)];
}
const pick = <T>(list: readonly T[], n: number): T | undefined => (list.length === 0 ? undefined : list[n % list.length]);

/** The route gates, as the contract names them (owners: either scope, see the oracle). */
const GATES: Record<string, readonly string[]> = {
  createKey: ["keys:write"],
  patchKey: ["keys:write"],
  rotate: ["keys:write"],
  revoke: ["keys:write"],
  createUser: ["users:write"],
  patchUser: ["users:write"],
  patchOwner: ["users:write", "keys:write"],
};
function pickActor(w: World, command: Extract<Command, { actor: ActorPick }>): Actor {
  const all = actors(w);
  const gates = GATES[command.t] ?? [];
  const gated = all.filter((a) => gates.some((g) => w.model.authority(a).gate(g)));
  const sessions = all.filter((a) => a.kind === "session");
  const portals = all.filter((a) => a.kind === "portal");
  const among =
    command.actor.among === "sessions"
      ? sessions
      : command.actor.among === "portals" && portals.length > 0
        ? portals
        : command.actor.among === "gated" && gated.length > 0
          ? gated
          : all;
  return pick(among, command.actor.n) as Actor;
}

function expiryAt(w: World, at: Expiry): number | null {
  return at === 0 ? null : w.runStart + at * HOUR;
}
const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/**
 * The checks every answer gets: no 5xx; a refused action is not answered 2xx; a clear-cut allowed
 * one is; a plaintext only in the answers that issue one (POST /v1/keys, rotate, claim: 201).
 */
function judgeReply(w: World, what: string, verdict: Verdict, reply: Reply, issuing: boolean): boolean {
  w.trace.push(`${what} → ${reply.status} [${verdict.describe()}]`);
  const ok = reply.status >= 200 && reply.status < 300;
  if (reply.status >= 500) fail(w, `the service answered ${reply.status}: ${reply.text.slice(0, 300)}`);
  if (verdict.kind === "refuse" && ok) {
    const plaintext = issuing && PLAINTEXT.test(reply.text);
    fail(
      w,
      `${plaintext ? "invariant 3: a plaintext key went to an actor the oracle does not allow it" : "invariant 1: an action beyond what the actor holds succeeded"} (${verdict.refusals.join("; ")}): ${reply.status}`,
    );
  }
  if (verdict.kind === "allow" && !ok)
    fail(w, `converse: the contract clearly allows this (${verdict.allowed}), yet ${reply.status}: ${reply.text.slice(0, 300)}`);
  if (!(issuing && reply.status === 201) && PLAINTEXT.test(reply.text))
    fail(w, `invariant 3: a plaintext key in an answer that issues none (${reply.status}): ${reply.text.slice(0, 300)}`);
  return ok;
}

function newModelKey(
  id: string,
  label: string,
  plaintext: string | null,
  request: CreateRequest,
  conferredBy: string,
  member: boolean,
): ModelKey {
  const by = (set: boolean) => (set ? (member ? "member" : "other") : null);
  return {
    id,
    label,
    plaintext,
    owner: request.owner,
    env: request.env,
    scopes: [...new Set(request.scopes)],
    ceilingScopes: request.ceilingScopes,
    ceilingEnvs: request.ceilingEnvs,
    enabled: true,
    disabledBy: null,
    revoked: false,
    replacedBy: null,
    rotatedFrom: null,
    awaitingPickup: false,
    fromApproval: false,
    cidrs: request.controls.cidrs,
    rateLimit: request.controls.rateLimit,
    expiresAt: request.controls.expiresAt,
    setBy: {
      cidrs: by(request.controls.cidrs.length > 0),
      rateLimit: by(request.controls.rateLimit !== null),
      expiresAt: by(request.controls.expiresAt !== null),
    },
    conferredBy,
  };
}

function createBody(w: World, request: CreateRequest): Json {
  return {
    owner: request.owner,
    name: `${w.tag} key ${w.created + 1}`,
    environment: request.env,
    scopes: request.scopes,
    ...(request.ceilingScopes !== null ? { grantable_scopes: request.ceilingScopes } : {}),
    ...(request.ceilingEnvs !== null ? { grantable_environments: request.ceilingEnvs } : {}),
    ...(request.controls.cidrs.length > 0 ? { allowed_cidrs: request.controls.cidrs } : {}),
    ...(request.controls.rateLimit !== null ? { rate_limit: request.controls.rateLimit } : {}),
    ...(request.controls.expiresAt !== null ? { expires_at: iso(request.controls.expiresAt) } : {}),
  };
}

const plainRequest = (owner: OwnerRef, env: Env, scopes: string[], ceiling: CeilingSpec | null = null): CreateRequest => ({
  owner,
  env,
  scopes,
  ceilingScopes: ceiling?.scopes ?? null,
  ceilingEnvs: ceiling?.envs ?? null,
  controls: { cidrs: [], rateLimit: null, expiresAt: null },
});

function recordRequest(w: World, key: ModelKey, requester: Actor, reply: Reply): ModelRequest {
  const request: ModelRequest = {
    id: field(parse(reply.text), "id"),
    label: `req${w.model.requests.length + 1}`,
    sandboxKeyId: key.id,
    owner: key.owner,
    requester,
    asked: { scopes: [...key.scopes], cidrs: [...key.cidrs], rateLimit: key.rateLimit, expiresAt: key.expiresAt ?? null },
    status: "pending",
    issuedKeyId: null,
    claimed: false,
  };
  w.model.requests.push(request);
  return request;
}

/**
 * Approval issues exactly what was asked, in production, with no ceiling, awaiting pickup;
 * conferred by the approver, who set its controls (stricter reading: the member may not loosen them).
 */
function recordApproval(w: World, request: ModelRequest, approver: Actor, reply: Reply, label: string): ModelKey {
  const issuedId = field(parse(reply.text), "issued_key_id");
  const issued = newModelKey(
    issuedId,
    label,
    null,
    {
      owner: request.owner,
      env: "production",
      scopes: request.asked.scopes,
      ceilingScopes: null,
      ceilingEnvs: null,
      controls: { cidrs: request.asked.cidrs, rateLimit: request.asked.rateLimit, expiresAt: null },
    },
    w.model.actorLabel(approver),
    false,
  );
  issued.expiresAt = undefined;
  issued.awaitingPickup = true;
  issued.fromApproval = true;
  w.model.addKey(issued);
  w.created++;
  request.status = "approved";
  request.issuedKeyId = issuedId;
  return issued;
}

function recordClaim(w: World, request: ModelRequest, reply: Reply): void {
  const json = parse(reply.text);
  const issued = w.model.key(request.issuedKeyId ?? field(json, "id"));
  issued.plaintext = field(json, "key");
  issued.awaitingPickup = false;
  request.claimed = true;
}

/** A member's production key, the way the contract gives one: asked by the sandbox key, approved by an admin, claimed. */
async function setUpProductionKey(w: World, sandbox: ModelKey, approver: Actor, label: string): Promise<ModelKey> {
  const m = w.model;
  const asker: Actor = { kind: "key", keyId: sandbox.id };
  const expect = (what: string, verdict: Verdict, reply: Reply, status: number) => {
    if (verdict.kind === "refuse") throw new Error(`setup: the oracle refuses ${what}: ${verdict.describe()}`);
    if (reply.status !== status) fail(w, `setup: ${what}: ${reply.status} ${reply.text}`);
  };
  const askVerdict = m.judgeAskByKey(sandbox);
  const asked = await send(w, asker, "POST", "/v1/key-requests", {});
  expect(`${sandbox.label} asks production`, askVerdict, asked, 201);
  const request = recordRequest(w, sandbox, asker, asked);
  const approveVerdict = m.judgeApprove(approver, request);
  const approved = await send(w, approver, "POST", `/v1/key-requests/${request.id}/approve`, {});
  expect(`approving ${request.label}`, approveVerdict, approved, 200);
  const issued = recordApproval(w, request, approver, approved, label);
  const claimVerdict = m.judgeClaim(asker, request);
  const claimed = await send(w, asker, "POST", `/v1/key-requests/${request.id}/claim`, {});
  expect(`claiming ${request.label}`, claimVerdict, claimed, 201);
  recordClaim(w, request, claimed);
  return issued;
}

/** A setup step: must succeed, and must be one the oracle allows (else the model would start wrong). */
async function setUpKey(w: World, by: Who, label: string, request: CreateRequest): Promise<ModelKey> {
  if (by.kind !== "root") {
    const verdict = w.model.judgeCreate(by, request);
    if (verdict.kind === "refuse") throw new Error(`setup: the oracle refuses ${label}: ${verdict.describe()}`);
  }
  const reply = await send(w, by, "POST", "/v1/keys", createBody(w, request));
  if (reply.status !== 201)
    fail(
      w,
      `setup: ${label} (${fmt(request.scopes)} ${request.env}, ceiling ${fmt(request.ceilingScopes)}) was refused: ${reply.status} ${reply.text}`,
    );
  const json = parse(reply.text);
  const conferredBy = by.kind === "root" ? "the CLI (root key)" : w.model.actorLabel(by);
  const member = by.kind !== "root" && w.model.authority(by).bounds.some((b) => b.member !== null);
  const key = newModelKey(field(json, "id"), label, field(json, "key"), request, conferredBy, member);
  w.model.addKey(key);
  w.created++;
  if (w.runStart === 0) {
    w.runStart = Date.parse(field(json, "created_at"));
    w.model.runStart = w.runStart;
  }
  return key;
}

/** A portal session opened by the CLI's key (unbounded), for 4 hours, with keys expiring within 30 days. */
async function setUpPortal(
  w: World,
  label: string,
  owner: OwnerRef,
  policy: { scopes: string[]; envs: Env[]; mayRequestProduction: boolean },
): Promise<ModelPortal> {
  const reply = await send(w, { kind: "root" }, "POST", "/v1/portal-sessions", {
    owner,
    policy: {
      scopes: policy.scopes,
      environments: policy.envs,
      max_expires_in_days: 30,
      may_request_production: policy.mayRequestProduction,
    },
    actor: { id: `${w.tag}-${label}-person` },
    expires_in_seconds: 4 * 3600,
  });
  if (reply.status !== 201) fail(w, `setup: portal ${label}: ${reply.status} ${reply.text}`);
  const json = parse(reply.text);
  const portal: ModelPortal = { id: field(json, "id"), token: field(json, "token"), label, owner, maxDays: 30, ...policy };
  w.model.portals.set(portal.id, portal);
  return portal;
}

async function setUpUser(w: World, role: Role, name: string): Promise<ModelUser> {
  const email = `${w.tag}-${name}@example.com`;
  const reply = await send(w, { kind: "root" }, "POST", "/v1/users", { email, password: PASSWORD, role });
  if (reply.status !== 201) fail(w, `setup: user ${email} was refused: ${reply.status} ${reply.text}`);
  const user: ModelUser = {
    id: field(parse(reply.text), "id"),
    email,
    label: name,
    role,
    disabled: false,
    everDisabled: false,
    legitAdmin: role === "admin",
    createdBy: "the CLI (root key)",
  };
  return user;
}

async function signIn(w: World, user: ModelUser): Promise<void> {
  const reply = await w.h.call("/v1/session", {
    method: "POST",
    headers: { "content-type": "application/json", origin: w.h.url },
    body: JSON.stringify({ email: user.email, password: PASSWORD }),
  });
  const cookie = /kw_session=([^;]+)/.exec(reply.headers.get("set-cookie") ?? "");
  if (reply.status !== 201 || !cookie) fail(w, `setup: sign-in of ${user.email} failed: ${reply.status} ${reply.text}`);
  w.sessions.set(user.id, { cookie: `kw_session=${cookie[1]}`, csrf: field(parse(reply.text), "csrf_token") });
}

/** Every actor of the run, fresh: nothing here is shared with another run. */
async function setUp(h: Harness, tag: string): Promise<World> {
  const model = new Model(tag, MEMBER_KEY_SCOPES);
  const w: World = { h, model, tag, runStart: 0, sessions: new Map(), adminUserId: "", memberUserId: "", trace: [], created: 0 };
  const root: Who = { kind: "root" };
  const app = (name: string): OwnerRef => ({ type: "application", id: `${tag}-${name}` });
  const adminKey = await setUpKey(w, root, "adminKey", plainRequest(app("ops"), "production", ["admin"]));
  // In parallel (two password hashes), recorded in a fixed order: picks must not depend on timing.
  const [adminUser, member] = await Promise.all([setUpUser(w, "admin", "admin"), setUpUser(w, "member", "member")]);
  model.users.set(adminUser.id, adminUser);
  model.users.set(member.id, member);
  await Promise.all([signIn(w, adminUser), signIn(w, member)]);
  w.adminUserId = adminUser.id;
  w.memberUserId = member.id;
  const adminSession: Actor = { kind: "session", userId: adminUser.id };
  const memberSession: Actor = { kind: "session", userId: member.id };
  const asAdmin: Actor = { kind: "key", keyId: adminKey.id };
  const memberOwner: OwnerRef = { type: "user", id: member.id };
  model.owners.push(app("cust"), app("deleg"), app("prov"), app("hr"), app("ops"), memberOwner, { type: "user", id: adminUser.id });

  // A member-owned management key, and a plain sandbox key of the member (for key requests).
  await setUpKey(w, memberSession, "memberMgmtKey", plainRequest(memberOwner, "sandbox", ["read", "keys:read", "keys:write"]));
  const memberKey = await setUpKey(w, memberSession, "memberKey", plainRequest(memberOwner, "sandbox", ["read", "write"]));
  // Delegates: sandbox and production without a ceiling, one with a ceiling (the provisioning service).
  await setUpKey(w, asAdmin, "delegSandbox", plainRequest(app("deleg"), "sandbox", ["read", "keys:read", "keys:write"]));
  await setUpKey(w, asAdmin, "delegProd", plainRequest(app("deleg"), "production", ["read", "write", "keys:read", "keys:write"]));
  await setUpKey(
    w,
    asAdmin,
    "delegCeiling",
    plainRequest(app("prov"), "production", ["keys:read", "keys:write"], { scopes: ["read", "write"], envs: ["sandbox"] }),
  );
  // users:write keys: a bare one (can create nobody), and one whose ceiling covers what a member gets.
  await setUpKey(w, asAdmin, "usersKey", plainRequest(app("hr"), "production", ["users:write"]));
  await setUpKey(
    w,
    asAdmin,
    "usersFullKey",
    plainRequest(app("hr"), "sandbox", ["users:write", "keys:read", "keys:write", "read", "write"], {
      scopes: ["read", "write", "keys:read", "keys:write"],
      envs: ["sandbox"],
    }),
  );
  // The admin's own key (owned by the admin user), and a customer key.
  await setUpKey(w, adminSession, "adminUserKey", plainRequest({ type: "user", id: adminUser.id }, "production", ["admin"]));
  await setUpKey(w, asAdmin, "custKey", plainRequest(app("cust"), "production", ["read", "payments:refund"]));
  // The member's production key, claimed: members may rotate, tighten and revoke it, not widen it.
  await setUpProductionKey(w, memberKey, asAdmin, "memberProdKey");
  // Portal sessions, opened by the CLI's key: one for the member (production by request), one for
  // the customer application (read only, sandbox only), one for an owner with no keys yet.
  await setUpPortal(w, "portalMember", memberOwner, { scopes: ["read", "write"], envs: ["sandbox"], mayRequestProduction: true });
  await setUpPortal(w, "portalCust", app("cust"), { scopes: ["read"], envs: ["sandbox"], mayRequestProduction: false });
  await setUpPortal(w, "portalNew", app("new"), {
    scopes: ["read", "orders:*"],
    envs: ["sandbox", "production"],
    mayRequestProduction: false,
  });
  model.owners.push(app("new"));
  // A disabled and a revoked delegate.
  const disabled = await setUpKey(w, asAdmin, "disabledKey", plainRequest(app("cust"), "sandbox", ["read", "keys:read", "keys:write"]));
  const revoked = await setUpKey(w, asAdmin, "revokedKey", plainRequest(app("cust"), "sandbox", ["read", "keys:read", "keys:write"]));
  const off = await send(w, asAdmin, "PATCH", `/v1/keys/${disabled.id}`, { enabled: false });
  const gone = await send(w, asAdmin, "POST", `/v1/keys/${revoked.id}/revoke`, {});
  if (off.status !== 200 || gone.status !== 200) fail(w, `setup: disable ${off.status} ${off.text} / revoke ${gone.status} ${gone.text}`);
  model.applyPatch(disabled, { kind: "enabled", enabled: false }, asAdmin);
  model.applyRevoke(revoked);
  w.trace.push(
    `setup: adminKey, session of admin, session of member, memberMgmtKey, memberKey, delegSandbox, delegProd, delegCeiling, usersKey, usersFullKey, adminUserKey, custKey, memberProdKey (req1, claimed), portalMember, portalCust, portalNew, disabledKey, revokedKey`,
  );
  await checkState(w);
  return w;
}

/** Lists this run's keys (newest first: paging stops at the first key older than the run) and every user, and compares. */
async function checkState(w: World): Promise<void> {
  const keys: ListedKey[] = [];
  let cursor: string | null = null;
  for (;;) {
    const reply = await send(w, { kind: "root" }, "GET", `/v1/keys?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    if (reply.status !== 200) fail(w, `listing keys: ${reply.status} ${reply.text}`);
    if (PLAINTEXT.test(reply.text)) fail(w, "invariant 3: a plaintext key in the key listing");
    const page = parse(reply.text) as { data?: ListedKey[]; next_cursor?: string | null };
    const data = page.data ?? [];
    keys.push(...data);
    cursor = page.next_cursor ?? null;
    if (cursor === null || data.some((k) => Date.parse(k.created_at) < w.runStart)) break;
  }
  // The first page of users (paged since issue 21): complete when no next page follows.
  const users = await send(w, { kind: "root" }, "GET", "/v1/users?limit=200");
  if (users.status !== 200) fail(w, `listing users: ${users.status} ${users.text}`);
  const userPage = parse(users.text) as { data?: ListedUser[]; next_cursor?: string | null };
  const listedUsers = userPage.data ?? [];
  const problems = w.model.checkState(keys, listedUsers, (userPage.next_cursor ?? null) === null);
  if (problems.length > 0) fail(w, problems.join("\n  "));
}

function toChange(w: World, change: AbstractChange, actor: Actor, key: ModelKey): Change {
  switch (change.kind) {
    case "scopes": {
      if (!change.fit) return { kind: "scopes", scopes: change.scopes };
      const bounds = w.model.authority(actor).bounds;
      const conferrable = (s: string) => bounds.every((b) => b.confersScope(s));
      const added = change.scopes.filter((s) => conferrable(s) && !key.scopes.includes(s));
      const widening = added.length > 0 ? added : SCOPE_POOL.filter((s) => conferrable(s) && !holds(key.scopes, s)).slice(0, 1);
      return { kind: "scopes", scopes: [...new Set([...key.scopes, ...widening])] };
    }
    case "cidrs":
      return { kind: "cidrs", cidrs: change.on ? ["10.0.0.0/8"] : [] };
    case "rateLimit":
      return { kind: "rateLimit", rateLimit: change.on ? RATE : null };
    case "expiresAt":
      return { kind: "expiresAt", at: expiryAt(w, change.at) };
    case "ceiling":
      return { kind: "ceiling", scopes: change.ceiling?.scopes ?? null, envs: change.ceiling?.envs ?? null };
    default:
      return change;
  }
}

function patchBody(change: Change): Json {
  switch (change.kind) {
    case "scopes":
      return { scopes: change.scopes };
    case "enabled":
      return { enabled: change.enabled };
    case "cidrs":
      return { allowed_cidrs: change.cidrs };
    case "rateLimit":
      return { rate_limit: change.rateLimit };
    case "expiresAt":
      return { expires_at: iso(change.at) };
    case "ceiling":
      return { grantable_scopes: change.scopes, grantable_environments: change.envs };
  }
}

function describeChange(change: Change): string {
  switch (change.kind) {
    case "scopes":
      return `scopes=${fmt(change.scopes)}`;
    case "enabled":
      return `enabled=${change.enabled}`;
    case "cidrs":
      return `allowed_cidrs=${fmt(change.cidrs)}`;
    case "rateLimit":
      return `rate_limit=${change.rateLimit ? "5/1s" : "null"}`;
    case "expiresAt":
      return `expires_at=${iso(change.at)}`;
    case "ceiling":
      return `grantable=${fmt(change.scopes)}/${fmt(change.envs)}`;
  }
}

const allUsers = (w: World): ModelUser[] => [...w.model.users.values()];

/** A key target: among the keys the actor reaches (not revoked) when asked and there are any, else among all. */
function pickKey(w: World, actor: Actor, target: KeyPick): ModelKey {
  const keys = allKeys(w);
  if (target.inReach) {
    const authority = w.model.authority(actor);
    const reached = keys.filter((k) => !k.revoked && authority.bounds.every((b) => b.reaches(k)));
    if (reached.length > 0) return pick(reached, target.n) as ModelKey;
  }
  return pick(keys, target.n) as ModelKey;
}

/** A key request: when `ready`, among those in the status the action needs (if any), else among all. */
function pickRequest(w: World, ready: boolean, status: ModelRequest["status"], n: number): ModelRequest | undefined {
  const fitting = w.model.requests.filter((r) => r.status === status && !r.claimed);
  return pick(ready && fitting.length > 0 ? fitting : w.model.requests, n);
}

/** Fits a generated key to what the actor may confer: its scopes, environment, ceiling, and (for members) owner. */
function fitCreate(w: World, actor: Actor, request: CreateRequest): CreateRequest {
  const bounds = w.model.authority(actor).bounds;
  const scopeOk = (s: string) => bounds.every((b) => b.confersScope(s));
  const envOk = (e: Env) => bounds.every((b) => b.confersEnv(e));
  const fallback = SCOPE_POOL.find(scopeOk);
  const kept = request.scopes.filter(scopeOk);
  const scopes = kept.length > 0 ? kept : fallback ? [fallback] : request.scopes;
  const other: Env = request.env === "sandbox" ? "production" : "sandbox";
  const member = bounds.find((b) => b.member !== null)?.member;
  const portal = bounds.find((b) => b.portal !== null)?.portal;
  const ceilingScopes = request.ceilingScopes?.filter((c) => scopeOk(c) && managementIn(c).every((m) => holds(scopes, m))) ?? null;
  const ceilingEnvs = request.ceilingEnvs?.filter(envOk) ?? null;
  const ceiling = !portal && ceilingScopes && ceilingScopes.length > 0 && ceilingEnvs && ceilingEnvs.length > 0;
  // A portal session mints for its owner, with an expiry (within its longest).
  const controls = portal && request.controls.expiresAt === null ? { ...request.controls, expiresAt: expiryAt(w, 1) } : request.controls;
  return {
    ...request,
    controls,
    owner: member ? { type: "user", id: member } : portal ? portal.owner : request.owner,
    env: envOk(request.env) || !envOk(other) ? request.env : other,
    scopes,
    ceilingScopes: ceiling ? ceilingScopes : null,
    ceilingEnvs: ceiling ? ceilingEnvs : null,
  };
}
/**
 * A portal session's probe beyond its policy: its own owner (mostly) and an expiry, so what is
 * judged is the generated scopes and environment, not the missing expiry or the other owner.
 */
function probePortal(w: World, actor: Extract<Actor, { kind: "portal" }>, request: CreateRequest, n: number): CreateRequest {
  const portal = w.model.portal(actor.portalId);
  return {
    ...request,
    owner: n % 4 === 0 ? request.owner : portal.owner,
    ceilingScopes: n % 3 === 0 ? request.ceilingScopes : null,
    ceilingEnvs: n % 3 === 0 ? request.ceilingEnvs : null,
    controls: { ...request.controls, expiresAt: request.controls.expiresAt ?? expiryAt(w, 2) },
  };
}
const allKeys = (w: World): ModelKey[] => [...w.model.keys.values()];
const isMemberBound = (w: World, actor: Actor): boolean => w.model.authority(actor).bounds.some((b) => b.member !== null);

/** Runs one command: the oracle's verdict first, then the call, the answer's checks, and the model's update on 2xx. */
async function step(w: World, command: Command): Promise<void> {
  const m = w.model;
  const who = (actor: Actor) => m.actorLabel(actor);
  switch (command.t) {
    case "createKey": {
      const actor = pickActor(w, command);
      const owner = pick(m.owners, command.owner) as OwnerRef;
      const generated: CreateRequest = {
        owner,
        env: command.env,
        scopes: command.scopes,
        ceilingScopes: command.ceiling?.scopes ?? null,
        ceilingEnvs: command.ceiling?.envs ?? null,
        controls: {
          cidrs: command.controls.cidrs ? ["10.0.0.0/8"] : [],
          rateLimit: command.controls.rateLimit ? RATE : null,
          expiresAt: expiryAt(w, command.controls.expiry),
        },
      };
      const request = command.fit
        ? fitCreate(w, actor, generated)
        : actor.kind === "portal"
          ? probePortal(w, actor, generated, command.owner)
          : generated;
      const verdict = m.judgeCreate(actor, request);
      const reply = await send(w, actor, "POST", "/v1/keys", createBody(w, request));
      const label = `#${w.created + 1}`;
      const ceiling = request.ceilingScopes ? ` ceiling ${fmt(request.ceilingScopes)}/${fmt(request.ceilingEnvs)}` : "";
      const controls = command.controls === NO_CONTROLS ? "" : ` controls ${JSON.stringify(command.controls)}`;
      const what = `${who(actor)} creates ${label}: ${m.ownerLabel(request.owner)} ${request.env} ${fmt(request.scopes)}${ceiling}${controls}`;
      if (!judgeReply(w, what, verdict, reply, true)) return;
      const json = parse(reply.text);
      const created = newModelKey(field(json, "id"), label, field(json, "key"), request, who(actor), isMemberBound(w, actor));
      if (actor.kind === "portal") created.portalId = actor.portalId;
      m.addKey(created);
      w.created++;
      return;
    }
    case "patchKey": {
      const actor = pickActor(w, command);
      const key = pickKey(w, actor, command.target);
      const change = toChange(w, command.change, actor, key);
      const verdict = m.judgePatch(actor, key, change);
      const reply = await send(w, actor, "PATCH", `/v1/keys/${key.id}`, patchBody(change));
      if (!judgeReply(w, `${who(actor)} patches ${key.label}: ${describeChange(change)}`, verdict, reply, false)) return;
      m.applyPatch(key, change, actor);
      return;
    }
    case "rotate": {
      const actor = pickActor(w, command);
      const key = pickKey(w, actor, command.target);
      const verdict = m.judgeRotate(actor, key);
      const reply = await send(w, actor, "POST", `/v1/keys/${key.id}/rotate`, { grace_seconds: command.grace });
      const label = `#${w.created + 1}`;
      if (!judgeReply(w, `${who(actor)} rotates ${key.label} (grace ${command.grace}s) into ${label}`, verdict, reply, true)) return;
      const json = parse(reply.text);
      // The successor has the same rights (and the same disabled flag: rotating never re-enables);
      // its rights count as conferred by the rotating actor.
      const successor: ModelKey = {
        ...key,
        id: field(json, "id"),
        label,
        plaintext: field(json, "key"),
        scopes: [...key.scopes],
        cidrs: [...key.cidrs],
        setBy: { ...key.setBy },
        revoked: false,
        replacedBy: null,
        rotatedFrom: key.id,
        awaitingPickup: false,
        fromApproval: false,
        conferredBy: who(actor),
        ...(actor.kind === "portal" ? { portalId: actor.portalId } : {}),
      };
      if (actor.kind !== "portal") delete successor.portalId;
      m.addKey(successor);
      w.created++;
      key.replacedBy = successor.id;
      if (command.grace === 0) key.revoked = true;
      return;
    }
    case "revoke": {
      const actor = pickActor(w, command);
      const key = pickKey(w, actor, command.target);
      const verdict = m.judgeRevoke(actor, key);
      const reply = await send(w, actor, "POST", `/v1/keys/${key.id}/revoke`, {});
      if (!judgeReply(w, `${who(actor)} revokes ${key.label}`, verdict, reply, false)) return;
      m.applyRevoke(key);
      return;
    }
    case "createUser": {
      const actor = pickActor(w, command);
      const n = m.users.size + 1;
      const email = `${w.tag}-user${n}@example.com`;
      const verdict = m.judgeCreateUser(actor, command.role);
      const reply = await send(w, actor, "POST", "/v1/users", { email, password: PASSWORD, role: command.role });
      if (!judgeReply(w, `${who(actor)} creates user${n} (${command.role})`, verdict, reply, false)) return;
      const id = field(parse(reply.text), "id");
      const unbounded = m.authority(actor).bounds.length === 0;
      m.users.set(id, {
        id,
        email,
        label: `user${n}`,
        role: command.role,
        disabled: false,
        everDisabled: false,
        legitAdmin: command.role === "admin" && unbounded,
        createdBy: who(actor),
      });
      m.owners.push({ type: "user", id });
      return;
    }
    case "patchUser": {
      const actor = pickActor(w, command);
      const user = pick(allUsers(w), command.user) as ModelUser;
      const verdict = m.judgePatchUser(actor, user, command.disabled);
      const reply = await send(w, actor, "PATCH", `/v1/users/${user.id}`, { disabled: command.disabled });
      if (!judgeReply(w, `${who(actor)} sets ${user.label} (${user.role}) disabled=${command.disabled}`, verdict, reply, false)) return;
      m.applyUserDisabled(user, command.disabled);
      return;
    }
    case "patchOwner": {
      const actor = pickActor(w, command);
      const owner = pick(m.owners, command.owner) as OwnerRef;
      const verdict = m.judgePatchOwner(actor, owner, command.disabled);
      const reply = await send(w, actor, "PATCH", `/v1/owners/${owner.type}/${owner.id}`, { disabled: command.disabled });
      if (!judgeReply(w, `${who(actor)} sets owner ${m.ownerLabel(owner)} disabled=${command.disabled}`, verdict, reply, false)) return;
      m.ownerDisabled.set(`${owner.type}:${owner.id}`, command.disabled);
      return;
    }
    case "askByPortal": {
      const portal = pick([...m.portals.values()], command.portal);
      if (!portal) return;
      const own = allKeys(w).filter((k) => k.owner.type === portal.owner.type && k.owner.id === portal.owner.id);
      const key = pick(command.ownKey && own.length > 0 ? own : allKeys(w), command.target) as ModelKey;
      const requester: Actor = { kind: "portal", portalId: portal.id };
      const verdict = m.judgeAskByPortal(portal.id, key);
      const reply = await send(w, requester, "POST", "/v1/key-requests", { key_id: key.id });
      if (!judgeReply(w, `${who(requester)} asks production for ${key.label} (req${m.requests.length + 1})`, verdict, reply, false)) return;
      recordRequest(w, key, requester, reply);
      return;
    }
    case "askByKey":
    case "askBySession": {
      let requester: Actor;
      let key: ModelKey;
      let verdict: Verdict;
      let reply: Reply;
      if (command.t === "askByKey") {
        const held = allKeys(w).filter((k) => k.plaintext !== null);
        const sandbox = held.filter((k) => k.env === "sandbox" && m.actorState({ kind: "key", keyId: k.id }).state === "live");
        key = pick(command.sandboxOnly && sandbox.length > 0 ? sandbox : held, command.key) as ModelKey;
        requester = { kind: "key", keyId: key.id };
        verdict = m.judgeAskByKey(key);
        reply = await send(w, requester, "POST", "/v1/key-requests", {});
      } else {
        const own = allKeys(w).filter((k) => k.owner.type === "user" && k.owner.id === w.memberUserId);
        key = pick(command.ownKey && own.length > 0 ? own : allKeys(w), command.target) as ModelKey;
        requester = { kind: "session", userId: w.memberUserId };
        verdict = m.judgeAskBySession(w.memberUserId, key);
        reply = await send(w, requester, "POST", "/v1/key-requests", { key_id: key.id });
      }
      if (!judgeReply(w, `${who(requester)} asks production for ${key.label} (req${m.requests.length + 1})`, verdict, reply, false)) return;
      recordRequest(w, key, requester, reply);
      return;
    }
    case "approve":
    case "reject": {
      const request = pickRequest(w, command.ready, "pending", command.request);
      if (!request) {
        w.trace.push(`(${command.t}: no key request yet)`);
        return;
      }
      const admins = actors(w).filter((a) => m.authority(a).bounds.length === 0 && m.actorState(a).state === "live");
      const actor = pick(command.t === "approve" && command.byAdmin && admins.length > 0 ? admins : actors(w), command.actor) as Actor;
      if (command.t === "reject") {
        const verdict = m.judgeReject(actor, request);
        const reply = await send(w, actor, "POST", `/v1/key-requests/${request.id}/reject`, { reason: "model test" });
        if (judgeReply(w, `${who(actor)} rejects ${request.label}`, verdict, reply, false)) request.status = "rejected";
        return;
      }
      const verdict = m.judgeApprove(actor, request);
      const reply = await send(w, actor, "POST", `/v1/key-requests/${request.id}/approve`, {});
      if (!judgeReply(w, `${who(actor)} approves ${request.label} (issues #${w.created + 1})`, verdict, reply, false)) return;
      recordApproval(w, request, actor, reply, `#${w.created + 1}`);
      return;
    }
    case "flow": {
      const index = m.requests.length;
      await step(w, { t: "askByKey", sandboxOnly: true, key: command.key });
      const request = m.requests[index];
      if (!request) return;
      await checkState(w);
      await step(w, { t: "approve", byAdmin: command.byAdmin, actor: command.approver, ready: false, request: index });
      if (request.status !== "approved") return;
      await checkState(w);
      await step(w, { t: "claim", byRequester: command.byRequester, actor: command.claimer, ready: false, request: index });
      return;
    }
    case "claim": {
      const request = pickRequest(w, command.ready, "approved", command.request);
      if (!request) {
        w.trace.push("(claim: no key request yet)");
        return;
      }
      const actor = command.byRequester ? request.requester : (pick(actors(w), command.actor) as Actor);
      const verdict = m.judgeClaim(actor, request);
      const reply = await send(w, actor, "POST", `/v1/key-requests/${request.id}/claim`, {});
      if (!judgeReply(w, `${who(actor)} claims ${request.label}`, verdict, reply, true)) return;
      recordClaim(w, request, reply);
      return;
    }
  }
}

// ---------------------------------------------------------------- the property

function property(h: () => Harness, store: string) {
  let runs = 0;
  let firstFailureAt: number | null = null;
  return fc.asyncProperty(fc.array(commandArb, { minLength: 1, maxLength: MAX_COMMANDS }), async (commands) => {
    // Shrinking replays whole runs over HTTP. Once the budget after the first failure is spent,
    // the remaining candidates are passed over (reported as passing), which ends the shrinking
    // with the smallest failing sequence found so far: the test stays bounded in time.
    if (firstFailureAt !== null && Date.now() - firstFailureAt > SHRINK_BUDGET_MS) return;
    runs++;
    try {
      const w = await setUp(h(), `${store}${runs}`);
      for (const command of commands) {
        await step(w, command);
        await checkState(w);
      }
    } catch (error) {
      firstFailureAt ??= Date.now();
      throw error;
    }
  });
}

describe("the authority invariant, model-based, on SQLite", () => {
  let harness: Harness;
  beforeAll(async () => {
    harness = await sqliteHarness();
  });
  afterAll(async () => {
    await harness?.close();
  });

  it("no sequence of actions confers, reveals, restores or widens a right the actor does not hold", async () => {
    await fuzzAsync(
      property(() => harness, "s"),
      { numRuns: NUM_RUNS },
    );
  }, 120_000);
});

const available = await backendsAvailable();

describe.skipIf(!available)("the authority invariant, model-based, on PostgreSQL", () => {
  let harness: Harness;
  beforeAll(async () => {
    harness = await postgresHarness();
  });
  afterAll(async () => {
    await harness?.close();
  });

  it("no sequence of actions confers, reveals, restores or widens a right the actor does not hold", async () => {
    await fuzzAsync(
      property(() => harness, "p"),
      { numRuns: NUM_RUNS },
    );
  }, 120_000);
});
