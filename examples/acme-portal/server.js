// node examples/acme-portal/server.js   (after `npm install`, which builds Keyward; see README.md)
import { buildAcmeApp } from "./app.js";

/** @param {string} name */
const need = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set: see examples/acme-portal/README.md`);
    process.exit(2);
  }
  return value;
};

const port = Number(process.env.PORT ?? 3100);
const app = buildAcmeApp({
  origin: process.env.ACME_ORIGIN ?? `http://127.0.0.1:${port}`,
  keywardUrl: process.env.KEYWARD_URL ?? "http://127.0.0.1:8080",
  // Where browsers reach Keyward, when not at KEYWARD_URL (e.g. behind a proxy).
  keywardPublicUrl: process.env.KEYWARD_PUBLIC_URL,
  portalKey: need("KEYWARD_PORTAL_KEY"),
  verifyKey: need("KEYWARD_VERIFY_KEY"),
  logger: true,
});
await app.listen({ port, host: "127.0.0.1" });
console.log(`Acme on http://127.0.0.1:${port}: sign in as ada@acme.test / analytical-engine`);
