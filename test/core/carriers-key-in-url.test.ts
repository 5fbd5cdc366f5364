import { afterEach, describe, expect, it } from "vitest";
import { type DistinctHeaders, extractCredential, keyInUrlPath } from "../../src/core/carriers.js";
import { generateApiKey } from "../../src/core/key-format.js";
import { scrubSecrets } from "../../src/service/logger.js";

// Keys inside query values, not only as whole values, and in any percent-encoding, are keys in
// the URL; a query string with no sign of a key is not decoded at all (issue 19, item 8).

const key = generateApiKey({ environment: "sandbox" });
const live = generateApiKey({ environment: "production" });
const extract = (search: string, headers: DistinctHeaders = {}) => extractCredential(headers, search, { prefix: "kw" });
const everyCharEscaped = (text: string) => [...text].map((c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`).join("");

describe("a key of this deployment anywhere inside a query name or value is KEY_IN_URL", () => {
  it.each([
    ["after a scheme, + for the space", `auth=Bearer+${key}`],
    ["after a scheme, %20 for the space", `auth=Bearer%20${key}`],
    ["in a list", `q=x,${key}`],
    ["in a list, comma encoded", `q=x%2C${key}`],
    ["between words", `filter=owner+${live}+and+more`],
    ["with its underscores encoded", `q=${key.replaceAll("_", "%5F")}`],
    ["with its underscores encoded in lower case hex", `q=x ${key.replaceAll("_", "%5f")}`],
    ["with every character encoded", `q=${everyCharEscaped(key)}`],
    ["encoded twice", `q=${encodeURIComponent(key.replaceAll("_", "%5F"))}`],
    ["as a parameter name", `${key}=1`],
    ["a live key after other parameters", `limit=10&redirect=https%3A%2F%2Fx.example%2F%3Ftoken%3D${live}`],
  ])("%s", (_name, search) => {
    expect(extract(search)).toEqual({ kind: "error", code: "KEY_IN_URL" });
    // Even beside a key in a proper header.
    expect(extract(search, { "x-api-key": key })).toEqual({ kind: "error", code: "KEY_IN_URL" });
  });

  it.each([
    ["a foreign prefix", `q=${key.replace(/^kw_/, "xy_")}`],
    ["a marker with too few characters after it", `q=${key.slice(0, 30)}`],
    ["the marker alone", "q=kw_test_"],
    ["scopes", "scopes=read,write&environment=sandbox"],
  ])("not a key: %s", (_name, search) => {
    expect(extract(search)).toEqual({ kind: "none" });
  });
});

describe("the hot path: a query string with no key marker is not decoded", () => {
  const RealSearchParams = globalThis.URLSearchParams;
  const realDecode = globalThis.decodeURIComponent;
  let decodings = 0;
  afterEach(() => {
    globalThis.URLSearchParams = RealSearchParams;
    globalThis.decodeURIComponent = realDecode;
  });

  /** Counts every decoding a call makes (both ways the parser could decode). */
  function countDecodings(run: () => void): number {
    decodings = 0;
    globalThis.URLSearchParams = class extends RealSearchParams {
      constructor(...args: ConstructorParameters<typeof URLSearchParams>) {
        decodings++;
        super(...args);
      }
    };
    globalThis.decodeURIComponent = (text: string) => {
      decodings++;
      return realDecode(text);
    };
    try {
      run();
    } finally {
      globalThis.URLSearchParams = RealSearchParams;
      globalThis.decodeURIComponent = realDecode;
    }
    return decodings;
  }

  it.each([
    "limit=10&cursor=abc",
    "q=hello+world&sort=-created_at",
    "q=caf%C3%A9%20au%20lait&next=%2Fv1%2Fkeys",
    "scopes=read%2Cwrite&environment=sandbox",
    "note=kw_other_thing&x=test_",
  ])("%s: nothing decoded", (search) => {
    expect(countDecodings(() => expect(extract(search, { "x-api-key": key })).toMatchObject({ kind: "key", key }))).toBe(0);
  });

  it.each(["/v1/keys/key_0123456789abcdef", "/files/caf%C3%A9/kw_other?x=kw%5Ftest", "/a/test_/live_"])(
    "path %s: no key, nothing decoded",
    (url) => {
      expect(countDecodings(() => expect(keyInUrlPath(url, "kw")).toBe(false))).toBe(0);
    },
  );

  it("a key in the path is found, literal or encoded; one in the query string is not the path's", () => {
    expect(keyInUrlPath(`/items/${key}`, "kw")).toBe(true);
    expect(keyInUrlPath(`/items/${everyCharEscaped(key)}?page=2`, "kw")).toBe(true);
    expect(keyInUrlPath(`http://api.example/items/x%20${live.replaceAll("_", "%5f")}`, "kw")).toBe(true);
    expect(keyInUrlPath(`/items/1?q=${key}`, "kw")).toBe(false);
    expect(keyInUrlPath(`/items/${key.replace(/^kw_/, "xy_")}`, "kw")).toBe(false);
  });

  it("a query string with an (encoded) marker is decoded, and refused when it holds a key", () => {
    expect(countDecodings(() => expect(extract(`q=kw%5Ftest%5F${key.slice(8)}`)).toMatchObject({ code: "KEY_IN_URL" }))).toBeGreaterThan(0);
  });
});

describe("log scrubbing sees percent-encoded keys", () => {
  it.each([
    ["underscores encoded", `/v1/keys/${key.replaceAll("_", "%5F")}`],
    ["every character encoded", `/v1/keys/${everyCharEscaped(key)}`],
    ["part of the secret encoded", `/v1/keys/${key.slice(0, 20)}%${key.charCodeAt(20).toString(16)}${key.slice(21)}`],
    ["encoded twice", `/v1/keys/${encodeURIComponent(key.replaceAll("_", "%5F"))}`],
  ])("%s", (_name, path) => {
    const scrubbed = scrubSecrets(path);
    expect(scrubbed).toBe("/v1/keys/[REDACTED]");
    expect(scrubbed).not.toContain(key.slice(-12));
  });

  it("text without a key is left as it is, escapes and all", () => {
    expect(scrubSecrets("/v1/keys/key_abc%20def?x")).toBe("/v1/keys/key_abc%20def?x");
    expect(scrubSecrets("bad escape %E0%A4%A")).toBe("bad escape %E0%A4%A");
  });
});
