import { KeywardError } from "../core/errors.js";
import type { PortalSessionRecord } from "../core/portal-policy.js";
import type { ServiceContext } from "./context.js";

/**
 * A portal policy's `max_keys` (docs/embedding.md): creating through the session is refused while
 * the owner already has that many live keys (active, or in a rotation grace). Checked before the
 * insert, so two creates at the same instant may both pass it: it is a product limit, not an
 * authority bound (the authority bound is decided by `decide`).
 */
export async function enforcePortalKeyCap(ctx: ServiceContext, portal: PortalSessionRecord): Promise<void> {
  const max = portal.policy.maxKeys;
  if (max === null) return;
  const live = await ctx.keyward.countKeys({ ownerType: portal.owner.type, ownerId: portal.owner.id, status: "active" });
  if (live >= max) throw new KeywardError("FORBIDDEN", `this portal session allows at most ${max} live keys: revoke one first`);
}
