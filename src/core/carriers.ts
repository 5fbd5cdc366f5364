import { KEY_CHECKSUM_LENGTH, KEY_SECRET_LENGTH, MAX_KEY_LENGTH } from "./key-format.js";
import { LEGACY_MAX_KEY_LENGTH } from "./legacy-formats.js";
import { percentDecode, percentDecodeOnce } from "./url-text.js";

/** Headers as Node's `req.headersDistinct`: every value of a repeated header kept apart. */
export type DistinctHeaders = Record<string, string[] | string | undefined>;

export type Carrier = "apikey" | "bearer" | "x-api-key" | "basic" | "query";

export type ExtractedCredential =
  | { kind: "none" }
  | { kind: "key"; key: string; carrier: Carrier }
  /** `foreign`: an Authorization value that is not ours at all (a JWT, another scheme), for optional mode. */
  | { kind: "error"; code: "MALFORMED"; foreign: boolean }
  | { kind: "error"; code: "AMBIGUOUS_CREDENTIALS" | "KEY_IN_URL" };

/**
 * The declared legacy key formats as the carriers see them (docs/key-format.md): a cheap check of
 * a string's prefix or pattern, never a lookup. Non-null: the string is a key of a format.
 * The engine's `legacy` (LegacyFormats) is one; so is `keyward/client`'s.
 */
export interface LegacyKeyMatcher {
  match(presented: string): unknown;
}

export interface ExtractOptions {
  /** The deployment prefix; a query value shaped like a key of it counts as a key in the URL. */
  prefix: string;
  /** The declared legacy formats: a `Bearer` token of one is a key, not a foreign token. Default none. */
  legacy?: LegacyKeyMatcher;
  /** Accept `?api_key=` as a carrier of last resort instead of refusing it (off by default). */
  allowQueryKeys?: boolean;
}

/** Query parameter names that are taken as a key in the URL whatever their value. */
export const QUERY_KEY_PARAMETERS = ["api_key", "apikey", "key", "access_token"] as const;

// Printable ASCII, no spaces: anything else cannot be one of our keys and is refused early.
const TOKEN_CHARS = /^[\x21-\x7e]+$/;
// A raw header larger than this is refused before decoding (a Basic value of a max-length key is far smaller).
const MAX_CARRIER_LENGTH = 1024;
// The longest token taken as a key: room for a Keyward key twice over, and for any legacy key (docs/migrating.md).
const MAX_TOKEN_LENGTH = Math.max(MAX_KEY_LENGTH * 2, LEGACY_MAX_KEY_LENGTH);

function headerValues(headers: DistinctHeaders, name: string): string[] {
  const value = headers[name];
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

type Parsed = { ok: true; key: string } | { ok: false; foreign: boolean; ambiguous?: true };

function parseToken(value: string): Parsed {
  if (value.length === 0 || value.length > MAX_TOKEN_LENGTH || !TOKEN_CHARS.test(value)) return { ok: false, foreign: false };
  return { ok: true, key: value };
}

function decodeBasic(value: string, prefix: string): Parsed {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value) || value.length % 4 !== 0) return { ok: false, foreign: false };
  const decoded = Buffer.from(value, "base64").toString("latin1");
  const colon = decoded.indexOf(":");
  if (colon < 0) return { ok: false, foreign: false };
  const user = decoded.slice(0, colon);
  const password = decoded.slice(colon + 1);
  if (user && password) {
    // Both halves filled: take the one that is shaped like one of our keys.
    const userIsKey = user.startsWith(`${prefix}_`);
    const passwordIsKey = password.startsWith(`${prefix}_`);
    if (userIsKey && passwordIsKey) return user === password ? parseToken(user) : { ok: false, foreign: false, ambiguous: true };
    if (userIsKey === passwordIsKey) return { ok: false, foreign: true };
    return parseToken(userIsKey ? user : password);
  }
  const candidate = user || password;
  if (!candidate) return { ok: false, foreign: false };
  return parseToken(candidate);
}

function parseAuthorization(raw: string, prefix: string, legacy: LegacyKeyMatcher | undefined): { carrier: Carrier; parsed: Parsed } {
  const value = raw.trim();
  const space = value.search(/\s/);
  const scheme = (space < 0 ? value : value.slice(0, space)).toLowerCase();
  const rest = space < 0 ? "" : value.slice(space).trim();
  // A credential with inner whitespace (`Bearer a b`) is malformed, never split or trimmed inside.
  const single = rest.length > 0 && !/\s/.test(rest);
  switch (scheme) {
    case "apikey":
      return { carrier: "apikey", parsed: single ? parseToken(rest) : { ok: false, foreign: false } };
    case "bearer": {
      if (!single) return { carrier: "bearer", parsed: { ok: false, foreign: false } };
      // A bearer token that is not shaped like our key (a JWT from the app's SSO) is foreign,
      // however long: neither `<prefix>_…` nor a key of a declared legacy format (its prefix or
      // pattern, no lookup).
      if (!rest.startsWith(`${prefix}_`) && (legacy === undefined || legacy.match(rest) === null))
        return { carrier: "bearer", parsed: { ok: false, foreign: true } };
      return { carrier: "bearer", parsed: parseToken(rest) };
    }
    case "basic":
      return { carrier: "basic", parsed: single ? decodeBasic(rest, prefix) : { ok: false, foreign: false } };
    default:
      return { carrier: "bearer", parsed: { ok: false, foreign: true } };
  }
}

