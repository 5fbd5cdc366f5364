import proxyAddr from "@fastify/proxy-addr";
import { parseCidr } from "../core/cidr.js";
import { KeywardError } from "../core/errors.js";

/** Names proxy-addr understands: loopback, link-local and unique-local (private) ranges. */
const NAMED_RANGES = ["loopback", "linklocal", "uniquelocal"];
const INTERNAL_RANGES = ["private", "uniqueLocal", "loopback", "linkLocal"];
/** Values that mean "believe every peer". */
const TRUST_EVERYONE = new Set(["true", "*", "all", "0.0.0.0/0", "::/0"]);

/**
 * Reads `KEYWARD_TRUST_PROXY`: proxy addresses, CIDRs or the names `loopback`, `linklocal`,
 * `uniquelocal`. Anything else stops the start with a message, instead of a cryptic one from
 * the proxy library (or, worse, a value that silently trusts every peer).
 */
export function parseTrustProxy(raw: string | undefined): string[] {
  const entries = (raw ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const entry of entries) {
    const value = entry.toLowerCase();
    if (TRUST_EVERYONE.has(value) || NAMED_RANGES.includes(value)) continue;
    if (!parseCidr(entry)) {
      throw new KeywardError(
        "INVALID_CONFIGURATION",
        `KEYWARD_TRUST_PROXY: ${JSON.stringify(entry)} is not an address, a CIDR, or one of ${NAMED_RANGES.join(", ")}`,
      );
    }
  }
  return entries;
}

const trustsEveryone = (entries: readonly string[]) => entries.some((e) => TRUST_EVERYONE.has(e.toLowerCase()));

/** What Fastify's `trustProxy` is given: `true` when the list trusts everyone (proxy-addr refuses `/0`). */
export function fastifyTrustProxy(entries: readonly string[]): boolean | string[] {
  if (entries.length === 0) return false;
  return trustsEveryone(entries) ? true : [...entries];
}

/**
 * Start-up warnings for trust settings that let clients choose their own address through
 * `X-Forwarded-For` (docs/security.md, check 8): every peer trusted, or ranges so wide they take in the
 * internet. Each says what goes wrong and what to do.
 */
export function trustProxyWarnings(entries: readonly string[]): string[] {
  const consequence =
    "any client can then set its own address with X-Forwarded-For: CIDR allow-lists, failed-attempt throttling, connection caps and audit addresses can be spoofed. List only your proxies' addresses.";
  if (trustsEveryone(entries)) return [`KEYWARD_TRUST_PROXY trusts every peer; ${consequence}`];
  const warnings: string[] = [];
  for (const entry of entries) {
    const parsed = parseCidr(entry);
    if (!parsed) continue; // names: loopback, linklocal, uniquelocal
    const [address, bits] = parsed;
    const wide = (address.kind() === "ipv4" && bits < 8) || (address.kind() === "ipv6" && bits < 16);
    // A wide private range (fd00::/8, 10.0.0.0/8) is a normal way to name an internal network.
    if (wide && !INTERNAL_RANGES.includes(address.range())) {
      warnings.push(`KEYWARD_TRUST_PROXY entry ${entry} is a very wide range; ${consequence}`);
    }
  }
  return warnings;
}

/** True when a peer address is one of the trusted proxies (their connections carry many clients). */
export function trustedProxyMatcher(entries: readonly string[]): (address: string) => boolean {
  if (entries.length === 0) return () => false;
  if (trustsEveryone(entries)) return () => true;
  const trust = proxyAddr.compile([...entries]);
  return (address) => trust(address, 0);
}
