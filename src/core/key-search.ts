/**
 * A console search (`q` of `GET /v1/keys`, parsed by `parseKeySearch`): a key matches when any
 * given criterion does.
 */
export interface KeySearch {
  /** A key id, matched exactly. */
  id?: string;
  /** The last four characters of the secret: what a ref (`kw_live_…Ab3x`) shows of it. */
  last4?: string;
  /** A whole ref, matched exactly. */
  ref?: string;
  /** A substring of the name, case-insensitive (ASCII letters only on SQLite). */
  name?: string;
}

const KEY_ID = /^key_[0-9A-Za-z]{16,40}$/;
/** A ref as shown (`kw_live_…Ab3x`), or its tail (`…Ab3x`); three dots stand for the ellipsis. */
const REF = /^((?:[a-z][a-z0-9]{1,15})_(?:live|test)_)?(?:…|\.\.\.)([0-9A-Za-z]{4})$/;
const LAST4 = /^[0-9A-Za-z]{4}$/;

/**
 * What the console's search box (`GET /v1/keys?q=`) looks for (docs/api.md):
 * - a key id (`key_…`): that key;
 * - a ref (`kw_live_…Ab3x`) or its tail (`…Ab3x`): the keys it shows;
 * - four letters or digits: keys whose ref ends with them, or whose name contains them;
 * - anything else: keys whose name contains it, case-insensitively.
 * Null for a blank query (no search).
 */
export function parseKeySearch(q: string): KeySearch | null {
  const text = q.trim();
  if (text === "") return null;
  if (KEY_ID.test(text)) return { id: text };
  const ref = REF.exec(text);
  if (ref) return ref[1] ? { ref: `${ref[1]}…${ref[2]}` } : { last4: ref[2] as string };
  if (LAST4.test(text)) return { last4: text, name: text };
  return { name: text };
}