/** Whether an over-long Authorization value belongs to someone else: not `ApiKey`, `Basic` or a `Bearer <prefix>_…`. */
function isForeignScheme(raw: string, prefix: string): boolean {
  const value = raw.trimStart();
  const head = value.slice(0, 16).toLowerCase();
  if (head.startsWith("apikey ") || head.startsWith("basic ")) return false;
  if (head.startsWith("bearer ")) return !value.slice(7).trimStart().startsWith(`${prefix}_`);
  return true;
}

const QUERY_KEY_NAMES: ReadonlySet<string> = new Set(QUERY_KEY_PARAMETERS);

/** A query-string component decoded as a server reads it (`+` is a space), never throwing. */
function decodeQueryComponent(text: string): string {
  return percentDecodeOnce(text.includes("+") ? text.replaceAll("+", " ") : text);
}

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** A carrier parameter (`?api_key=`, any case, its name perhaps percent-encoded), found without decoding the values. */
function findNamedQueryKey(search: string): { found: true; key: string } | null {
  let start = 0;
  while (start < search.length) {
    const amp = search.indexOf("&", start);
    const end = amp < 0 ? search.length : amp;
    const eq = search.indexOf("=", start);
    const nameEnd = eq >= 0 && eq < end ? eq : end;
    let name = search.slice(start, nameEnd);
    // Decoded until it settles: a name encoded twice is still the name.
    if (name.includes("%") || name.includes("+")) name = percentDecode(decodeQueryComponent(name));
    if (QUERY_KEY_NAMES.has(name.toLowerCase())) {
      return { found: true, key: nameEnd < end ? decodeQueryComponent(search.slice(nameEnd + 1, end)) : "" };
    }
    start = end + 1;
  }
  return null;
}

/** One character of a marker, literal or percent-encoded (once or more: `%5F`, `%255F`), hex in either case. */
function literalOrEscaped(char: string): string {
  const hex = char.charCodeAt(0).toString(16).padStart(2, "0");
  const hexClass = [...hex].map((digit) => (/[a-f]/.test(digit) ? `[${digit}${digit.toUpperCase()}]` : digit)).join("");
  return `(?:${escapeRegExp(char)}|%(?:25)*${hexClass})`;
}

interface KeyPatterns {
  /** `{prefix}_live_` or `{prefix}_test_` literally: the cheap first look at a query string with no `%`. */
  markers: readonly [string, string];
  /** The same markers with any character percent-encoded. */
  escapedMarker: RegExp;
  /** A key of this deployment anywhere inside a decoded text. */
  keyInside: RegExp;
}

const keyPatterns = new Map<string, KeyPatterns>();

function keyPatternsFor(prefix: string): KeyPatterns {
  let patterns = keyPatterns.get(prefix);
  if (!patterns) {
    const escaped = (text: string) => [...text].map(literalOrEscaped).join("");
    patterns = {
      markers: [`${prefix}_live_`, `${prefix}_test_`],
      escapedMarker: new RegExp(`${escaped(`${prefix}_`)}(?:${escaped("live_")}|${escaped("test_")})`),
      keyInside: new RegExp(`${escapeRegExp(prefix)}_(?:live|test)_[0-9A-Za-z]{${KEY_SECRET_LENGTH + KEY_CHECKSUM_LENGTH}}`),
    };
    keyPatterns.set(prefix, patterns);
  }
  return patterns;
}

/**
 * Whether the raw query string could hold a key of this deployment once decoded. Cheap, and
 * decodes nothing: a literal search for the markers when there is no `%`, one regular
 * expression over the raw text when there is. Only a query string that passes pays for decoding.
 */
function mayHoldKey(search: string, patterns: KeyPatterns): boolean {
  if (!search.includes("%")) return search.includes(patterns.markers[0]) || search.includes(patterns.markers[1]);
  return patterns.escapedMarker.test(search);
}

/**
 * Looks for keys in the query string: by parameter name (`?api_key=`, whatever the value), or a
 * key of this deployment anywhere inside a decoded name or value (`?auth=Bearer+kw_…`,
 * `?q=x,kw_…`, percent-encoded or not).
 */
function findQueryKey(search: string, prefix: string): { found: boolean; key?: string } {
  if (!search) return { found: false };
  const named = findNamedQueryKey(search);
  if (named) return named;
  const patterns = keyPatternsFor(prefix);
  if (!mayHoldKey(search, patterns)) return { found: false };
  for (const [name, value] of new URLSearchParams(search)) {
    for (const text of [value, name]) {
      if (patterns.keyInside.test(text) || (text.includes("%") && patterns.keyInside.test(percentDecode(text)))) {
        return { found: true, key: text };
      }
    }
  }
  return { found: false };
}

