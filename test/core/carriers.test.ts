import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type DistinctHeaders, extractCredential } from "../../src/core/carriers.js";
import { generateApiKey } from "../../src/core/key-format.js";
import { LegacyFormats, parseLegacyFormats } from "../../src/core/legacy-formats.js";
import { fuzz } from "../helpers/fuzz.js";

const key = generateApiKey({ environment: "sandbox" });
const other = generateApiKey({ environment: "production" });
const extract = (headers: DistinctHeaders, search = "", allowQueryKeys = false) =>
  extractCredential(headers, search, { prefix: "kw", allowQueryKeys });
const basic = (text: string) => `Basic ${Buffer.from(text).toString("base64")}`;

describe("carriers", () => {
  it.each([
    ["ApiKey", { authorization: `ApiKey ${key}` }, "apikey"],
    ["apikey lower case", { authorization: `apikey ${key}` }, "apikey"],
    ["Bearer", { authorization: `Bearer ${key}` }, "bearer"],
    ["bEaReR with spaces", { authorization: `  bEaReR   ${key}   ` }, "bearer"],
    ["X-API-Key", { "x-api-key": key }, "x-api-key"],
    ["X-API-Key as a one-element array", { "x-api-key": [` ${key} `] }, "x-api-key"],
    ["Basic user", { authorization: basic(`${key}:`) }, "basic"],
    ["Basic password", { authorization: basic(`:${key}`) }, "basic"],
    ["Basic with a user name and the key as password", { authorization: basic(`svc:${key}`) }, "basic"],
  ] as const)("%s gives the key unchanged", (_name, headers, carrier) => {
    expect(extract(headers as DistinctHeaders)).toEqual({ kind: "key", key, carrier });
  });

  it("follows the precedence ApiKey > Bearer > X-API-Key > Basic when they agree", () => {
    expect(extract({ authorization: `Bearer ${key}`, "x-api-key": key })).toEqual({ kind: "key", key, carrier: "bearer" });
  });

  it("no carrier is none", () => {
    expect(extract({})).toEqual({ kind: "none" });
  });
});

describe("ambiguity", () => {
  it.each([
    ["two Authorization headers", { authorization: [`Bearer ${key}`, `Bearer ${key}`] }],
    ["two X-API-Key headers", { "x-api-key": [key, key] }],
    ["X-API-Key values joined by Node", { "x-api-key": `${key}, ${other}` }],
    ["different keys in two carriers", { authorization: `Bearer ${key}`, "x-api-key": other }],
    ["Basic with two different keys", { authorization: basic(`${key}:${other}`) }],
  ])("%s → AMBIGUOUS_CREDENTIALS", (_name, headers) => {
    expect(extract(headers as DistinctHeaders)).toEqual({ kind: "error", code: "AMBIGUOUS_CREDENTIALS" });
  });
});

