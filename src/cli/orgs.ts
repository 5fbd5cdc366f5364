import { type Command, InvalidArgumentError } from "commander";
import { unboundedAuthority } from "../authority/actors.js";
import type { Action } from "../authority/model.js";
import { normalizeEmail, type UserRecord } from "../core/accounts.js";
import { KeywardError } from "../core/errors.js";
import type { OwnerRecord, QuotaSpec, RateLimitSpec, RequestContext } from "../core/model.js";
import { type MembershipRecord, ORGANIZATION_ROLES, type OrganizationRole } from "../core/organizations.js";
import { cryptoRandomBytes, generateId } from "../core/random.js";
import { type SharedLimitsJson, sharedLimitsJson } from "../core/shared-limits.js";
import type { Keyward } from "../engine/keyward.js";
import {
  changeOrganizationMember,
  type MemberJson,
  memberJson,
  membersWithEmails,
  mergeSharedLimits,
  organizationJson,
  organizationRef,
} from "../engine/organizations.js";
import type { AccountStore } from "../ports/account-store.js";
import { accountStoreFor } from "../service/account-store-factory.js";
import { enforce } from "../service/authority-gate.js";
import {
  orNull,
  parseBurst,
  parseConcurrency,
  parseQuota,
  parseQuotaRefill,
  parseRateLimit,
  type Removable,
  removable,
} from "./key-options.js";

/**
 * `keyward orgs …` (docs/organizations.md): organizations and their members, straight on the
 * configured store. The CLI is the operator: unbounded (every action is still decided by the
 * authority model, as the other commands do), each change audited with the actor `cli`.
 */

export interface OrgCommandTools {
  out: (line: string) => void;
  withKeyward: <T>(fn: (keyward: Keyward) => Promise<T>) => Promise<T>;
  cliContext: () => RequestContext;
}

interface SharedLimitOptions {
  rateLimit?: Removable<RateLimitSpec>;
  burst?: number;
  concurrency?: Removable<number>;
  quota?: Removable<QuotaSpec>;
  quotaRefill?: { amount: number; every_seconds: number };
}

const usageError = (message: string) => new KeywardError("VALIDATION_FAILED", message);

function parseRole(value: string): OrganizationRole {
  const role = value.trim().toLowerCase() as OrganizationRole;
  if (!ORGANIZATION_ROLES.includes(role)) throw new InvalidArgumentError(`use ${ORGANIZATION_ROLES.join(", ")}`);
  return role;
}

function parseOrganizationId(value: string): string {
  if (!/^[A-Za-z0-9_.@:-]{1,128}$/.test(value)) throw new InvalidArgumentError("1 to 128 letters, digits and _ . @ : -");
  return value;
}

function parseName(value: string): string {
  if (value.length < 1 || value.length > 100) throw new InvalidArgumentError("1 to 100 characters");
  return value;
}

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1 || n > 200) throw new InvalidArgumentError("an integer from 1 to 200");
  return n;
}

/** The shared-limit flags, as `keys create` takes them (key-options.ts); `none` removes one. */
function withSharedLimits(command: Command): Command {
  return command
    .option(
      "--rate-limit <rate>",
      "requests per window for all its keys together: 5/s, 100/m, 1000/h, 300/5m (none: no limit)",
      removable(parseRateLimit),
    )
    .option("--burst <n>", "with --rate-limit: requests allowed at once (default the rate's requests)", parseBurst)
    .option("--concurrency <n>", "requests in flight at once across its keys, 1 to 10000 (none: no limit)", removable(parseConcurrency))
    .option("--quota <quota>", "<n>/day or <n>/month (UTC calendar), or <n> credits, shared (none: no quota)", removable(parseQuota))
    .option("--quota-refill <refill>", "with credits: add <n> every period, e.g. 100/1h", parseQuotaRefill);
}

/** The shared-limit fields the flags give, in the API's spelling (only those given). */
function sharedLimitFlags(options: SharedLimitOptions): Partial<SharedLimitsJson> {
  const rateLimit = orNull(options.rateLimit);
  const concurrency = orNull(options.concurrency);
  const quota = orNull(options.quota);
  if (options.burst !== undefined && !rateLimit) throw usageError("--burst needs --rate-limit");
  if (options.quotaRefill !== undefined && !(quota && "remaining" in quota)) throw usageError("--quota-refill needs --quota <n> (credits)");
  return {
    ...(rateLimit !== undefined
      ? { rate_limit: rateLimit && options.burst !== undefined ? { ...rateLimit, burst: options.burst } : rateLimit }
      : {}),
    ...(concurrency !== undefined ? { concurrency } : {}),
    ...(quota !== undefined ? { quota: quota && options.quotaRefill ? { ...quota, refill: options.quotaRefill } : quota } : {}),
  };
}

