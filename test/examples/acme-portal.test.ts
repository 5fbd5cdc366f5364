import { createServer } from "node:net";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import type { BrowserContext, Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// The example itself, as `node examples/acme-portal/server.js` runs it (it imports keyward/client
// and keyward/fastify, i.e. the built package in dist/).
import { buildAcmeApp } from "../../examples/acme-portal/app.js";
import { expectAccessible, findChromium, launchBrowser, SCREENSHOT_DIR } from "../helpers/browser.js";
import { jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

// examples/acme-portal end to end (issue 22): a product with its own sign-in embeds <keyward-keys>
// for the signed-in person and their company; a key made there works against the product's API
// (Keyward's middleware in optional mode beside the product's session cookie), its use shows up,
// and a production key is requested, approved by an admin and picked up once.

const chromium = await findChromium();
let browser: Awaited<ReturnType<typeof launchBrowser>>;
let context: BrowserContext;
let service: TestService;
let acme: FastifyInstance;
let acmeOrigin = "";
let page: Page;
const external: string[] = [];
const pageErrors: string[] = [];
const cspViolations: string[] = [];

/** A free loopback port, so Keyward can allow the example's origin before the example starts. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function adminCall(path: string, init: { method?: string; body?: unknown } = {}) {
  const reply = await service.call(path, {
    method: init.method ?? "GET",
    headers: jsonHeaders(service.adminKey),
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  return { status: reply.status, body: reply.json() as Record<string, unknown> & { data?: Array<Record<string, unknown>> } };
}

const orders = (headers: Record<string, string> = {}) => fetch(`${acmeOrigin}/api/orders`, { headers });

const axe = (state: string) => expectAccessible(page, state);

/** Creates a key in one <keyward-keys> and returns the plaintext it shows once. */
async function createKeyIn(element: Locator, name: string, scopes: string[]): Promise<string> {
  await element.getByLabel("Name").fill(name);
  for (const scope of ["orders:read", "orders:write"]) {
    const box = element.getByRole("checkbox", { name: scope, exact: true });
    if (scopes.includes(scope)) await box.check();
    else await box.uncheck();
  }
  await element.getByRole("button", { name: "Create key" }).click();
  const secret = element.locator("[data-secret]");
  await secret.waitFor();
  const key = (await secret.textContent()) ?? "";
  service.plant(key);
  await element.getByRole("button", { name: "Done" }).click();
  await expect.poll(() => element.locator("[data-secret]").count()).toBe(0);
  return key;
}

beforeAll(async () => {
  if (!chromium) return;
  const port = await freePort();
  acmeOrigin = `http://127.0.0.1:${port}`;
  // Keyward, allowing the example's pages to call it with portal tokens.
  service = await startTestService({ env: { KEYWARD_PORTAL_ORIGINS: acmeOrigin } });
  // The example's two keys, as its README makes them: one opens portal sessions (with a ceiling
  // covering what the settings page hands out), one verifies API keys for keyward/client.
  const portalKey = await adminCall("/v1/keys", {
    method: "POST",
    body: {
      owner: { type: "application", id: "acme-portal" },
      name: "Acme portal sessions",
      environment: "production",
      scopes: ["portal:create"],
      grantable_scopes: ["orders:read", "orders:write"],
      grantable_environments: ["sandbox", "production"],
    },
  });
  expect(portalKey.status).toBe(201);
  const verifyKey = await adminCall("/v1/keys", {
    method: "POST",
    body: {
      owner: { type: "application", id: "acme-api" },
      name: "Acme API verification",
      environment: "production",
      scopes: ["keys:verify"],
    },
  });
  expect(verifyKey.status).toBe(201);
  // The companies are Keyward organizations, created by an administrator (the README does it with
  // `keyward orgs create`); Acme's company keys draw from the quota the first one shares.
  const acmeOrg = await adminCall("/v1/organizations", {
    method: "POST",
    body: { id: "company-c1", name: "Acme Analytical Engines", quota: { limit: 1000, period: "day" } },
  });
  expect(acmeOrg.status).toBe(201);
  expect((await adminCall("/v1/organizations", { method: "POST", body: { id: "company-c2", name: "Globex Penguins" } })).status).toBe(201);
  acme = buildAcmeApp({
    origin: acmeOrigin,
    keywardUrl: service.url,
    portalKey: portalKey.body.key as string,
    verifyKey: verifyKey.body.key as string,
  });
  await acme.listen({ port, host: "127.0.0.1" });

  browser = await launchBrowser(chromium);
  context = browser.context;
  page = await context.newPage();
  page.on("request", (request) => {
    const url = request.url();
    if (!url.startsWith(service.url) && !url.startsWith(acmeOrigin) && !url.startsWith("data:")) external.push(url);
  });
  page.on("pageerror", (error) => pageErrors.push(error.message));
  page.on("console", (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) cspViolations.push(message.text());
  });
}, 60_000);

afterAll(async () => {
  await page?.close();
  await browser?.close();
  await acme?.close();
  await service?.close();
});

describe.runIf(chromium)("examples/acme-portal in a browser", { timeout: 180_000 }, () => {
  it("signs in with its own accounts, embeds key self-service, and serves its API to those keys", async () => {
    // Its own sign-in: the settings page sends a stranger there; a wrong password is refused.
    await page.goto(`${acmeOrigin}/settings`);
    expect(new URL(page.url()).pathname).toBe("/signin");
    await axe("sign-in");
    await page.getByLabel("Email").fill("ada@acme.test");
    await page.getByLabel("Password").fill("not-her-password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").filter({ hasText: "do not match" }).waitFor();
    await page.getByLabel("Email").fill("ada@acme.test");
    await page.getByLabel("Password").fill("analytical-engine");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(`${acmeOrigin}/settings`);
    const cookie = (await context.cookies(acmeOrigin)).find((c) => c.name === "acme_session");
    expect(cookie?.httpOnly).toBe(true);
    expect(cookie?.sameSite).toBe("Lax");

    // Two elements: Ada's own keys, and her company's (a Keyward organization).
    const mine = page.locator("keyward-keys").nth(0);
    const company = page.locator("keyward-keys").nth(1);
    await mine.getByText("No keys yet.").waitFor();
    await company.getByText("No keys yet.").waitFor();
    // Each element titled by the page, one level under the page's own section headings.
    await mine.getByRole("heading", { name: "Keys you hold", level: 3 }).waitFor();
    await company.getByRole("heading", { name: /^Keys of /, level: 3 }).waitFor();
    await expect.poll(() => page.locator("[data-session-note]").first().textContent()).toContain("reload the page");
    const scopes = await mine
      .getByRole("group", { name: "Scopes" })
      .getByRole("checkbox")
      .evaluateAll((boxes) => boxes.map((b) => b.getAttribute("value")));
    expect(scopes).toEqual(["orders:read", "orders:write"]);
    await axe("settings");

    // A key made in the element works against Acme's API; the API's other doors hold.
    const key = await createKeyIn(mine, "Ada's script", ["orders:read"]);
    expect(key).toMatch(/^kw_test_/);
    const withKey = await orders({ authorization: `Bearer ${key}` });
    expect(withKey.status).toBe(200);
    const answer = (await withKey.json()) as { via: string; data: Array<{ id: string }>; key: { environment: string } };
    expect(answer.via).toBe("api_key");
    expect(answer.key.environment).toBe("sandbox");
    expect(answer.data.map((o) => o.id)).toEqual(["ord_1001", "ord_1002"]);
    const withCookie = await orders({ cookie: `acme_session=${cookie?.value}` });
    expect(withCookie.status).toBe(200);
    expect(((await withCookie.json()) as { via: string }).via).toBe("session");
    expect((await orders()).status).toBe(401);
    expect((await orders({ authorization: "Bearer eyJhbGciOiJIUzI1NiJ9.e30.foreign-jwt" })).status).toBe(401);
    expect((await orders({ authorization: `Bearer kw_test_${"A".repeat(38)}` })).status).toBe(401);
    const writeOnly = await createKeyIn(mine, "Writer", ["orders:write"]);
    const denied = await orders({ authorization: `Bearer ${writeOnly}` });
    expect(denied.status).toBe(403);
    expect(((await denied.json()) as { code: string }).code).toBe("INSUFFICIENT_SCOPE");

    // The use shows up: in Keyward's usage, and as the key's last use in the element.
    const listed = await adminCall("/v1/keys?owner_type=user&owner_id=acme-u1");
    const created = listed.body.data?.find((k) => k.name === "Ada's script");
    expect(created?.owner).toEqual({ type: "user", id: "acme-u1" });
    // Keyward's audit trail names the portal session, and Acme's person in host_actor.
    const audit = await adminCall(`/v1/audit-events?key_id=${created?.id}&action=key.created`);
    const event = audit.body.data?.[0] as { actor: { type: string }; details: { host_actor: unknown } } | undefined;
    expect(event?.actor.type).toBe("portal");
    expect(event?.details.host_actor).toMatchObject({ id: "u1", email: "ada@acme.test" });
    await expect
      .poll(async () => {
        const usage = await adminCall(`/v1/usage?owner=user:acme-u1&key_id=${created?.id}&outcome=VALID`);
        return (usage.body.data ?? []).reduce((sum, row) => sum + Number(row.count), 0);
      })
      .toBeGreaterThan(0);
    await expect
      .poll(async () => {
        await page.reload();
        const row = mine.locator("tr", { hasText: "Ada's script" });
        await row.waitFor();
        return row.locator("td").nth(5).textContent();
      })
      .not.toBe("never");

    // A production key: asked for in the element, approved by an admin, picked up once.
    await mine.getByRole("button", { name: "Request a production key like Ada's script" }).click();
    await mine.getByText("Production requested").waitFor();
    const pending = await adminCall("/v1/key-requests?status=pending&owner_type=user&owner_id=acme-u1");
    expect(pending.body.data).toHaveLength(1);
    const requestId = pending.body.data?.[0]?.id as string;
    expect((await adminCall(`/v1/key-requests/${requestId}/approve`, { method: "POST", body: {} })).status).toBe(200);
    await page.reload();
    await mine.getByRole("heading", { name: "Approved production keys" }).waitFor();
    // The approved key is listed with its state, not like a live key.
    await mine.getByText("approved, not picked up yet").waitFor();
    await axe("settings, production key approved");
    await page.screenshot({ path: join(SCREENSHOT_DIR, "acme-portal-pickup.png"), fullPage: true });
    await mine.getByRole("button", { name: "Pick up" }).click();
    const secret = mine.locator("[data-secret]");
    await secret.waitFor();
    const production = (await secret.textContent()) ?? "";
    service.plant(production);
    expect(production).toMatch(/^kw_live_/);
    await mine.getByRole("button", { name: "Done" }).click();
    await expect.poll(() => mine.getByRole("button", { name: "Pick up" }).count()).toBe(0);
    // Once only: the same session (the page's token) cannot claim it again.
    const token = (await mine.getAttribute("token")) ?? "";
    const again = await service.call(`/v1/key-requests/${requestId}/claim`, {
      method: "POST",
      headers: { authorization: `Portal ${token}`, "content-type": "application/json", origin: acmeOrigin },
      body: "{}",
    });
    expect(again.status).toBe(409);
    expect(again.text).not.toContain(production);
    const live = await orders({ authorization: `Bearer ${production}` });
    expect(live.status).toBe(200);
    expect(((await live.json()) as { key: { environment: string } }).key.environment).toBe("production");

    // The company's keys: owned by the organization named after the company, serving its orders,
    // and drawing from the quota the organization shares.
    const companyKey = await createKeyIn(company, "Warehouse sync", ["orders:read"]);
    const byCompany = await orders({ authorization: `Bearer ${companyKey}` });
    expect(byCompany.status).toBe(200);
    expect(((await byCompany.json()) as { data: Array<{ id: string }> }).data.map((o) => o.id)).toEqual(["ord_1001", "ord_1002"]);
    const companyKeys = await adminCall("/v1/keys?owner_type=organization&owner_id=company-c1");
    expect(companyKeys.body.data?.map((k) => [k.name, k.owner])).toEqual([["Warehouse sync", { type: "organization", id: "company-c1" }]]);
    expect((await adminCall("/v1/keys?owner_type=application&owner_id=company-c1")).body.data).toEqual([]);
    // Keyward's audit trail names Acme's person who made it through the portal.
    const companyAudit = await adminCall(`/v1/audit-events?key_id=${companyKeys.body.data?.[0]?.id}&action=key.created`);
    expect((companyAudit.body.data?.[0] as { details: { host_actor: unknown } } | undefined)?.details.host_actor).toMatchObject({
      id: "u1",
    });
    const introspected = await service.call("/v1/introspect", { headers: { "x-api-key": companyKey } });
    expect((introspected.json() as { limits: { owner?: { quota?: { limit: number } } } }).limits.owner?.quota).toMatchObject({
      limit: 1000,
    });
    // The organization is still the one the administrator named.
    expect((await adminCall("/v1/organizations/company-c1")).body).toMatchObject({ name: "Acme Analytical Engines" });

    // Signing out ends the cookie's access; the keys go on working.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(`${acmeOrigin}/signin`);
    expect((await orders({ cookie: `acme_session=${cookie?.value}` })).status).toBe(401);
    expect((await orders({ authorization: `Bearer ${key}` })).status).toBe(200);

    // A member of the company manages her own keys only.
    await page.getByLabel("Email").fill("grace@acme.test");
    await page.getByLabel("Password").fill("compiler-1952");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(`${acmeOrigin}/settings`);
    await page.locator("keyward-keys").first().getByText("No keys yet.").waitFor();
    expect(await page.locator("keyward-keys").count()).toBe(1);
    await page.getByText("Only your company's administrators manage its keys.").waitFor();
    await page.screenshot({ path: join(SCREENSHOT_DIR, "acme-portal-settings.png"), fullPage: true });

    expect(external).toEqual([]);
    expect(pageErrors).toEqual([]);
    expect(cspViolations).toEqual([]);
  });
});