describe("malformed", () => {
  it.each([
    ["Bearer alone", { authorization: "Bearer" }],
    ["Bearer with two tokens", { authorization: `Bearer ${key} extra` }],
    ["Basic with bad base64", { authorization: "Basic !!!" }],
    ["Basic without colon", { authorization: basic(key) }],
    ["non-ASCII", { "x-api-key": "kw_test_ké" }],
    ["4 KB value", { "x-api-key": "k".repeat(4096) }],
    ["ApiKey with nothing", { authorization: "ApiKey   " }],
  ])("%s → MALFORMED", (_name, headers) => {
    const result = extract(headers as DistinctHeaders);
    expect(result).toMatchObject({ kind: "error", code: "MALFORMED" });
  });

  it("a Bearer token of a declared legacy format is a key; a JWT, however long, stays foreign", () => {
    const legacy = new LegacyFormats(
      parseLegacyFormats(
        '[{"name":"acme","prefix":"acme_","digest":"sha256_hex"},{"name":"crm","pattern":"crm-[0-9a-f]{8}","digest":"sha256"}]',
        undefined,
        "kw",
      ),
      "kw",
    );
    const withLegacy = (headers: DistinctHeaders) => extractCredential(headers, "", { prefix: "kw", legacy });
    expect(withLegacy({ authorization: "Bearer acme_0123456789" })).toEqual({ kind: "key", key: "acme_0123456789", carrier: "bearer" });
    expect(withLegacy({ authorization: "Bearer crm-0123abcd" })).toEqual({ kind: "key", key: "crm-0123abcd", carrier: "bearer" });
    expect(withLegacy({ authorization: "Bearer crm-0123abcdef" })).toEqual({ kind: "error", code: "MALFORMED", foreign: true });
    expect(withLegacy({ authorization: `Bearer ${key}` })).toEqual({ kind: "key", key, carrier: "bearer" });
    // Without the formats (the default), the same token is foreign as ever.
    expect(extract({ authorization: "Bearer acme_0123456789" })).toEqual({ kind: "error", code: "MALFORMED", foreign: true });
    const longJwt = `eyJhbGciOiJSUzI1NiJ9.${"e".repeat(400)}.${"s".repeat(86)}`;
    expect(withLegacy({ authorization: `Bearer ${longJwt}` })).toEqual({ kind: "error", code: "MALFORMED", foreign: true });
    // A legacy key as long as a legacy key may be (256) passes every carrier.
    const long = `acme_${"a".repeat(251)}`;
    expect(withLegacy({ "x-api-key": long, authorization: `Bearer ${long}` })).toEqual({ kind: "key", key: long, carrier: "bearer" });
  });

  it("a JWT bearer or another scheme is marked foreign (for optional mode)", () => {
    expect(extract({ authorization: "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig" })).toEqual({ kind: "error", code: "MALFORMED", foreign: true });
    expect(extract({ authorization: "Digest username=x" })).toEqual({ kind: "error", code: "MALFORMED", foreign: true });
    // Past the 1,024-character carrier bound: a big JWT or another scheme stays foreign; ours do not.
    const bigJwt = `eyJhbGciOiJSUzI1NiJ9.${"e".repeat(2_000)}.sig`;
    expect(extract({ authorization: `Bearer ${bigJwt}` })).toEqual({ kind: "error", code: "MALFORMED", foreign: true });
    expect(extract({ authorization: `Negotiate ${"Y".repeat(2_000)}` })).toEqual({ kind: "error", code: "MALFORMED", foreign: true });
    expect(extract({ authorization: `Bearer ${key}${"x".repeat(2_000)}` })).toEqual({ kind: "error", code: "MALFORMED", foreign: false });
    expect(extract({ authorization: `ApiKey ${"x".repeat(2_000)}` })).toEqual({ kind: "error", code: "MALFORMED", foreign: false });
    expect(extract({ authorization: `Basic ${"x".repeat(2_000)}` })).toEqual({ kind: "error", code: "MALFORMED", foreign: false });
    expect(extract({ authorization: `Bearer ${key}x y` })).toEqual({ kind: "error", code: "MALFORMED", foreign: false });
  });
});

describe("keys in URLs", () => {
  it.each(["api_key", "apikey", "key", "access_token", "API_KEY"])("?%s= is refused", (name) => {
    expect(extract({}, `${name}=whatever`)).toEqual({ kind: "error", code: "KEY_IN_URL" });
  });

  it("any query value shaped like a key of this deployment is refused", () => {
    expect(extract({ authorization: `Bearer ${key}` }, `q=${key}`)).toEqual({ kind: "error", code: "KEY_IN_URL" });
    expect(extract({}, "scopes=read,write")).toEqual({ kind: "none" });
  });

  it("with query keys turned on, the query is the carrier of last resort", () => {
    expect(extract({}, `api_key=${key}`, true)).toEqual({ kind: "key", key, carrier: "query" });
  });
});

