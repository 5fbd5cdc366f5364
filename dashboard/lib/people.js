// Who is who: people by email (and name, when the API has one), keys by name and ref; ids
// second. Administrators look people up by id as pages need them (GET /v1/users/{id}, cached),
// never by reading every user; members know only themselves.
import { api, isAdmin, me, query } from "./api.js";
import { h } from "./dom.js";

/** Users read so far, by id (null: not readable). Cleared by forgetPeople() and after 5 minutes. */
const userCache = new Map();
let cacheSince = 0;
/** When the first page (below) was last read. */
let firstPageAt = 0;

/**
 * Dashboard users by id (admins); a member gets just themselves. With `ids`, those users are
 * looked up (in parallel, at most 6 at a time, cached); without, the first 200 users (a bound,
 * for directories that name nobody in particular) and whoever was looked up before.
 */
export async function people(ids = null, { fresh = false } = {}) {
  if (!isAdmin()) {
    const self = me();
    return new Map(self ? [[self.id, self]] : []);
  }
  if (fresh || Date.now() - cacheSince > 300_000) {
    userCache.clear();
    cacheSince = Date.now();
    firstPageAt = 0;
  }
  if (ids === null) {
    if (Date.now() - firstPageAt > 30_000) {
      const answer = await api("GET", `/v1/users${query({ limit: 200 })}`);
      for (const user of answer.data) userCache.set(user.id, user);
      firstPageAt = Date.now();
    }
  } else {
    const wanted = [...new Set(ids.filter((id) => typeof id === "string" && /^usr_[0-9A-Za-z]{16,40}$/.test(id) && !userCache.has(id)))];
    let next = 0;
    const worker = async () => {
      while (next < wanted.length) {
        const id = wanted[next++];
        try {
          userCache.set(id, await api("GET", `/v1/users/${encodeURIComponent(id)}`));
        } catch {
          userCache.set(id, null);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(6, wanted.length) }, worker));
  }
  return new Map([...userCache].filter(([, user]) => user !== null));
}

export const forgetPeople = () => {
  userCache.clear();
  firstPageAt = 0;
};

/** The user ids among owners, actors and targets (`{type, id}`), for `people(ids)`. */
export const userIdsOf = (refs) => refs.filter((ref) => ref?.type === "user").map((ref) => ref.id);

/** A user by email (case-insensitive), or null: searched on the server. */
export async function userByEmail(email) {
  const wanted = email.trim().toLowerCase();
  if (!isAdmin()) {
    const self = me();
    return self && self.email.toLowerCase() === wanted ? self : null;
  }
  if (wanted === "" || wanted.length > 320) return null;
  const answer = await api("GET", `/v1/users${query({ q: wanted, limit: 200 })}`);
  const user = answer.data.find((u) => u.email.toLowerCase() === wanted) ?? null;
  if (user) userCache.set(user.id, user);
  return user;
}

/** "Ada Lovelace <ada@example.com>" or the email alone. */
export const personName = (user) => (user.name ? `${user.name} (${user.email})` : user.email);

/**
 * An owner or actor for people: a user's email linked to their page (admins), an application's
 * id, a key's name and ref; the raw id second, in small type.
 */
export function whoEl(ref, directory, keys = new Map()) {
  if (!ref) return "—";
  if (ref.type === "user") {
    const user = directory.get(ref.id);
    if (!user) return h("span", {}, "user ", h("code", { class: "small" }, ref.id));
    const label = personName(user);
    return isAdmin() ? h("a", { href: `#/users/${user.id}` }, label) : label;
  }
  if (ref.type === "application") return h("span", {}, "application ", h("code", {}, ref.id));
  if (ref.type === "organization")
    return h("span", {}, "organization ", h("a", { href: `#/organizations/${encodeURIComponent(ref.id)}` }, h("code", {}, ref.id)));
  if (ref.type === "admin_key" || ref.type === "key") {
    const key = keys.get(ref.id);
    return key
      ? h("span", {}, "key ", h("a", { href: `#/keys/${key.id}` }, key.name), " ", h("code", { class: "small ref" }, key.ref))
      : h("span", {}, "key ", h("code", { class: "small" }, ref.id));
  }
  if (ref.type === "cli") return h("span", {}, "command line (", ref.id, ")");
  if (ref.type === "system") return "Keyward (first start)";
  return h("span", {}, `${ref.type} `, h("code", {}, ref.id));
}

const keyCache = new Map();

/**
 * Key objects for ids (for names and refs in requests and the audit log): read in parallel, at
 * most 6 at a time, cached for the page's life; ids you may not see map to null.
 */
export async function lookupKeys(ids) {
  const wanted = [...new Set(ids.filter((id) => typeof id === "string" && id.startsWith("key_") && !keyCache.has(id)))];
  let next = 0;
  const worker = async () => {
    while (next < wanted.length) {
      const id = wanted[next++];
      try {
        keyCache.set(id, await api("GET", `/v1/keys/${encodeURIComponent(id)}`));
      } catch {
        keyCache.set(id, null);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(6, wanted.length) }, worker));
  return new Map(ids.filter((id) => keyCache.get(id)).map((id) => [id, keyCache.get(id)]));
}

export const forgetKeys = () => keyCache.clear();

/** A key's name linked to its page, with its ref beneath; the id when it cannot be read. */
export function keyEl(id, keys) {
  const key = keys.get(id);
  if (!key) return h("code", { class: "small" }, id);
  return h("span", { class: "key-name" }, h("a", { href: `#/keys/${key.id}` }, key.name), " ", h("code", { class: "small ref" }, key.ref));
}
