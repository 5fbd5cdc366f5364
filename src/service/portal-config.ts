import { KeywardError } from "../core/errors.js";
import { normaliseOrigin } from "../core/portal-policy.js";

/**
 * `KEYWARD_PORTAL_ORIGINS` (docs/configuration.md): the origins of host applications whose pages
 * call Keyward with a portal token (docs/embedding.md). Only they get CORS headers, and only on
 * the routes a portal token may call. Empty: no cross-origin call is answered with CORS headers
 * (the hosted page `/portal` and a same-origin host still work).
 */
export function loadPortalOrigins(env: Record<string, string | undefined>): readonly string[] {
  const raw = env.KEYWARD_PORTAL_ORIGINS?.trim();
  if (!raw) return [];
  return raw
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const origin = normaliseOrigin(part);
      if (!origin)
        throw new KeywardError(
          "INVALID_CONFIGURATION",
          `KEYWARD_PORTAL_ORIGINS: ${part} is not an origin (scheme, host and optional port, such as https://app.example.com)`,
        );
      return origin;
    });
}
