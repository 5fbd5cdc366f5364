const SEGMENT = "(?:[a-z0-9_.-]+|\\*)";
const SCOPE_PATTERN = new RegExp(`^${SEGMENT}(?::${SEGMENT})*$`);

export const MAX_SCOPE_LENGTH = 128;
export const MAX_SCOPES_PER_KEY = 64;

/** Scopes that call the management API. `admin` grants all of them. */
export const MANAGEMENT_SCOPES = ["keys:read", "keys:write", "keys:verify", "users:write", "audit:read", "portal:create"] as const;
export type ManagementScope = (typeof MANAGEMENT_SCOPES)[number];

export function isValidScope(scope: string): boolean {
  return scope.length > 0 && scope.length <= MAX_SCOPE_LENGTH && SCOPE_PATTERN.test(scope);
}

/**
 * Does one granted scope cover one required scope? A trailing `*` matches one or more trailing
 * segments (`approvals:*` covers `approvals:read` but not `approvals`); a `*` elsewhere matches
 * exactly one segment. `admin` covers every management scope.
 */
export function scopeCovers(granted: string, required: string): boolean {
  if (granted === required) return true;
  if (granted === "admin") return (MANAGEMENT_SCOPES as readonly string[]).includes(required);
  if (!granted.includes("*")) return false;
  const g = granted.split(":");
  const r = required.split(":");
  for (let i = 0; i < g.length; i++) {
    const segment = g[i];
    if (segment === "*" && i === g.length - 1) return r.length > i;
    if (i >= r.length) return false;
    if (segment !== "*" && segment !== r[i]) return false;
  }
  return g.length === r.length;
}

const NONE_MISSING: string[] = Object.freeze([]) as unknown as string[];

/**
 * Every required scope must be covered by some granted scope. Returns the ones that are not
 * (a shared empty array when all are covered: this runs on every verification).
 */
export function findMissingScopes(granted: readonly string[], required: readonly string[]): string[] {
  let missing: string[] | undefined;
  for (const need of required) {
    let covered = false;
    for (const have of granted) {
      if (scopeCovers(have, need)) {
        covered = true;
        break;
      }
    }
    if (covered) continue;
    if (missing) missing.push(need);
    else missing = [need];
  }
  return missing ?? NONE_MISSING;
}

/**
 * Management scopes that `requested` would grant and `holder` does not cover: a key may never
 * mint or widen a key beyond its own management rights (no `keys:write` key can mint `admin`).
 */
export function findEscalatingScopes(holder: readonly string[], requested: readonly string[]): string[] {
  const escalating: string[] = [];
  for (const scope of requested) {
    const grants = MANAGEMENT_SCOPES.filter((management) => scopeCovers(scope, management));
    if (grants.some((management) => findMissingScopes(holder, [management]).length > 0)) escalating.push(scope);
  }
  return escalating;
}
