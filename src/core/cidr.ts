import ipaddr from "ipaddr.js";

const FOUR_PART_IPV4 = /^\d{1,3}(?:\.\d{1,3}){3}$/;

export type ParsedCidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Parses a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a single address (taken as /32 or /128). */
export function parseCidr(value: string): ParsedCidr | null {
  const address = value.split("/")[0] ?? "";
  // Only four-part dotted IPv4: legacy forms (`10.1`, `10.0.0/8`) read as something else than they look.
  if (!address.includes(":") && !FOUR_PART_IPV4.test(address)) return null;
  try {
    if (value.includes("/")) {
      const [address, bits] = ipaddr.parseCIDR(value);
      return [normalizeAddress(address), address.kind() === "ipv6" && normalizeAddress(address).kind() === "ipv4" ? bits - 96 : bits];
    }
    if (!ipaddr.isValid(value)) return null;
    const address = normalizeAddress(ipaddr.parse(value));
    return [address, address.kind() === "ipv4" ? 32 : 128];
  } catch {
    return null;
  }
}

/** IPv4-mapped IPv6 (`::ffff:1.2.3.4`, as Node reports dual-stack peers) is compared as IPv4. */
function normalizeAddress(address: ipaddr.IPv4 | ipaddr.IPv6): ipaddr.IPv4 | ipaddr.IPv6 {
  if (address.kind() === "ipv6" && (address as ipaddr.IPv6).isIPv4MappedAddress()) {
    return (address as ipaddr.IPv6).toIPv4Address();
  }
  return address;
}

export function isValidCidr(value: string): boolean {
  return parseCidr(value) !== null;
}

/** True when `ip` lies inside any of `cidrs`. An unparsable address is never allowed. */
export function isIpAllowed(ip: string | undefined, cidrs: readonly ParsedCidr[]): boolean {
  if (!ip || !ipaddr.isValid(ip)) return false;
  const address = normalizeAddress(ipaddr.parse(ip));
  for (const [range, bits] of cidrs) {
    if (range.kind() === address.kind() && address.match(range, bits)) return true;
  }
  return false;
}
