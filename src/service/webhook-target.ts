import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from "node:dns";
import { isIP, type LookupFunction } from "node:net";
import ipaddr from "ipaddr.js";

/**
 * Where a webhook may be sent (docs/webhooks.md, URLs): every address a host resolves to is
 * checked against the deny-list, and the connection is made to the checked addresses only —
 * the HTTP agent's `lookup` is `checkedLookup`, so the name is never resolved a second time
 * (DNS rebinding) and nothing but a checked address reaches the socket.
 */

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a host name to every address it has (the system resolver, /etc/hosts included). */
export type HostResolver = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolver: HostResolver = (hostname) =>
  new Promise((resolve, reject) => {
    dnsLookup(hostname, { all: true, verbatim: true }, (error, addresses) => {
      if (error) reject(error);
      else resolve(addresses.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 })));
    });
  });

/** A webhook target refused by the deny-list; `message` says which address and why. */
export class RefusedWebhookTarget extends Error {
  override readonly name = "RefusedWebhookTarget";
}

function refusedIpv4(address: ipaddr.IPv4): string | null {
  const range = address.range();
  return range === "unicast" ? null : range;
}

/**
 * Why an address may not receive webhooks (a short name of its range), or null when it may:
 * only public unicast addresses pass. Loopback, private, link-local, unique-local, unspecified,
 * multicast, broadcast, carrier-grade NAT and reserved ranges are refused, and so is every IPv6
 * form that carries an IPv4 address to a refused one: IPv4-mapped (`::ffff:127.0.0.1`),
 * IPv4-compatible (`::127.0.0.1`, the whole deprecated `::/96`), NAT64 and 6to4.
 */
export function refusedAddressRange(text: string): string | null {
  const family = isIP(text);
  if (family === 4) return refusedIpv4(ipaddr.IPv4.parse(text));
  if (family !== 6) return "not an IP address";
  let v6: ipaddr.IPv6;
  try {
    // Through the URL parser's canonical form first: ipaddr.js reads a dotted tail (`::127.0.0.1`,
    // IPv4-compatible, as the system resolver prints one) as IPv4-mapped. A zone id is refused.
    v6 = ipaddr.IPv6.parse(new URL(`http://[${text}]/`).hostname.slice(1, -1));
  } catch {
    return "not an IP address";
  }
  const p = v6.parts;
  if (v6.isIPv4MappedAddress()) return refusedIpv4(v6.toIPv4Address());
  if (p.slice(0, 6).every((part) => part === 0)) {
    if (p[6] === 0 && p[7] === 0) return "unspecified";
    if (p[6] === 0 && p[7] === 1) return "loopback";
    return "IPv4-compatible";
  }
  const embedded = (high: number, low: number) => ipaddr.fromByteArray([high >> 8, high & 0xff, low >> 8, low & 0xff]) as ipaddr.IPv4;
  const range = v6.range();
  // NAT64 (64:ff9b::/96, RFC 6052): the IPv4 address is the last 32 bits. The local-use /48 is refused.
  if (range === "rfc6052") {
    const wellKnown = p[0] === 0x64 && p[1] === 0xff9b && p[2] === 0 && p[3] === 0 && p[4] === 0 && p[5] === 0;
    return wellKnown ? refusedIpv4(embedded(p[6] as number, p[7] as number)) : "rfc6052";
  }
  // 6to4 (2002::/16): the IPv4 address is bits 16–47.
  if (range === "6to4") return refusedIpv4(embedded(p[1] as number, p[2] as number));
  return range === "unicast" ? null : range;
}

/** The host part of a URL as the resolver and ipaddr.js want it: no brackets, no trailing dots, lower case. */
export function bareHost(hostname: string): string {
  return hostname
    .replace(/^\[|\]$/g, "")
    .replace(/\.+$/, "")
    .toLowerCase();
}

/** `localhost` and its subdomains (RFC 6761), whatever their case or trailing dots. */
export function isLocalhostName(hostname: string): boolean {
  const host = bareHost(hostname);
  return host === "localhost" || host.endsWith(".localhost");
}

/**
 * Resolves a webhook host and checks every address it resolves to (unless private targets are
 * allowed): one refused address refuses the host. An IP literal is checked as it is.
 */
export async function resolveWebhookHost(hostname: string, allowPrivate: boolean, resolve: HostResolver): Promise<ResolvedAddress[]> {
  const literal = checkLiteralHost(hostname, allowPrivate);
  if (literal) return [literal];
  const addresses = await resolve(hostname.replace(/^\[|\]$/g, ""));
  if (addresses.length === 0) throw new RefusedWebhookTarget(`${hostname} has no address`);
  if (!allowPrivate) for (const { address } of addresses) refuseAddress(address);
  return addresses;
}

function refuseAddress(address: string): void {
  const range = refusedAddressRange(address);
  if (range !== null) throw new RefusedWebhookTarget(`${address} is not allowed (${range})`);
}

/**
 * What can be decided about a host without resolving it: an IP literal is checked (and returned:
 * a socket asks no lookup for one), a `localhost` name is refused. Null for a name to resolve.
 */
export function checkLiteralHost(hostname: string, allowPrivate: boolean): ResolvedAddress | null {
  const host = hostname.replace(/^\[|\]$/g, "");
  const family = isIP(host);
  if (family === 0) {
    if (!allowPrivate && isLocalhostName(host)) throw new RefusedWebhookTarget(`${host} is a loopback name`);
    return null;
  }
  if (!allowPrivate) refuseAddress(host);
  return { address: host, family: family === 6 ? 6 : 4 };
}

/**
 * A `lookup` for node:net (an HTTP agent's connections): resolves once, checks every address,
 * and hands the socket only checked ones. Honours `all` (Node's happy-eyeballs connect asks for
 * every address) and `family`.
 */
export function checkedLookup(allowPrivate: boolean, resolve: HostResolver): LookupFunction {
  return (
    hostname: string,
    options: LookupOptions,
    callback: (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
  ) => {
    resolveWebhookHost(hostname, allowPrivate, resolve).then(
      (addresses) => {
        const family = options.family === "IPv4" ? 4 : options.family === "IPv6" ? 6 : options.family;
        const wanted = family === 4 || family === 6 ? addresses.filter((a) => a.family === family) : addresses;
        const first = wanted[0];
        if (!first) callback(new RefusedWebhookTarget(`${hostname} has no IPv${family} address`), "", 0);
        else if (options.all) callback(null, wanted);
        else callback(null, first.address, first.family);
      },
      (error: NodeJS.ErrnoException) => callback(error, "", 0),
    );
  };
}