/**
 * Whether the path of a request target (`/v1/keys/kw_test_…?…`; the query string is
 * `findQueryKey`'s) holds a key of this deployment, percent-encoded or not. As cheap as the
 * query check when there is no marker: nothing is sliced or decoded.
 */
export function keyInUrlPath(url: string, prefix: string): boolean {
  const question = url.indexOf("?");
  const end = question < 0 ? url.length : question;
  const patterns = keyPatternsFor(prefix);
  const percent = url.indexOf("%");
  if (percent < 0 || percent >= end) {
    const live = url.indexOf(patterns.markers[0]);
    const test = url.indexOf(patterns.markers[1]);
    if (!((live >= 0 && live < end) || (test >= 0 && test < end))) return false;
  } else {
    const match = patterns.escapedMarker.exec(url);
    if (match === null || match.index >= end) return false;
  }
  const path = url.slice(0, end);
  return patterns.keyInside.test(path) || patterns.keyInside.test(percentDecode(path));
}

/**
 * The common case, answered without the general walk: one `X-API-Key` value that is a
 * well-formed token, no `Authorization` and no query string. Null sends the request down the
 * general path (which gives the same answer for this case, only slower).
 */
function extractSingleApiKeyHeader(headers: DistinctHeaders, search: string): ExtractedCredential | null {
  if (search !== "" || headers.authorization !== undefined) return null;
  const raw = headers["x-api-key"];
  const value = Array.isArray(raw) ? (raw.length === 1 ? raw[0] : undefined) : raw;
  if (value === undefined || value.length > MAX_CARRIER_LENGTH || value.includes(",")) return null;
  const parsed = parseToken(value.trim());
  return parsed.ok ? { kind: "key", key: parsed.key, carrier: "x-api-key" } : null;
}

/**
 * Reads the key a request presents, by the precedence of docs/api.md (Authentication): `Authorization: ApiKey`,
 * `Authorization: Bearer`, `X-API-Key`, `Authorization: Basic`. Two different keys, or a repeated
 * carrier header, are ambiguous. `search` is the raw query string (without `?`).
 */
export function extractCredential(headers: DistinctHeaders, search: string, options: ExtractOptions): ExtractedCredential {
  const fast = extractSingleApiKeyHeader(headers, search);
  if (fast !== null) return fast;
  const authorization = headerValues(headers, "authorization");
  const apiKeyHeader = headerValues(headers, "x-api-key");
  if (authorization.length > 1 || apiKeyHeader.length > 1) return { kind: "error", code: "AMBIGUOUS_CREDENTIALS" };
  // Without headersDistinct, Node joins repeated X-API-Key values with ", ".
  if (apiKeyHeader[0]?.includes(",")) return { kind: "error", code: "AMBIGUOUS_CREDENTIALS" };

  const query = findQueryKey(search, options.prefix);
  if (query.found && !options.allowQueryKeys) return { kind: "error", code: "KEY_IN_URL" };

  const found: { key: string; carrier: Carrier; rank: number }[] = [];
  let malformed: ExtractedCredential | null = null;
  const authRaw = authorization[0];
  if (authRaw !== undefined) {
    if (authRaw.length > MAX_CARRIER_LENGTH) {
      // Too long for any key of ours or a declared format, but a JWT with many claims is often
      // longer: it stays foreign (left to the app in optional mode), as a short one is.
      malformed = { kind: "error", code: "MALFORMED", foreign: isForeignScheme(authRaw, options.prefix) };
    } else {
      const { carrier, parsed } = parseAuthorization(authRaw, options.prefix, options.legacy);
      if (parsed.ok) found.push({ key: parsed.key, carrier, rank: carrier === "apikey" ? 0 : carrier === "bearer" ? 1 : 3 });
      else if (parsed.ambiguous) return { kind: "error", code: "AMBIGUOUS_CREDENTIALS" };
      else malformed = { kind: "error", code: "MALFORMED", foreign: parsed.foreign };
    }
  }
  const xRaw = apiKeyHeader[0];
  if (xRaw !== undefined) {
    const parsed = xRaw.length > MAX_CARRIER_LENGTH ? ({ ok: false, foreign: false } as Parsed) : parseToken(xRaw.trim());
    if (parsed.ok) found.push({ key: parsed.key, carrier: "x-api-key", rank: 2 });
    else malformed = { kind: "error", code: "MALFORMED", foreign: false };
  }
  if (query.found && options.allowQueryKeys && query.key !== undefined) {
    const parsed = parseToken(query.key);
    if (parsed.ok) found.push({ key: parsed.key, carrier: "query", rank: 4 });
    else malformed = { kind: "error", code: "MALFORMED", foreign: false };
  }

  if (found.length === 0) return malformed ?? { kind: "none" };
  const first = found.reduce((a, b) => (b.rank < a.rank ? b : a));
  if (found.some((entry) => entry.key !== first.key)) return { kind: "error", code: "AMBIGUOUS_CREDENTIALS" };
  // A foreign Authorization beside a real X-API-Key is fine; a malformed one of ours is not.
  if (malformed && !("foreign" in malformed && malformed.foreign)) return malformed;
  return { kind: "key", key: first.key, carrier: first.carrier };
}
