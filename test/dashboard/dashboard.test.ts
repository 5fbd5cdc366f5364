import { createServer, type Server } from "node:http";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { findChromium, launchBrowser, SCREENSHOT_DIR } from "../helpers/browser.js";
import { createMember, issueSetupToken, setupAdmin } from "../helpers/people.js";
import { jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

/** The system's Chromium, else the one an npm package ships (helpers/browser.ts); null where neither runs. */
const chromium = await findChromium();
if (chromium) console.log(`dashboard tests: ${chromium.label}`);
let browser: Awaited<ReturnType<typeof launchBrowser>>;
let context: BrowserContext;
let service: TestService;
let page: Page;
/** Requests the page made to anywhere but the service (and a test's own other origin): there must be none. */
let external: string[];
let otherOrigin: string | null;

beforeAll(async () => {
  if (!chromium) return;
  browser = await launchBrowser(chromium);
  context = browser.context;
}, 60_000);
afterAll(async () => {
  await browser?.close();
});
beforeEach(async () => {
  service = await startTestService();
  await context.clearCookies();
  page = await context.newPage();
  external = [];
  otherOrigin = null;
  page.on("request", (request) => {
    const url = request.url();
    if (!url.startsWith(service.url) && !url.startsWith("data:") && !(otherOrigin && url.startsWith(otherOrigin))) external.push(url);
  });
});
afterEach(async () => {
  await page.close();
  await service.close();
  expect(external).toEqual([]);
});

/** Creates a key through the API with the test's admin key. */
const createKeyAsAdmin = (ownerId: string, name: string, metadata: Record<string, unknown> = {}) =>
  service.call("/v1/keys", {
    method: "POST",
    headers: jsonHeaders(service.adminKey),
    body: JSON.stringify({ owner: { type: "user", id: ownerId }, name, environment: "sandbox", scopes: [], metadata }),
  });

const shot = (name: string) => page.screenshot({ path: join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });

async function signInThroughPage(email: string, password: string): Promise<void> {
  await page.goto(`${service.url}/dashboard/#/signin`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "My API keys" }).waitFor();
}

async function createKeyThroughPage(name: string, environment = "sandbox"): Promise<string> {
  const form = page.getByRole("form", { name: "Create a key" });
  await form.getByLabel("Name").fill(name);
  await form.getByLabel("Environment").selectOption(environment);
  await form.getByRole("button", { name: "Create key" }).click();
  return readShownKey();
}

/** The key in the one-time panel, planted for the suite's leak sweep. */
async function readShownKey(): Promise<string> {
  const input = page.locator("#new-key");
  await input.waitFor();
  const key = await input.inputValue();
  service.plant(key);
  return key;
}

async function confirmDialog(button: string, fields: Record<string, string> = {}): Promise<void> {
  const dialog = page.locator("dialog[open]");
  await dialog.waitFor();
  for (const [label, value] of Object.entries(fields)) {
    const field = dialog.getByLabel(label);
    if ((await field.evaluate((el) => el.tagName)) === "SELECT") await field.selectOption(value);
    else await field.fill(value);
  }
  await dialog.getByRole("button", { name: button, exact: true }).click();
  await dialog.waitFor({ state: "detached" });
}

