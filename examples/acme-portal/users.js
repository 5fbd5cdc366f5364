// Acme's own people, companies and orders: a stand-in for the product's database. Deliberately not
// Keyward's accounts: the product signs its people in itself, and Keyward only sees the owner ids
// the product chooses (`user:acme-<user id>`, `organization:company-<company id>`).
import { scrypt, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";

const scryptAsync = /** @type {(password: string, salt: Buffer, length: number, options: object) => Promise<Buffer>} */ (promisify(scrypt));
const SCRYPT = { N: 16384, r: 8, p: 1 };

/**
 * @typedef {{id: string, email: string, name: string, companyId: string, role: "admin" | "member", passwordHash: string}} User
 * @typedef {{id: string, name: string}} Company
 * @typedef {{id: string, companyId: string, item: string, quantity: number, status: string}} Order
 */

/** @type {Company[]} */
export const COMPANIES = [
  { id: "c1", name: "Acme Analytical Engines" },
  { id: "c2", name: "Globex Penguins" },
];

// The demo passwords (README): ada / analytical-engine, grace / compiler-1952, linus / penguin-1991.
// Stored as scrypt$<salt>$<hash> (base64url; N=16384, r=8, p=1, 32 bytes), never in plain text.
/** @type {User[]} */
export const USERS = [
  {
    id: "u1",
    email: "ada@acme.test",
    name: "Ada Lovelace",
    companyId: "c1",
    role: "admin",
    passwordHash: "scrypt$h0A9dlPYXquePQlAb9OQhg$vOtjsKBjV4khTANRaEhGLYZwP_7au2K-kQ25hbKdyX0",
  },
  {
    id: "u2",
    email: "grace@acme.test",
    name: "Grace Hopper",
    companyId: "c1",
    role: "member",
    passwordHash: "scrypt$WzDCxW_0EaYPZtaugJSkUg$na2CN65uQZZccb6dv00t47oRcpuicmkV7Ga0sFb8Nuc",
  },
  {
    id: "u3",
    email: "linus@globex.test",
    name: "Linus Torvalds",
    companyId: "c2",
    role: "admin",
    passwordHash: "scrypt$9cZ5y4fH7kY3iGKxw6GyEg$dMi0BSko-kt01LrU06Z3qHdMbAuzy6QDGxH66JIfNG8",
  },
];

/** @type {Order[]} */
export const ORDERS = [
  { id: "ord_1001", companyId: "c1", item: "Difference engine, brass", quantity: 1, status: "shipped" },
  { id: "ord_1002", companyId: "c1", item: "Punched cards (box of 1,000)", quantity: 12, status: "processing" },
  { id: "ord_2001", companyId: "c2", item: "Plush penguin", quantity: 40, status: "shipped" },
];

/** Compared against when the email is unknown, so a wrong email costs as long as a wrong password. */
const DUMMY_HASH = "scrypt$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/** @param {string} password @param {string} stored @returns {Promise<boolean>} */
async function matches(password, stored) {
  const [scheme, salt, hash] = stored.split("$");
  if (scheme !== "scrypt" || !salt || !hash) return false;
  const expected = Buffer.from(hash, "base64url");
  const actual = await scryptAsync(password, Buffer.from(salt, "base64url"), expected.length, SCRYPT);
  return timingSafeEqual(actual, expected);
}

/**
 * The user with this email and password, or null.
 * @param {string} email @param {string} password @returns {Promise<User | null>}
 */
export async function checkPassword(email, password) {
  const user = USERS.find((u) => u.email === email.trim().toLowerCase()) ?? null;
  const ok = await matches(password, user ? user.passwordHash : DUMMY_HASH);
  return ok && user ? user : null;
}

/** @param {string} id */
export const userById = (id) => USERS.find((u) => u.id === id) ?? null;
/** @param {string} id */
export const companyById = (id) => COMPANIES.find((c) => c.id === id) ?? null;
/** @param {string} companyId */
export const ordersOf = (companyId) => ORDERS.filter((o) => o.companyId === companyId);
