import { createServer, type Server } from "node:http";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { expectAccessible, findChromium, launchBrowser, SCREENSHOT_DIR } from "../helpers/browser.js";
import { jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

// The embedded self-service (docs/embedding.md) in a real browser: the hosted page /portal with a
// token in its fragment, and <keyward-keys> on a host page of another origin. Under the strict
// CSP: no violation, no uncaught error, no request elsewhere; an axe check of each state.

const chromium = await findChromium();
let browser: Awaited<ReturnType<typeof launchBrowser>>;
let context: BrowserContext;
let service: TestService;
let page: Page;
let external: string[];
let pageErrors: string[];
let cspViolations: string[];
let hostServer: Server | null = null;
let hostOrigin = "";

beforeAll(async () => {
  if (!chromium) return;
  browser = await launchBrowser(chromium);
  context = browser.context;
}, 60_000);
afterAll(async () => {
  await browser?.close();
});
beforeEach(async () => {
  if (!chromium) return;
  // A host page on another origin: started first, so its origin can be allowed.
  hostServer = createServer((request, response) => {
    const api = (request.url ?? "").split("api=")[1] ?? "";
    const token = decodeURIComponent((request.url ?? "").split("token=")[1]?.split("&")[0] ?? "");
    response.setHeader("content-type", "text/html; charset=utf-8");
    response.setHeader(
      "content-security-policy",
      `default-src 'none'; script-src ${decodeURIComponent(api)}; connect-src ${decodeURIComponent(api)}`,
    );
    response.end(
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Host</title>` +
        `<script type="module" src="${decodeURIComponent(api)}/embed/keys.js"></script></head>` +
        `<body><main><h1>Your settings</h1><keyward-keys api="${decodeURIComponent(api)}" token="${token}"></keyward-keys></main></body></html>`,
    );
  });
  await new Promise<void>((resolve) => hostServer?.listen(0, "127.0.0.1", resolve));
  hostOrigin = `http://127.0.0.1:${(hostServer.address() as { port: number }).port}`;
  service = await startTestService({ env: { KEYWARD_PORTAL_ORIGINS: hostOrigin } });
  page = await context.newPage();
  external = [];
  pageErrors = [];
  cspViolations = [];
  page.on("request", (request) => {
    const url = request.url();
    if (!url.startsWith(service.url) && !url.startsWith(hostOrigin) && !url.startsWith("data:")) external.push(url);
  });
  page.on("pageerror", (error) => pageErrors.push(error.message));
  page.on("console", (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) cspViolations.push(message.text());
  });
});
afterEach(async () => {
  if (!chromium) return;
  await page.close();
  await service.close();
  hostServer?.closeAllConnections();
  await new Promise<void>((resolve) => hostServer?.close(() => resolve()));
  expect(external).toEqual([]);
  expect(pageErrors).toEqual([]);
  expect(cspViolations).toEqual([]);
});

const axe = (state: string) => expectAccessible(page, state);

async function openSession(body: Record<string, unknown> = {}): Promise<{ id: string; token: string; url: string }> {
  const reply = await service.call("/v1/portal-sessions", {
    method: "POST",
    headers: jsonHeaders(service.adminKey),
    body: JSON.stringify({
      owner: { type: "application", id: "customer-42" },
      policy: { scopes: ["read", "write"], max_expires_in_days: 90 },
      actor: { id: "person-1", email: "person@example.com" },
      return_url: "https://app.example.com/settings",
      app_name: "Example App",
      ...body,
    }),
  });
  if (reply.status !== 201) throw new Error(`open: ${reply.status} ${reply.text}`);
  return reply.json() as { id: string; token: string; url: string };
}

describe.runIf(chromium)("the portal, in a browser", { timeout: 120_000 }, () => {
  it("the hosted page takes the token from the fragment, creates a key shown once, and revokes it", async () => {
    const session = await openSession();
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: service.url });
    await page.goto(session.url);
    await page.getByRole("heading", { name: "API keys", level: 2 }).waitFor();
    // The token left the address bar (and the history entry) at once.
    expect(page.url()).toBe(`${service.url}/portal`);
    expect(await page.evaluate<string>("location.hash")).toBe("");
    await expect
      .poll(() => page.getByRole("link", { name: "Back to Example App" }).getAttribute("href"))
      .toBe("https://app.example.com/settings");
    await page.getByText("No keys yet.").waitFor();
    await axe("portal, empty");

    // The form offers what the policy allows, and nothing else.
    const scopes = await page
      .getByRole("group", { name: "Scopes" })
      .getByRole("checkbox")
      .evaluateAll((boxes) => boxes.map((box) => box.getAttribute("value")));
    expect(scopes).toEqual(["read", "write"]);
    const expiries = await page
      .getByLabel("Expires in")
      .locator("option")
      .evaluateAll((options) => options.map((o) => o.getAttribute("value")));
    expect(expiries).toEqual(["7", "30", "90"]);
    await page.getByLabel("Name").fill("Deploy bot");
    await page.getByRole("checkbox", { name: "write" }).check();
    await page.getByRole("button", { name: "Create key" }).click();

    const secret = page.locator("[data-secret]");
    await secret.waitFor();
    const key = (await secret.textContent()) ?? "";
    expect(key).toMatch(/^kw_test_[0-9A-Za-z]{38}$/);
    service.plant(key);
    expect(await page.evaluate<string>("document.activeElement?.shadowRoot?.activeElement?.textContent")).toBe("Copy");
    await expect.poll(() => page.locator("[aria-live]").first().textContent()).toContain("shown only this once");
    await page.getByRole("button", { name: "Copy", exact: true }).click();
    expect(await page.evaluate<string>("navigator.clipboard.readText()")).toBe(key);
    await axe("portal, new key");
    await page.screenshot({ path: join(SCREENSHOT_DIR, "portal-new-key.png"), fullPage: true });
    await page.getByRole("button", { name: "Done" }).click();
    await expect.poll(() => page.locator("[data-secret]").count()).toBe(0);

    // The key works, and is listed with its ref, scopes and last use.
    const authz = await fetch(`${service.url}/v1/authz`, { headers: { authorization: `Bearer ${key}` } });
    expect(authz.status).toBe(200);
    const row = page.locator("tr", { hasText: "Deploy bot" });
    await row.waitFor();
    expect(await row.textContent()).toContain("read, write");

    // Revoking asks first; then the key stops.
    await page.getByRole("button", { name: "Revoke Deploy bot" }).click();
    await page.getByRole("button", { name: "Yes, revoke" }).waitFor();
    await axe("portal, confirm revoke");
    await page.getByRole("button", { name: "Yes, revoke" }).click();
    await page.getByText('Key "Deploy bot" revoked.').waitFor();
    await page.getByText("No keys yet.").waitFor();
    expect((await fetch(`${service.url}/v1/authz`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(401);

    // A revoked session says so.
    await service.call(`/v1/portal-sessions/${session.id}`, { method: "DELETE", headers: { authorization: `Bearer ${service.adminKey}` } });
    await page.getByRole("button", { name: "Create key" }).waitFor();
    await page.getByLabel("Name").fill("Too late");
    await page.getByRole("button", { name: "Create key" }).click();
    await page.getByRole("alert").filter({ hasText: "revoked" }).waitFor();
  });

  it("without a token the hosted page says where to get one", async () => {
    await page.goto(`${service.url}/portal`);
    await page.getByText("This page opens from your account").waitFor();
    await axe("portal, no token");
  });

  it("the element works on a host page of an allowed origin, its calls carrying the token in a header only", async () => {
    const session = await openSession();
    const portalCalls: Array<{ url: string; authorization: string | undefined; cookie: string | undefined }> = [];
    page.on("request", (request) => {
      if (request.url().startsWith(`${service.url}/v1/`))
        portalCalls.push({ url: request.url(), authorization: request.headers().authorization, cookie: request.headers().cookie });
    });
    await page.goto(`${hostOrigin}/settings?token=${encodeURIComponent(session.token)}&api=${encodeURIComponent(service.url)}`);
    await page.getByRole("heading", { name: "API keys", level: 2 }).waitFor();
    await page.getByLabel("Name").fill("Host key");
    await page.getByRole("button", { name: "Create key" }).click();
    await page.locator("[data-secret]").waitFor();
    service.plant((await page.locator("[data-secret]").textContent()) ?? "");
    await axe("host page, new key");
    expect(portalCalls.length).toBeGreaterThan(0);
    for (const call of portalCalls.filter((c) => c.authorization !== undefined || !c.url.includes("OPTIONS"))) {
      expect(call.url).not.toContain(session.token);
      expect(call.cookie).toBeUndefined();
    }
    expect(portalCalls.some((call) => call.authorization === `Portal ${session.token}`)).toBe(true);
  });
});