describe("robustness (property)", () => {
  it("arbitrary header values never throw", () => {
    fuzz(
      fc.property(
        fc.string({ maxLength: 300 }),
        fc.string({ maxLength: 300 }),
        fc.string({ maxLength: 100 }),
        (authorization, apiKey, search) => {
          const result = extract({ authorization, "x-api-key": apiKey }, search);
          return ["none", "key", "error"].includes(result.kind);
        },
      ),
    );
  });

  it("whatever surrounds it, a presented key is never altered inside", () => {
    fuzz(
      fc.property(fc.constantFrom(" ", "\t", ""), fc.constantFrom(" ", "\t", ""), (before, after) => {
        const result = extract({ authorization: `Bearer ${before}${key}${after}` });
        return result.kind === "key" && result.key === key;
      }),
    );
  });

  const header = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.string({ unit: "grapheme", maxLength: 100 }),
    fc.string({ unit: "binary", maxLength: 100 }),
    fc.constantFrom("Bearer", "Basic", "ApiKey", "Bearer  ", "Basic =", "ApiKey \t"),
    fc
      .tuple(fc.constantFrom("Bearer", "bearer", "BASIC", "Basic", "ApiKey", "apiKEY", "Digest", ""), fc.string({ maxLength: 120 }))
      .map(([scheme, rest]) => `${scheme} ${rest}`),
    fc
      .tuple(fc.string({ maxLength: 60 }), fc.string({ maxLength: 60 }), fc.boolean())
      .map(([user, password, colon]) => `Basic ${Buffer.from(colon ? `${user}:${password}` : user, "latin1").toString("base64")}`),
    fc.constant(key),
  );
  const values = fc.option(fc.oneof(header, fc.array(header, { maxLength: 3 })), { nil: undefined });

  it("any headers, repeated or not, any query: never throws, and a key it gives is printable ASCII found verbatim in the input", () => {
    fuzz(
      fc.property(values, values, fc.string({ maxLength: 200 }), fc.boolean(), (authorization, apiKey, search, allowQueryKeys) => {
        const headers: DistinctHeaders = { authorization, "x-api-key": apiKey };
        const result = extract(headers, search, allowQueryKeys);
        if (result.kind !== "key") return ["none", "error"].includes(result.kind);
        const everything = [...[authorization, apiKey].flat(), decodeURIComponentSafe(search)].join("\n");
        const decodedBasic = [authorization]
          .flat()
          .filter((v): v is string => typeof v === "string" && /^\s*basic\s/i.test(v))
          .map((v) => Buffer.from(v.trim().slice(6).trim(), "base64").toString("latin1"))
          .join(" ");
        return /^[\x21-\x7e]+$/.test(result.key) && (everything.includes(result.key) || decodedBasic.includes(result.key));
      }),
      { numRuns: 500 },
    );
  });

  it("a key in any carrier, scheme in any case, with surrounding whitespace, gives the same key (property)", () => {
    const scheme = (name: string) =>
      fc
        .array(fc.boolean(), { minLength: name.length, maxLength: name.length })
        .map((upper) => [...name].map((c, i) => (upper[i] ? c.toUpperCase() : c.toLowerCase())).join(""));
    const space = fc.constantFrom("", " ", "  ", "\t");
    const carrier = fc.oneof(
      fc.tuple(scheme("apikey"), space, space).map(([s, a, b]) => ({ authorization: `${a}${s} ${key}${b}` })),
      fc.tuple(scheme("bearer"), space, space).map(([s, a, b]) => ({ authorization: `${a}${s}  ${key}${b}` })),
      fc.tuple(space, space).map(([a, b]) => ({ "x-api-key": `${a}${key}${b}` })),
      fc.tuple(scheme("basic"), fc.boolean()).map(([s, asUser]) => ({
        authorization: `${s} ${Buffer.from(asUser ? `${key}:` : `:${key}`).toString("base64")}`,
      })),
    );
    fuzz(
      fc.property(carrier, (headers) => {
        const result = extract(headers as DistinctHeaders);
        return result.kind === "key" && result.key === key;
      }),
    );
  });
});

function decodeURIComponentSafe(text: string): string {
  try {
    return `${text} ${new URLSearchParams(text).toString()} ${[...new URLSearchParams(text).values()].join(" ")}`;
  } catch {
    return text;
  }
}