describe.runIf(chromium)("dashboard", () => {
  it("first-admin setup, then a key created, copied, used, rotated and revoked", async () => {
    const token = await issueSetupToken(service);
    await page.goto(`${service.url}/dashboard/#/setup/${token}`);
    await shot("setup");
    expect(page.url()).not.toContain(token);
    await page.getByLabel("Email").fill("admin@example.com");
    await page.getByLabel("Password").fill("correct horse battery");
    await page.getByRole("button", { name: "Create administrator" }).click();
    await page.getByRole("heading", { name: "My API keys" }).waitFor();

    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: service.url });
    const key = await createKeyThroughPage("Deploy bot");
    expect(key).toMatch(/^kw_test_[0-9A-Za-z]{38}$/);
    expect(page.url()).not.toContain(key);
    await page.getByRole("button", { name: "Copy", exact: true }).click();
    const copied = await page.evaluate<string>("navigator.clipboard.readText()");
    expect(copied).toBe(key);
    await shot("key-created");
    expect(await page.evaluate<string>("JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage })")).toBe("{}{}");

    const introspect = await fetch(`${service.url}/v1/introspect`, { headers: { authorization: `Bearer ${copied}` } });
    expect(introspect.status).toBe(200);
    expect(((await introspect.json()) as { ref: string }).ref).toBe(`kw_test_…${key.slice(-4)}`);

    await page.getByRole("button", { name: "I have stored it" }).click();
    await expect.poll(() => page.locator("#new-key").count()).toBe(0);
    await shot("my-keys");

    await page.getByRole("button", { name: "Rotate Deploy bot" }).first().click();
    await confirmDialog("Rotate", { "Grace period": "0" });
    const successor = await readShownKey();
    expect(successor).not.toBe(key);
    expect((await fetch(`${service.url}/v1/introspect`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(401);
    await page.getByRole("button", { name: "I have stored it" }).click();

    const activeRow = page.locator("tr", { has: page.getByRole("button", { name: "Revoke Deploy bot" }) });
    await activeRow.getByRole("button", { name: "Revoke Deploy bot" }).click();
    await confirmDialog("Revoke", { "Reason (optional)": "test over" });
    await expect.poll(() => page.getByRole("button", { name: "Revoke Deploy bot" }).count()).toBe(0);
    const revoked = await fetch(`${service.url}/v1/introspect`, { headers: { authorization: `Bearer ${successor}` } });
    expect(revoked.status).toBe(401);
    expect(((await revoked.json()) as { code: string }).code).toBe("REVOKED");
  });

  it("a member asks for a production key, an admin approves it, and the member picks it up once", async () => {
    const admin = await setupAdmin(service);
    await createMember(service, admin, "bob@example.com", "bob's password!");
    await signInThroughPage("bob@example.com", "bob's password!");
    // The member policy's default: no "Production" choice, and the form says how to get one.
    const environments = await page
      .getByRole("form", { name: "Create a key" })
      .getByLabel("Environment")
      .locator("option")
      .allTextContents();
    expect(environments).toEqual(["Sandbox"]);
    await expect.poll(() => page.getByText("Production keys are requested from a sandbox key").count()).toBe(1);
    await createKeyThroughPage("Checkout sandbox");
    await page.getByRole("button", { name: "I have stored it" }).click();
    await page.getByRole("button", { name: "Request a production key for Checkout sandbox" }).click();
    await confirmDialog("Send request", { "What will you use it for? (optional)": "launch" });
    await page.locator("tr[data-request-id]").getByText("pending").waitFor();

    await context.clearCookies();
    await signInThroughPage("admin@example.com", "correct horse battery");
    await page.getByRole("link", { name: "Key requests" }).click();
    await page.getByRole("button", { name: "Approve" }).waitFor();
    // The admin decides on what was asked, shown beside the request.
    expect(await page.locator("tr[data-request-id] td").nth(2).textContent()).toBe("read");
    await shot("key-requests");
    await page.getByRole("button", { name: "Approve" }).click();
    await confirmDialog("Approve");
    await page.locator("tr[data-request-id]").getByText("approved").waitFor();
    await page.getByRole("link", { name: "Audit log" }).click();
    await page.getByText("key_request.approved").first().waitFor();
    await shot("audit-log");

    await context.clearCookies();
    await signInThroughPage("bob@example.com", "bob's password!");
    await page.getByRole("button", { name: "Get production key" }).click();
    const production = await readShownKey();
    expect(production).toMatch(/^kw_live_/);
    const introspect = await fetch(`${service.url}/v1/introspect`, { headers: { authorization: `Bearer ${production}` } });
    expect(((await introspect.json()) as { environment: string }).environment).toBe("production");
    await page.getByRole("button", { name: "I have stored it" }).click();
    await expect.poll(() => page.getByRole("button", { name: "Get production key" }).count()).toBe(0);
  });

  it("a member cannot see another member's keys", async () => {
    const admin = await setupAdmin(service);
    const alice = await createMember(service, admin, "alice@example.com", "alice's password");
    await createMember(service, admin, "bob@example.com", "bob's password!");
    const created = await createKeyAsAdmin(alice.userId, "Alice secret project");
    const alicesKey = (created.json() as { id: string }).id;
    await signInThroughPage("bob@example.com", "bob's password!");
    expect(await page.getByText("Alice secret project").count()).toBe(0);
    await page.goto(`${service.url}/dashboard/#/keys/${alicesKey}`);
    await page.getByRole("heading", { name: "Not found" }).waitFor();
  });

  it("renders <script> in key metadata and request reasons as text (and names refuse HTML)", async () => {
    const admin = await setupAdmin(service);
    const payload = `<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">`;
    const created = await createKeyAsAdmin(admin.userId, "<b>bold</b> key", { note: payload });
    // Names refuse HTML (SECURITY.md 6); metadata may hold anything and must render as text.
    expect(created.status).toBe(400);
    const safe = await createKeyAsAdmin(admin.userId, "Plain name", { note: payload });
    const { id, key } = safe.json() as { id: string; key: string };
    const asked = await service.call("/v1/key-requests", {
      method: "POST",
      headers: jsonHeaders(key),
      body: JSON.stringify({ reason: payload }),
    });
    expect(asked.status).toBe(201);
    await signInThroughPage("admin@example.com", "correct horse battery");
    await page.goto(`${service.url}/dashboard/#/requests`);
    await page.locator("tr[data-request-id]").getByText("window.__pwned = 1", { exact: false }).waitFor();
    expect(await page.evaluate<number | undefined>("window.__pwned")).toBeUndefined();
    await page.goto(`${service.url}/dashboard/#/keys/${id}`);
    await page.getByText("window.__pwned = 1", { exact: false }).waitFor();
    expect(await page.evaluate<number | undefined>("window.__pwned")).toBeUndefined();
    expect(await page.locator("main script, main img[src=x]").count()).toBe(0);
    await shot("key-detail");
  });

  it("refuses a cross-site form POST that carries the signed-in user's cookie", async () => {
    const admin = await setupAdmin(service);
    await signInThroughPage("admin@example.com", "correct horse battery");
    // Another origin on the same site (127.0.0.1, another port): SameSite=Lax still sends the cookie, so the server must refuse.
    const evil: Server = createServer((_req, res) => {
      res.setHeader("content-type", "text/html");
      res.end(
        `<form id="f" method="POST" action="${service.url}/v1/keys" enctype="text/plain">` +
          `<input name='{"owner":{"type":"user","id":"${admin.userId}"},"name":"csrf","environment":"sandbox","scopes":[],"x":"' value='"}'></form>` +
          `<script>document.getElementById("f").submit()</script>`,
      );
    });
    await new Promise<void>((resolve) => evil.listen(0, "127.0.0.1", resolve));
    const port = (evil.address() as { port: number }).port;
    otherOrigin = `http://127.0.0.1:${port}`;
    try {
      const before = await service.store.countKeys();
      const response = page.waitForResponse((r) => r.url() === `${service.url}/v1/keys`);
      await page.goto(`${otherOrigin}/`, { waitUntil: "commit" });
      expect((await response).status()).toBe(403);
      await page.waitForLoadState();
      expect(await page.textContent("body")).toContain("CSRF_FAILED");
      expect(await service.store.countKeys()).toBe(before);
    } finally {
      evil.closeAllConnections();
      await new Promise((resolve) => evil.close(resolve));
    }
  });

  it("fits a phone-sized screen and works from the keyboard", async () => {
    await setupAdmin(service);
    await page.setViewportSize({ width: 390, height: 844 });
    await signInThroughPage("admin@example.com", "correct horse battery");
    const overflow = await page.evaluate<number>("document.documentElement.scrollWidth - window.innerWidth");
    expect(overflow).toBeLessThanOrEqual(0);
    await shot("phone-my-keys");
    // Keyboard only: tab to the name field, type, tab on to the button and press Enter.
    await page.getByRole("form", { name: "Create a key" }).getByLabel("Name").focus();
    await page.keyboard.type("Keyboard key");
    await page.getByRole("button", { name: "Create key" }).focus();
    await page.keyboard.press("Enter");
    await page.locator("#new-key").waitFor();
    await expect.poll(() => page.evaluate<string | undefined>("document.activeElement?.id")).toBe("new-key");
    await page.keyboard.press("Tab");
    await expect.poll(() => page.evaluate<string | null | undefined>("document.activeElement?.textContent")).toBe("Copy");
  });

  it("draws the usage chart from GET /v1/usage", async () => {
    const admin = await setupAdmin(service);
    const id = ((await createKeyAsAdmin(admin.userId, "Busy key")).json() as { id: string }).id;
    // /v1/usage is served by another module; here its documented shape is played back locally.
    const hour = Date.UTC(2026, 10, 23, 6) - 5 * 3_600_000;
    const rows = [0, 1, 2, 3, 4].flatMap((i) => [
      { start: new Date(hour + i * 3_600_000).toISOString(), key_id: id, outcome: "VALID", count: 20 + i * 7 },
      { start: new Date(hour + i * 3_600_000).toISOString(), key_id: id, outcome: "RATE_LIMITED", count: i * 2 },
      { start: new Date(hour + i * 3_600_000).toISOString(), key_id: id, outcome: "INSUFFICIENT_SCOPE", count: i % 2 },
    ]);
    let asked = "";
    await page.route(`${service.url}/v1/usage?**`, async (route) => {
      asked = route.request().url();
      await route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify({ bucket: "hour", data: rows }) });
    });
    await signInThroughPage("admin@example.com", "correct horse battery");
    await page.goto(`${service.url}/dashboard/#/keys/${id}`);
    await page.locator(".chart svg rect").first().waitFor();
    expect(new URL(asked).searchParams.get("key_id")).toBe(id);
    expect(new URL(asked).searchParams.get("bucket")).toBe("hour");
    expect(await page.locator(".chart svg rect").count()).toBe(5 + 4 + 2);
    await page.getByText("Last 24 hours: 170 valid, 20 limited, 2 denied.").waitFor();
    await shot("key-usage");
  });
});
