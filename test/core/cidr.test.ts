import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isIpAllowed, isValidCidr, type ParsedCidr, parseCidr } from "../../src/core/cidr.js";
import { fuzz } from "../helpers/fuzz.js";

const list = (...cidrs: string[]) => cidrs.map(parseCidr) as ParsedCidr[];

describe("CIDR allow-lists", () => {
  it("matches IPv4 ranges and single addresses", () => {
    expect(isIpAllowed("10.1.2.3", list("10.0.0.0/8"))).toBe(true);
    expect(isIpAllowed("11.1.2.3", list("10.0.0.0/8"))).toBe(false);
    expect(isIpAllowed("192.168.1.7", list("192.168.1.7"))).toBe(true);
    expect(isIpAllowed("192.168.1.8", list("192.168.1.7"))).toBe(false);
  });

  it("matches IPv6 ranges", () => {
    expect(isIpAllowed("2001:db8::1", list("2001:db8::/32"))).toBe(true);
    expect(isIpAllowed("2001:db9::1", list("2001:db8::/32"))).toBe(false);
    expect(isIpAllowed("::1", list("::1"))).toBe(true);
  });

  it("compares IPv4-mapped IPv6 client addresses as IPv4", () => {
    expect(isIpAllowed("::ffff:10.1.2.3", list("10.0.0.0/8"))).toBe(true);
    expect(isIpAllowed("::ffff:127.0.0.1", list("127.0.0.0/8"))).toBe(true);
    expect(isIpAllowed("10.1.2.3", list("::ffff:10.0.0.0/104"))).toBe(true);
  });

  it("never allows an unknown or unparsable address", () => {
    expect(isIpAllowed(undefined, list("0.0.0.0/0"))).toBe(false);
    expect(isIpAllowed("not-an-ip", list("0.0.0.0/0"))).toBe(false);
  });

  it.each(["10.0.0.0/33", "10.0.0/8", "2001:db8::/129", "", "abc", "10.0.0.0/-1"])("refuses %j", (cidr) => {
    expect(isValidCidr(cidr)).toBe(false);
  });
});

describe("CIDR matching (property)", () => {
  const toIpv4 = (n: number) => [24, 16, 8, 0].map((shift) => (n >>> shift) & 255).join(".");
  const maskOf = (bits: number) => (bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0);

  it("parsing and matching never throw, whatever the strings", () => {
    const text = fc.oneof(
      fc.string({ maxLength: 60 }),
      fc.ipV4(),
      fc.ipV6(),
      fc.ipV4Extended(),
      fc.string({ unit: "grapheme", maxLength: 30 }),
    );
    fuzz(
      fc.property(text, fc.array(text, { maxLength: 4 }), (ip, cidrs) => {
        const parsed = cidrs.map(parseCidr).filter((c): c is ParsedCidr => c !== null);
        return typeof isIpAllowed(ip, parsed) === "boolean";
      }),
    );
  });

  it("an IPv4 address is allowed exactly when its masked bits equal the range's, also in IPv4-mapped form", () => {
    fuzz(
      fc.property(
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 32 }),
        (ip, net, bits) => {
          const mask = maskOf(bits);
          const range = `${toIpv4((net & mask) >>> 0)}/${bits}`;
          const expected = (ip & mask) >>> 0 === (net & mask) >>> 0;
          const cidrs = [parseCidr(range) as ParsedCidr];
          return isIpAllowed(toIpv4(ip), cidrs) === expected && isIpAllowed(`::ffff:${toIpv4(ip)}`, cidrs) === expected;
        },
      ),
    );
  });

  it("every IPv6 address lies in its own /128 and in ::/0, and never in an IPv4 range", () => {
    fuzz(
      fc.property(fc.ipV6(), (ip) => {
        const own = parseCidr(ip);
        fc.pre(own !== null && own[0].kind() === "ipv6");
        return (
          isIpAllowed(ip, [own as ParsedCidr]) &&
          isIpAllowed(ip, [parseCidr("::/0") as ParsedCidr]) &&
          !isIpAllowed(ip, [parseCidr("0.0.0.0/0") as ParsedCidr])
        );
      }),
    );
  });
});