function describeLimits(limits: SharedLimitsJson | null): string[] {
  if (!limits) return ["shared limits  none"];
  const lines: string[] = [];
  const rate = limits.rate_limit;
  if (rate) lines.push(`rate limit     ${rate.requests} per ${rate.per_seconds} s${rate.burst ? ` (burst ${rate.burst})` : ""}, shared`);
  if (limits.concurrency !== null) lines.push(`concurrency    ${limits.concurrency}, shared`);
  const quota = limits.quota;
  if (quota)
    lines.push(
      "limit" in quota
        ? `quota          ${quota.limit} a ${quota.period}, shared`
        : `quota          ${quota.remaining} credits${quota.refill ? ` (+${quota.refill.amount} every ${quota.refill.every_seconds} s)` : ""}, shared`,
    );
  return lines;
}

function describeOrganization(owner: OwnerRecord): string {
  return [
    `id             ${owner.id}`,
    `name           ${owner.name ?? ""}`,
    `status         ${owner.disabled ? "disabled" : "active"}`,
    `created        ${new Date(owner.createdAt).toISOString()}`,
    ...describeLimits(sharedLimitsJson(owner.limits)),
  ].join("\n");
}

function describeMembers(members: MemberJson[]): string {
  if (members.length === 0) return "No members.";
  const width = Math.max(5, ...members.map((m) => (m.email ?? m.user_id).length));
  return [
    `${"EMAIL".padEnd(width)}  ${"ROLE".padEnd(9)}  ADDED`,
    ...members.map((m) => `${(m.email ?? m.user_id).padEnd(width)}  ${m.role.padEnd(9)}  ${m.added_at}`),
  ].join("\n");
}

/** The CLI is unbounded, but still asks the authority model (as the API does, one `enforce`). */
const enforceAuthority = (context: RequestContext, action: Action): void => enforce(unboundedAuthority(context.actor), action);

async function accountStore(keyward: Keyward): Promise<AccountStore> {
  const store = accountStoreFor(keyward.store);
  if (!store) throw new KeywardError("INVALID_CONFIGURATION", "this store keeps no users");
  await store.migrate();
  return store;
}

async function organization(keyward: Keyward, id: string): Promise<OwnerRecord> {
  const owner = await keyward.store.getOwner(organizationRef(id));
  if (!owner) throw new KeywardError("RESOURCE_NOT_FOUND", `no organization ${id}`);
  return owner;
}

async function userByEmail(store: AccountStore, email: string): Promise<UserRecord> {
  const user = await store.getUserByEmail(normalizeEmail(email));
  if (!user) throw new KeywardError("RESOURCE_NOT_FOUND", `no user ${email}: create one first (keyward users create)`);
  return user;
}

/** Adds a member, changes their role or removes them (to null), decided and audited as the API does. */
async function changeMember(
  keyward: Keyward,
  store: AccountStore,
  context: RequestContext,
  id: string,
  user: UserRecord,
  from: OrganizationRole | null,
  to: OrganizationRole | null,
): Promise<MembershipRecord | null> {
  enforceAuthority(context, { type: "organization.members", organization: organizationRef(id), from, to });
  return changeOrganizationMember(keyward, store, context, id, user, from, to);
}

