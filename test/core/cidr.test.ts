import { describe, expect, it } from "vitest";
import { isIpAllowed, isValidCidr, type ParsedCidr, parseCidr } from "../../src/core/cidr.js";

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