export function addOrganizationCommands(program: Command, { out, withKeyward, cliContext }: OrgCommandTools): void {
  const orgs = program.command("orgs").description("organizations: owners of keys whose members manage them by role");

  withSharedLimits(
    orgs
      .command("create")
      .description("create an organization, with the limits all its keys share")
      .requiredOption("--name <name>", "its display name", parseName)
      .option("--id <id>", "its id (default: generated, org_…)", parseOrganizationId),
  )
    .option("--json", "print JSON")
    .action(async (options: SharedLimitOptions & { name: string; id?: string; json?: boolean }) => {
      const given = sharedLimitFlags(options);
      await withKeyward(async (keyward) => {
        const context = cliContext();
        enforceAuthority(context, { type: "organization.govern" });
        const ref = organizationRef(options.id ?? generateId("org", cryptoRandomBytes));
        const created = await keyward.createOwner(ref, { name: options.name, limits: mergeSharedLimits(given, null) ?? null }, context);
        out(options.json ? JSON.stringify(organizationJson(created), null, 2) : `Organization created.\n${describeOrganization(created)}`);
      });
    });

  orgs
    .command("list")
    .description("list organizations, newest first")
    .option("--q <text>", "only those whose id or name contains this")
    .option("--limit <n>", "at most this many (1 to 200)", positive, 50)
    .option("--cursor <cursor>", "continue from a previous page")
    .option("--json", "print JSON")
    .action(async (options: { q?: string; limit: number; cursor?: string; json?: boolean }) => {
      await withKeyward(async (keyward) => {
        const page = await keyward.listOwners(
          { type: "organization", ...(options.q ? { q: options.q } : {}) },
          { limit: options.limit, ...(options.cursor ? { cursor: options.cursor } : {}) },
        );
        const data = page.data.map((owner) => organizationJson(owner));
        if (options.json) {
          out(JSON.stringify({ data, next_cursor: page.nextCursor }, null, 2));
          return;
        }
        if (data.length === 0) out("No organizations.");
        else {
          const width = Math.max(2, ...data.map((o) => o.id.length));
          out(`${"ID".padEnd(width)}  ${"STATUS".padEnd(8)}  NAME`);
          for (const o of data) out(`${o.id.padEnd(width)}  ${(o.disabled ? "disabled" : "active").padEnd(8)}  ${o.name ?? ""}`);
        }
        if (page.nextCursor) out(`(more: --cursor ${page.nextCursor})`);
      });
    });

  orgs
    .command("show <id>")
    .description("show an organization, its shared limits and its members")
    .option("--json", "print JSON")
    .action(async (id: string, options: { json?: boolean }) => {
      await withKeyward(async (keyward) => {
        const owner = await organization(keyward, id);
        const members = await membersWithEmails(await accountStore(keyward), id);
        if (options.json) out(JSON.stringify({ ...organizationJson(owner), members }, null, 2));
        else out(`${describeOrganization(owner)}\n\n${describeMembers(members)}`);
      });
    });

  withSharedLimits(
    orgs
      .command("limits <id>")
      .description("show or change the limits all the organization's keys share; each flag given replaces that limit, the others stay"),
  )
    .option("--json", "print JSON")
    .action(async (id: string, options: SharedLimitOptions & { json?: boolean }) => {
      const given = sharedLimitFlags(options);
      await withKeyward(async (keyward) => {
        let owner = await organization(keyward, id);
        if (Object.keys(given).length > 0) {
          const context = cliContext();
          enforceAuthority(context, { type: "organization.govern" });
          owner = await keyward.updateOwner(organizationRef(id), { limits: mergeSharedLimits(given, owner) ?? null }, context);
        }
        const limits = sharedLimitsJson(owner.limits);
        out(options.json ? JSON.stringify({ id: owner.id, shared_limits: limits }, null, 2) : describeLimits(limits).join("\n"));
      });
    });

  const members = orgs
    .command("members")
    .description("an organization's members: console users, each with a role (owner, admin, developer, viewer)");

  members
    .command("list <id>")
    .description("list an organization's members, oldest first")
    .option("--json", "print JSON")
    .action(async (id: string, options: { json?: boolean }) => {
      await withKeyward(async (keyward) => {
        await organization(keyward, id);
        const data = await membersWithEmails(await accountStore(keyward), id);
        out(options.json ? JSON.stringify({ data }, null, 2) : describeMembers(data));
      });
    });

  members
    .command("add <id>")
    .description("add a console user to an organization with a role")
    .requiredOption("--email <email>", "the user's email (a console user: keyward users create)")
    .requiredOption("--role <role>", "owner, admin, developer or viewer", parseRole)
    .option("--json", "print JSON")
    .action(async (id: string, options: { email: string; role: OrganizationRole; json?: boolean }) => {
      await withKeyward(async (keyward) => {
        await organization(keyward, id);
        const store = await accountStore(keyward);
        const user = await userByEmail(store, options.email);
        if (await store.getMembership(id, user.id))
          throw new KeywardError("CONFLICT", `${user.email} is a member already: change their role with keyward orgs members role`);
        const added = (await changeMember(keyward, store, cliContext(), id, user, null, options.role)) as MembershipRecord;
        out(options.json ? JSON.stringify(memberJson(added, user), null, 2) : `${user.email} added to ${id} as ${added.role}.`);
      });
    });

  members
    .command("role <id>")
    .description("change a member's role")
    .requiredOption("--email <email>", "the member's email")
    .requiredOption("--role <role>", "owner, admin, developer or viewer", parseRole)
    .option("--json", "print JSON")
    .action(async (id: string, options: { email: string; role: OrganizationRole; json?: boolean }) => {
      await withKeyward(async (keyward) => {
        await organization(keyward, id);
        const store = await accountStore(keyward);
        const user = await userByEmail(store, options.email);
        const before = await store.getMembership(id, user.id);
        if (!before) throw new KeywardError("RESOURCE_NOT_FOUND", `${user.email} is not a member of ${id}`);
        const changed = (await changeMember(keyward, store, cliContext(), id, user, before.role, options.role)) as MembershipRecord;
        out(options.json ? JSON.stringify(memberJson(changed, user), null, 2) : `${user.email} is now ${changed.role} of ${id}.`);
      });
    });

  members
    .command("remove <id>")
    .description("remove a member: their access to the organization's keys ends at once; the keys stay with it")
    .requiredOption("--email <email>", "the member's email")
    .option("--json", "print JSON")
    .action(async (id: string, options: { email: string; json?: boolean }) => {
      await withKeyward(async (keyward) => {
        await organization(keyward, id);
        const store = await accountStore(keyward);
        const user = await userByEmail(store, options.email);
        const before = await store.getMembership(id, user.id);
        if (!before) throw new KeywardError("RESOURCE_NOT_FOUND", `${user.email} is not a member of ${id}`);
        await changeMember(keyward, store, cliContext(), id, user, before.role, null);
        out(
          options.json
            ? JSON.stringify({ removed: true, organization_id: id, user_id: user.id, email: user.email, role: before.role }, null, 2)
            : `${user.email} removed from ${id}.`,
        );
      });
    });
}
