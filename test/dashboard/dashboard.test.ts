import { createServer, type Server } from "node:http";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { generateId } from "../../src/core/random.js";
import { accountStoreFor } from "../../src/service/account-store-factory.js";
import { expectAccessible, findChromium, launchBrowser, SCREENSHOT_DIR } from "../helpers/browser.js";
import { createMember, issueSetupToken, type SignedIn, setupAdmin, signIn } from "../helpers/people.js";
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
/** Uncaught errors in the page's scripts: there must be none. */
let pageErrors: string[];

const ADMIN = { email: "admin@example.com", password: "correct horse battery" };
const BOB = { email: "bob@example.com", password: "bob's password!" };

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
  // A declared legacy format (docs/migrating.md), for the pages that show imported keys.
  service = await startTestService({ env: { KEYWARD_LEGACY_FORMATS: '[{"name":"acme","prefix":"acme_","digest":"sha256_hex"}]' } });
  await context.clearCookies();
  page = await context.newPage();
  external = [];
  pageErrors = [];
  otherOrigin = null;
  page.on("request", (request) => {
    const url = request.url();
    if (!url.startsWith(service.url) && !url.startsWith("data:") && !(otherOrigin && url.startsWith(otherOrigin))) external.push(url);
  });
  page.on("pageerror", (error) => pageErrors.push(error.message));
});
afterEach(async () => {
  if (!chromium) return;
  await page.close();
  await service.close();
  expect(external).toEqual([]);
  expect(pageErrors).toEqual([]);
});

// ---------------------------------------------------------------- helpers

/** Creates a key through the API with the test's admin key; returns its id (and plaintext). */
async function createKeyAsAdmin(
  owner: { type: "user" | "application"; id: string } | string,
  name: string,
  extra: Record<string, unknown> = {},
): Promise<{ id: string; key: string; ref: string; status: number }> {
  const response = await service.call("/v1/keys", {
    method: "POST",
    headers: jsonHeaders(service.adminKey),
    body: JSON.stringify({
      owner: typeof owner === "string" ? { type: "user", id: owner } : owner,
      name,
      environment: "sandbox",
      scopes: [],
      ...extra,
    }),
  });
  const body = response.json() as { id: string; key: string; ref: string };
  return { ...body, status: response.status };
}

const introspect = (key: string) => fetch(`${service.url}/v1/introspect`, { headers: { authorization: `Bearer ${key}` } });

const shot = (name: string) => page.screenshot({ path: join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });

/**
 * Runs axe on the page as it is now (issue 21: every page state the suite visits); fails on any
 * critical or serious violation, naming the rule and the elements.
 */
const axe = (state: string) => expectAccessible(page, state);

async function signInThroughPage(email: string, password: string, landing = "My API keys"): Promise<void> {
  await page.goto(`${service.url}/dashboard/#/signin`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: landing, level: 1 }).waitFor();
}

/** Goes to a dashboard route and waits for its heading. */
async function open(route: string, heading: string | RegExp): Promise<void> {
  await page.goto(`${service.url}/dashboard/#/${route}`);
  await page.getByRole("heading", { name: heading, level: 1 }).waitFor();
}

async function createKeyThroughPage(name: string, environment = "sandbox"): Promise<string> {
  const form = page.getByRole("form", { name: "Create a key" });
  await form.getByLabel("Name", { exact: true }).fill(name);
  await form.getByLabel("Environment").selectOption(environment);
  await form.getByRole("button", { name: "Create key" }).click();
  return readShownKey();
}

/** The key in the one-time panel, planted for the suite's leak sweep. */
async function readShownKey(): Promise<string> {
  const input = page.locator("#new-key");
  await input.waitFor();
  await expect.poll(() => input.inputValue()).not.toBe("");
  const key = await input.inputValue();
  service.plant(key);
  return key;
}

async function storedIt(): Promise<void> {
  await page.getByRole("button", { name: "I have stored it" }).click();
  await expect.poll(() => page.locator("#new-key").count()).toBe(0);
}

/** The open dialog: fills its fields, checks what it says, presses `button`. */
async function confirmDialog(button: string, fields: Record<string, string> = {}, says: string[] = []): Promise<void> {
  const dialog = page.locator("dialog[open]");
  await dialog.waitFor();
  for (const text of says) expect(await dialog.textContent()).toContain(text);
  for (const [label, value] of Object.entries(fields)) {
    const field = dialog.getByLabel(label);
    if ((await field.evaluate((el) => el.tagName)) === "SELECT") await field.selectOption(value);
    else await field.fill(value);
  }
  await dialog.getByRole("button", { name: button, exact: true }).click();
  await dialog.waitFor({ state: "detached" });
}

/** The text of the elements an aria-describedby names (a field's hint and error). */
const describedText = (ids: string) =>
  page.evaluate<string>(
    `${JSON.stringify(ids.split(" ").filter(Boolean))}.map((id) => document.getElementById(id)?.textContent ?? "").join(" ")`,
  );

const navLink = (name: string) => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true });

/** An audit event's action cell (the filter's options hold the same words). */
const auditAction = (action: string) => page.locator("td[data-label=Action]", { hasText: action });

const row = (text: string) => page.locator("tbody tr", { hasText: text });
const pageStatus = () => page.locator(".page-status").first().textContent();

/** Makes a member, with the admin's session. */
async function member(admin: SignedIn, who = BOB): Promise<SignedIn> {
  return createMember(service, admin, who.email, who.password);
}

// ---------------------------------------------------------------- the journeys

// A browser on a loaded two-core machine: each journey gets two minutes (the 210-key one more).
describe.runIf(chromium)("dashboard", { timeout: 120_000 }, () => {
  it("first-admin setup, then a key created, copied, used, guarded, rotated and revoked", async () => {
    const token = await issueSetupToken(service);
    await page.goto(`${service.url}/dashboard/#/setup/${token}`);
    await page.getByRole("button", { name: "Create administrator" }).waitFor();
    await shot("setup");
    expect(page.url()).not.toContain(token);
    await axe("setup");
    // The setup password's rule is checked here as the server checks it, beside the field.
    await page.getByLabel("Email").fill(ADMIN.email);
    await page.getByLabel("Password").fill("short");
    await page.getByRole("button", { name: "Create administrator" }).click();
    const password = page.getByLabel("Password");
    await expect.poll(() => password.getAttribute("aria-invalid")).toBe("true");
    const describedBy = (await password.getAttribute("aria-describedby")) ?? "";
    const described = await describedText(describedBy);
    expect(described).toContain("Use 12 to 256 characters");
    await password.fill(ADMIN.password);
    await page.getByRole("button", { name: "Create administrator" }).click();
    await page.getByRole("heading", { name: "My API keys" }).waitFor();
    await axe("my keys, empty");

    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: service.url });
    const key = await createKeyThroughPage("Deploy bot");
    expect(key).toMatch(/^kw_test_[0-9A-Za-z]{38}$/);
    expect(page.url()).not.toContain(key);
    await page.getByRole("button", { name: "Copy", exact: true }).click();
    const copied = await page.evaluate<string>("navigator.clipboard.readText()");
    expect(copied).toBe(key);
    await page.getByText("Copied to the clipboard").waitFor();
    // Copy keeps focus on the button pressed.
    expect(await page.evaluate<string | null | undefined>("document.activeElement?.textContent")).toBe("Copy");
    await shot("key-created");
    await axe("my keys, new key shown");
    expect(await page.evaluate<string>("JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage })")).toBe("{}{}");

    // Leaving while the key is shown asks first; staying keeps the key.
    await navLink("Usage").click();
    await page.locator("dialog[open]").getByText("Leave without the new key?").waitFor();
    await axe("leave dialog");
    await confirmDialog("Stay on this page");
    expect(await page.locator("#new-key").inputValue()).toBe(key);
    expect(page.url()).toContain("#/keys");

    // A copy that fails says so, and keeps focus.
    await page.evaluate(
      `Object.defineProperty(navigator, "clipboard", { value: { writeText: () => Promise.reject(new Error("denied")) } });
       document.execCommand = () => false;`,
    );
    await page.getByRole("button", { name: "Copy", exact: true }).click();
    await page.getByText("Could not copy to the clipboard").waitFor();
    expect(await page.evaluate<string | null | undefined>("document.activeElement?.textContent")).toBe("Copy");

    const introspected = await introspect(copied);
    expect(introspected.status).toBe(200);
    expect(((await introspected.json()) as { ref: string }).ref).toBe(`kw_test_…${key.slice(-4)}`);

    await storedIt();
    await shot("my-keys");

    await page.getByRole("button", { name: "Rotate Deploy bot" }).first().click();
    await confirmDialog("Rotate", { "The old key keeps working for": "0" }, ["Until the grace period ends"]);
    const successor = await readShownKey();
    expect(successor).not.toBe(key);
    expect((await introspect(key)).status).toBe(401);
    await storedIt();

    const activeRow = page.locator("tr", { has: page.getByRole("button", { name: "Revoke Deploy bot" }) });
    await activeRow.getByRole("button", { name: "Revoke Deploy bot" }).click();
    await page.locator("dialog[open]").waitFor();
    await axe("revoke dialog");
    await confirmDialog("Revoke", { "Reason (optional)": "test over" }, ["stops working at once", "401 REVOKED"]);
    await expect.poll(() => page.getByRole("button", { name: "Revoke Deploy bot" }).count()).toBe(0);
    const revoked = await introspect(successor);
    expect(revoked.status).toBe(401);
    expect(((await revoked.json()) as { code: string }).code).toBe("REVOKED");
  });

  it("a member asks for a production key, an admin approves it, and the member picks it up once", async () => {
    const admin = await setupAdmin(service);
    await member(admin);
    await signInThroughPage(BOB.email, BOB.password);
    // The member policy's default: no "Production" choice, and the form says how to get one.
    const form = page.getByRole("form", { name: "Create a key" });
    expect(await form.getByLabel("Environment").locator("option").allTextContents()).toEqual(["Sandbox"]);
    await expect.poll(() => page.getByText("Production keys are requested from a sandbox key").count()).toBe(1);
    await form.getByText("What you may change as a member").waitFor();
    await createKeyThroughPage("Checkout sandbox");
    await storedIt();
    await page.getByRole("button", { name: "Request production key for Checkout sandbox" }).click();
    await confirmDialog("Send request", { "What will you use it for? (optional)": "launch" });
    await page.locator("tr[data-request-id]").getByText("pending").waitFor();
    // While the request is pending the key says so, and is not offered for another request.
    await row("Checkout sandbox").getByText("request pending").waitFor();
    expect(await page.getByRole("button", { name: "Request production key for Checkout sandbox" }).count()).toBe(0);
    await axe("member, request pending");

    await context.clearCookies();
    await signInThroughPage(ADMIN.email, ADMIN.password);
    await navLink("Key requests").click();
    await page.getByRole("button", { name: "Approve" }).waitFor();
    // The admin decides on what was asked, shown beside the request, and sees who asked by email and the key by name.
    expect(await page.locator("tr[data-request-id] td").nth(2).textContent()).toBe("read");
    expect(await page.locator("tr[data-request-id] td").nth(0).textContent()).toBe(BOB.email);
    expect(await page.locator("tr[data-request-id] td").nth(1).textContent()).toContain("Checkout sandbox");
    await shot("key-requests");
    await axe("key requests");
    await page.getByRole("button", { name: "Approve" }).click();
    await confirmDialog("Approve", {}, [BOB.email, "awaiting pickup"]);
    await page.locator("tr[data-request-id]").getByText("awaiting pickup").waitFor();
    // The audit log's actor filter takes an email.
    await navLink("Audit log").click();
    await page.getByRole("heading", { name: "Audit log" }).waitFor();
    await page.getByLabel("Who").fill(ADMIN.email);
    await page.getByRole("button", { name: "Filter" }).click();
    await auditAction("key_request.approved").first().waitFor();
    await expect.poll(() => auditAction("session.signed_in").count()).toBeGreaterThan(0);
    expect(await page.getByRole("cell", { name: BOB.email }).count()).toBeGreaterThan(0);
    await page.getByLabel("Who").fill("nobody@example.com");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.getByText("No user has the email nobody@example.com.").waitFor();
    await page.getByLabel("Who").fill("");
    await page.getByRole("button", { name: "Filter" }).click();
    await auditAction("key_request.approved").first().waitFor();
    await shot("audit-log");
    await axe("audit log");

    await context.clearCookies();
    await signInThroughPage(BOB.email, BOB.password);
    // The sandbox key says its production key awaits pickup; the production key itself is not shown as active.
    await page.getByText("production key awaiting pickup").waitFor();
    await page.locator("tr[data-key-id]", { hasText: "kw_live_" }).getByText("awaiting pickup", { exact: true }).waitFor();
    expect(await page.getByRole("button", { name: "Request production key for Checkout sandbox" }).count()).toBe(0);
    await page.getByRole("button", { name: "Get production key" }).click();
    const production = await readShownKey();
    expect(production).toMatch(/^kw_live_/);
    const introspected = await introspect(production);
    expect(((await introspected.json()) as { environment: string }).environment).toBe("production");
    await storedIt();
    await expect.poll(() => page.getByRole("button", { name: "Get production key" }).count()).toBe(0);
    // After approval the sandbox key is still not offered for another request.
    expect(await page.getByRole("button", { name: "Request production key for Checkout sandbox" }).count()).toBe(0);
  });

  it("a member sees only their own keys, and an administrators' page says it is not allowed", async () => {
    const admin = await setupAdmin(service);
    const alice = await createMember(service, admin, "alice@example.com", "alice's password");
    await member(admin);
    const alicesKey = (await createKeyAsAdmin(alice.userId, "Alice secret project")).id;
    await signInThroughPage(BOB.email, BOB.password);
    expect(await page.getByText("Alice secret project").count()).toBe(0);
    await open(`keys/${alicesKey}`, "Not found");
    await open("users", "Not allowed");
    await page.getByText("This page is for administrators").waitFor();
    await axe("not allowed");
    await open("all-keys?q=Alice", "Not allowed");
    // The member's navigation has no administrators' pages.
    expect(await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Users" }).count()).toBe(0);
    // A setup link opened once Keyward has an administrator says so before anyone types a password.
    await open("setup/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "This setup link has been used");
    expect(await page.getByLabel("Password").count()).toBe(0);
    expect(page.url()).not.toContain("AAAAAAAA");
  });

  it("renders <script> in key metadata and request reasons as text (and names refuse HTML)", async () => {
    const admin = await setupAdmin(service);
    const payload = `<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">`;
    const refused = await createKeyAsAdmin(admin.userId, "<b>bold</b> key", { metadata: { note: payload } });
    // Names refuse HTML (SECURITY.md 6); metadata may hold anything and must render as text.
    expect(refused.status).toBe(400);
    const { id, key } = await createKeyAsAdmin(admin.userId, "Plain name", { metadata: { note: payload } });
    const asked = await service.call("/v1/key-requests", {
      method: "POST",
      headers: jsonHeaders(key),
      body: JSON.stringify({ reason: payload }),
    });
    expect(asked.status).toBe(201);
    await signInThroughPage(ADMIN.email, ADMIN.password);
    await page.goto(`${service.url}/dashboard/#/requests`);
    await page.locator("tr[data-request-id]").getByText("window.__pwned = 1", { exact: false }).waitFor();
    expect(await page.evaluate<number | undefined>("window.__pwned")).toBeUndefined();
    await page.goto(`${service.url}/dashboard/#/keys/${id}`);
    await page.getByText("window.__pwned = 1", { exact: false }).first().waitFor();
    expect(await page.evaluate<number | undefined>("window.__pwned")).toBeUndefined();
    expect(await page.locator("main script, main img[src=x]").count()).toBe(0);
    await shot("key-detail");
    await axe("key detail");
  });

  it("refuses a cross-site form POST that carries the signed-in user's cookie", async () => {
    const admin = await setupAdmin(service);
    await signInThroughPage(ADMIN.email, ADMIN.password);
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

  it("serves only the dashboard's own files, each under the strict CSP", async () => {
    for (const path of [
      "/dashboard/",
      "/dashboard/app.js",
      "/dashboard/lib/api.js",
      "/dashboard/pages/my-keys.js",
      "/dashboard/style.css",
    ]) {
      const response = await fetch(`${service.url}${path}`);
      expect(response.status, path).toBe(200);
      expect(response.headers.get("content-security-policy"), path).toContain("script-src 'self'");
      // A second read is a 304 while the file is unchanged.
      const etag = response.headers.get("etag");
      if (!path.endsWith("/"))
        expect((await fetch(`${service.url}${path}`, { headers: { "if-none-match": etag ?? "" } })).status, path).toBe(304);
    }
    expect((await fetch(`${service.url}/dashboard/app.js`)).headers.get("content-type")).toContain("text/javascript");
    for (const path of [
      "/dashboard/index.html",
      "/dashboard/../package.json",
      "/dashboard/%2e%2e/package.json",
      "/dashboard/lib/../../package.json",
      "/dashboard/nope.js",
      "/dashboard/.hidden.js",
    ]) {
      expect((await fetch(`${service.url}${path}`)).status, path).toBe(404);
    }
  });

  it("fits a phone-sized screen (stacked rows, no orphaned headers) and works from the keyboard", async () => {
    const admin = await setupAdmin(service);
    const ids: string[] = [];
    for (const name of ["Phone one", "Phone two"]) ids.push((await createKeyAsAdmin(admin.userId, name)).id);
    await page.setViewportSize({ width: 390, height: 844 });
    await signInThroughPage(ADMIN.email, ADMIN.password);
    await row("Phone one").waitFor();
    const overflow = () => page.evaluate<number>("document.documentElement.scrollWidth - window.innerWidth");
    expect(await overflow()).toBeLessThanOrEqual(0);
    // Each cell says which column it is; the header row is for screen readers only.
    const label = await page.evaluate<string>(`getComputedStyle(document.querySelector("tr[data-key-id] td"), "::before").content`);
    expect(label).toBe('"Name"');
    const header = await page.locator("table.stack thead").first().boundingBox();
    expect((header?.height ?? 0) <= 1).toBe(true);
    await shot("phone-my-keys");
    await axe("phone, my keys");
    for (const [route, heading] of [
      ["all-keys", "All keys"],
      ["audit", "Audit log"],
      ["usage", "Usage"],
      ["users", "Users"],
      [`keys/${ids[0]}`, "Phone one"],
    ] as const) {
      await open(route, heading);
      await page.locator("main table, main [data-empty], main svg").first().waitFor();
      expect(await overflow(), route).toBeLessThanOrEqual(0);
      await axe(`phone, ${route}`);
    }
    await open("keys", "My API keys");
    // Keyboard only: tab to the name field, type, tab on to the button and press Enter.
    await page.getByRole("form", { name: "Create a key" }).getByLabel("Name", { exact: true }).focus();
    await page.keyboard.type("Keyboard key");
    await page.getByRole("button", { name: "Create key" }).focus();
    await page.keyboard.press("Enter");
    await page.locator("#new-key").waitFor();
    await expect.poll(() => page.evaluate<string | undefined>("document.activeElement?.id")).toBe("new-key");
    await page.keyboard.press("Tab");
    await expect.poll(() => page.evaluate<string | null | undefined>("document.activeElement?.textContent")).toBe("Copy");
    await readShownKey();
    await storedIt();
    // Dark mode follows the system setting, and still passes axe's contrast rules.
    await page.emulateMedia({ colorScheme: "dark" });
    await page.setViewportSize({ width: 1280, height: 860 });
    expect(await page.evaluate<string>("getComputedStyle(document.documentElement).backgroundColor")).toBe("rgb(17, 21, 28)");
    await axe("dark, my keys");
    await shot("dark-my-keys");
    await page.emulateMedia({ colorScheme: "light" });
  });

  it("draws usage as a timeline with empty buckets, outcome codes stacked, ranges and totals", async () => {
    const admin = await setupAdmin(service);
    const { id } = await createKeyAsAdmin(admin.userId, "Busy key");
    // /v1/usage is served by another module; here its documented shape is played back, with gaps: 22, 21, 3 and 0 hours ago.
    const hour = 3_600_000;
    const thisHour = Date.now() - (Date.now() % hour);
    const rows = [22, 21, 3, 0].flatMap((ago, i) => [
      { start: new Date(thisHour - ago * hour).toISOString(), key_id: id, outcome: "VALID", count: 20 + i * 7 },
      { start: new Date(thisHour - ago * hour).toISOString(), key_id: id, outcome: "RATE_LIMITED", count: i * 2 },
      { start: new Date(thisHour - ago * hour).toISOString(), key_id: id, outcome: "INSUFFICIENT_SCOPE", count: i % 2 },
    ]);
    const asked: URL[] = [];
    await page.route(`${service.url}/v1/usage?**`, async (route) => {
      const url = new URL(route.request().url());
      asked.push(url);
      const data = url.searchParams.get("bucket") === "hour" ? rows : [];
      await route.fulfill({
        status: 200,
        contentType: "application/json",
        body: JSON.stringify({ bucket: url.searchParams.get("bucket"), data }),
      });
    });
    await signInThroughPage(ADMIN.email, ADMIN.password);
    await page.goto(`${service.url}/dashboard/#/keys/${id}`);
    await page.locator(".chart svg rect").first().waitFor();
    expect(asked[0]?.searchParams.get("key_id")).toBe(id);
    expect(asked[0]?.searchParams.get("bucket")).toBe("hour");
    // A slot for every hour of the last 24, traffic or not; the busy ones where they belong.
    const buckets = page.locator(".chart g.bucket");
    expect(await buckets.count()).toBe(24);
    const totals = await buckets.evaluateAll((groups) => groups.map((g) => Number(g.getAttribute("data-total"))));
    expect(totals.map((t, i) => (t > 0 ? i : -1)).filter((i) => i >= 0)).toEqual([1, 2, 20, 23]);
    expect(totals[23]).toBe(41 + 6 + 1);
    expect(await page.locator(".chart svg rect").count()).toBe(4 + 3 + 2);
    // A y-axis, a legend by outcome code, and totals.
    expect(await page.locator(".chart svg text.tick").count()).toBeGreaterThan(5);
    expect(await page.locator(".legend li").allTextContents()).toEqual(["Valid 122", "Rate limited 12", "Missing scope 2"]);
    await page.getByText("Last 24 hours: 136 requests").waitFor();
    await shot("key-usage");
    await axe("usage chart");
    await page.getByRole("button", { name: "Last hour" }).click();
    await page.getByText("No requests in the last hour.").waitFor();
    expect(asked.at(-1)?.searchParams.get("bucket")).toBe("minute");
    await page.getByRole("button", { name: "Last 30 days" }).click();
    await page.getByText("No requests in the last 30 days.").waitFor();
    expect(asked.at(-1)?.searchParams.get("bucket")).toBe("day");
    // The whole deployment's timeline, and one owner's.
    await open("usage", "Usage");
    await page.locator(".chart svg").waitFor();
    expect(asked.at(-1)?.searchParams.has("owner")).toBe(false);
    await page.getByRole("textbox", { name: "Owner" }).fill(ADMIN.email);
    await page.getByRole("button", { name: "Show" }).click();
    await expect.poll(() => asked.at(-1)?.searchParams.get("owner")).toBe(`user:${admin.userId}`);
  });

  it("finds keys among 210: pages with a total, search by name and last four, filters by owner, environment and expiry", async () => {
    const admin = await setupAdmin(service);
    const bob = await member(admin);
    const created: Array<{ id: string; ref: string; name: string }> = [];
    for (let batch = 0; batch < 210; batch += 15) {
      const names = Array.from({ length: Math.min(15, 210 - batch) }, (_, i) => batch + i);
      // In order, so "newest first" is the reverse of the names.
      for (const n of names) {
        const name = `Key ${String(n).padStart(3, "0")}`;
        const expiring = n % 70 === 5 ? { expires_at: new Date(Date.now() + 2 * 86_400_000).toISOString() } : {};
        const key = await createKeyAsAdmin(n % 3 === 0 ? bob.userId : admin.userId, name, expiring);
        created.push({ id: key.id, ref: key.ref, name });
      }
    }
    await signInThroughPage(ADMIN.email, ADMIN.password);
    await open("all-keys", "All keys");
    await row("Key 209").waitFor();
    expect(await pageStatus()).toBe("Showing 1–50 of 211");
    await axe("all keys");
    for (const status of ["Showing 51–100 of 211", "Showing 101–150 of 211", "Showing 151–200 of 211", "Showing 201–211 of 211"]) {
      await page.getByRole("button", { name: "Next page" }).click();
      await expect.poll(pageStatus).toBe(status);
    }
    // The oldest key is reachable, and there is no page after the last.
    await row("Key 000").waitFor();
    expect(await page.getByRole("button", { name: "Next page" }).isDisabled()).toBe(true);
    await page.getByRole("button", { name: "Previous page" }).click();
    await expect.poll(pageStatus).toBe("Showing 151–200 of 211");

    // Search by name, by the last four characters of the key, and by id.
    const search = page.getByRole("searchbox", { name: "Search" });
    await search.fill("Key 107");
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await expect.poll(pageStatus).toBe("Showing 1–1 of 1");
    expect(page.url()).toContain("q=Key+107");
    const target = created[42] as { id: string; ref: string; name: string };
    await search.fill(target.ref.slice(-4));
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await row(target.name).waitFor();
    await search.fill(target.id);
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await expect.poll(pageStatus).toBe("Showing 1–1 of 1");
    await row(target.name).waitFor();
    await search.fill("no such key anywhere");
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await page.getByText("No keys match these filters.").waitFor();
    await axe("all keys, nothing found");
    await page.getByRole("button", { name: "Clear filters" }).click();
    await expect.poll(pageStatus).toBe("Showing 1–50 of 211");

    // Owner by email (70 of Bob's), environment, expiring soon.
    await page.getByLabel("Owner").fill(BOB.email);
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await expect.poll(pageStatus).toBe("Showing 1–50 of 70");
    expect(await page.locator("tbody tr td[data-label=Owner]").first().textContent()).toBe(BOB.email);
    await page.getByLabel("Owner").fill("");
    await page.getByLabel("Environment").selectOption("production");
    await expect.poll(pageStatus).toBe("Showing 1–1 of 1");
    await page.getByLabel("Environment").selectOption("");
    await page.getByLabel("Expiring within 7 days").check();
    await expect.poll(pageStatus).toBe("Showing 1–3 of 3");
    expect(await page.locator("tbody tr").getByText("expiring soon").count()).toBe(3);
    await shot("all-keys");

    // The member's own page: their 70 keys, paged, searchable.
    await context.clearCookies();
    await signInThroughPage(BOB.email, BOB.password);
    await expect.poll(pageStatus).toBe("Showing 1–50 of 70");
    await page.getByRole("searchbox", { name: "Search" }).fill("Key 20");
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await expect.poll(pageStatus).toBe("Showing 1–3 of 3");
  }, 240_000);

  it("edits every field of a key, with errors beside the fields; a member may tighten but not loosen", async () => {
    const admin = await setupAdmin(service);
    const { id } = await createKeyAsAdmin(admin.userId, "Editable", { scopes: ["read"] });
    await signInThroughPage(ADMIN.email, ADMIN.password);
    await open(`keys/${id}`, "Editable");
    const form = page.getByRole("form", { name: "Edit this key" });
    await form.getByLabel("Name", { exact: true }).fill("Edited name");
    await form.getByLabel("Scopes", { exact: true }).fill("read, orders:write");
    await form.getByLabel("30 days").check();
    await form.getByLabel("Rate limit: requests").fill("5");
    await form.getByLabel("Rate limit: per").selectOption("60");
    await form.getByLabel("Burst (optional)").fill("10");
    await form.getByLabel("Concurrency", { exact: true }).fill("3");
    await form.getByLabel("Quota", { exact: true }).selectOption("period");
    await form.getByLabel("Quota: requests").fill("1000");
    await form.getByLabel("Quota: period").selectOption("day");
    await form.getByLabel("Allowed addresses").fill("10.0.0.0/8\nnot-an-address");
    await form.getByLabel("Metadata").fill("{bad json");
    await form.getByRole("button", { name: "Save changes" }).click();
    // Each error is next to its field, in people's words, tied to it for screen readers.
    const cidrs = form.getByLabel("Allowed addresses");
    await expect.poll(() => cidrs.getAttribute("aria-invalid")).toBe("true");
    const errorOf = async (locator: typeof cidrs) => describedText((await locator.getAttribute("aria-describedby")) ?? "");
    expect(await errorOf(cidrs)).toContain("“not-an-address” is not an IP address or range");
    expect(await errorOf(form.getByLabel("Metadata"))).toContain("This is not valid JSON");
    expect(await page.evaluate<string | undefined>("document.activeElement?.getAttribute('name')")).toBe("allowed_cidrs");
    await axe("edit form with errors");
    await cidrs.fill("10.0.0.0/8\n2001:db8::/32");
    await form.getByLabel("Metadata").fill('{"team": "checkout", "tier": 2}');
    await form.getByRole("button", { name: "Save changes" }).click();
    await page.getByText("Saved:").waitFor();
    await page.getByRole("heading", { name: "Edited name", level: 1 }).waitFor();
    const key = (await service.call(`/v1/keys/${id}`, { headers: jsonHeaders(service.adminKey) })).json() as Record<string, unknown>;
    expect(key).toMatchObject({
      name: "Edited name",
      scopes: ["read", "orders:write"],
      rate_limit: { requests: 5, per_seconds: 60, burst: 10 },
      concurrency: 3,
      quota: { limit: 1000, period: "day" },
      allowed_cidrs: ["10.0.0.0/8", "2001:db8::/32"],
      metadata: { team: "checkout", tier: 2 },
    });
    const expires = new Date(key.expires_at as string).getTime();
    expect(Math.abs(expires - (Date.now() + 30 * 86_400_000))).toBeLessThan(120_000);
    // Fewer uses on a uses-quota, and "never" with its warning.
    await form.getByLabel("Quota", { exact: true }).selectOption("uses");
    await form.getByLabel("Uses left").fill("500");
    await form.getByLabel("Never").check();
    await form.getByText("A key that never expires keeps working until someone revokes it").waitFor();
    await form.getByRole("button", { name: "Save changes" }).click();
    await page.getByText("Saved:").waitFor();
    await expect
      .poll(
        async () => ((await service.call(`/v1/keys/${id}`, { headers: jsonHeaders(service.adminKey) })).json() as { quota: unknown }).quota,
      )
      .toEqual({ remaining: 500 });
    await shot("key-edit");

    // A member: the rules are in the form; tightening works, loosening an admin's control is refused with the server's reason.
    const bob = await member(admin);
    const bobs = await createKeyAsAdmin(bob.userId, "Bob limited", { scopes: ["read"], rate_limit: { requests: 5, per_seconds: 1 } });
    await context.clearCookies();
    await signInThroughPage(BOB.email, BOB.password);
    await open(`keys/${bobs.id}`, "Bob limited");
    const memberForm = page.getByRole("form", { name: "Edit this key" });
    await memberForm.getByText("Loosen a control only if you set it yourself").waitFor();
    await memberForm.getByLabel("Rate limit: requests").fill("50");
    await memberForm.getByRole("button", { name: "Save changes" }).click();
    await memberForm.getByText("you may tighten it, not loosen it").waitFor();
    await axe("member edit refused");
    await memberForm.getByLabel("Rate limit: requests").fill("2");
    await memberForm.getByRole("button", { name: "Save changes" }).click();
    await page.getByText("Saved:").waitFor();
    await expect
      .poll(
        async () =>
          ((await service.call(`/v1/keys/${bobs.id}`, { headers: jsonHeaders(service.adminKey) })).json() as { rate_limit: unknown })
            .rate_limit,
      )
      .toEqual({ requests: 2, per_seconds: 1 });
  });

  it("marks powerful keys and asks before creating one; limits can be set when creating", async () => {
    await setupAdmin(service);
    await signInThroughPage(ADMIN.email, ADMIN.password);
    const form = page.getByRole("form", { name: "Create a key" });
    await form.getByLabel("Name", { exact: true }).fill("Provisioner");
    await form.getByLabel("Scopes", { exact: true }).fill("keys:read, keys:write");
    await form.getByRole("button", { name: "Create key" }).click();
    await page.locator("dialog[open]").getByText("Create a powerful key?").waitFor();
    await axe("powerful key dialog");
    await confirmDialog("Cancel", {}, ["management scopes keys:read, keys:write"]);
    expect(await page.locator("#new-key").count()).toBe(0);
    await form.getByText("Limits, allowed addresses and metadata").click();
    await form.getByLabel("Rate limit: requests").fill("100");
    await form.getByLabel("Allowed addresses").fill("192.0.2.0/24");
    await form.getByRole("button", { name: "Create key" }).click();
    await confirmDialog("Create powerful key");
    const key = await readShownKey();
    await storedIt();
    await row("Provisioner").getByText("powerful").waitFor();
    // Its addresses are in force: this client is not in them.
    expect((await introspect(key)).status).toBe(403);
    const stored = (await service.call(`/v1/keys?q=Provisioner`, { headers: jsonHeaders(service.adminKey) })).json() as {
      data: Array<{ rate_limit: unknown; allowed_cidrs: string[]; scopes: string[]; expires_at: string }>;
    };
    expect(stored.data[0]).toMatchObject({
      rate_limit: { requests: 100, per_seconds: 1 },
      allowed_cidrs: ["192.0.2.0/24"],
      scopes: ["keys:read", "keys:write"],
    });
    // The default expiry is 90 days.
    expect(Math.abs(new Date(stored.data[0]?.expires_at as string).getTime() - (Date.now() + 90 * 86_400_000))).toBeLessThan(120_000);
  });

  it("ends a rotation's grace from either key, and says which key is rotating until when", async () => {
    await setupAdmin(service);
    await signInThroughPage(ADMIN.email, ADMIN.password);
    const old = await createKeyThroughPage("Leaky");
    await storedIt();
    await page.getByRole("button", { name: "Rotate Leaky" }).click();
    await confirmDialog("Rotate", { "The old key keeps working for": "86400" });
    const fresh = await readShownKey();
    await storedIt();
    expect((await introspect(old)).status).toBe(200);
    await page.locator("tbody tr").getByText("rotating — old key works until").waitFor();
    await page.locator("tbody tr").getByText("rotating — previous key works until").waitFor();
    await axe("rotation states");
    // On the successor: end the old key's grace (it leaked).
    await page.getByRole("button", { name: /^End grace now for the old key of Leaky/ }).click();
    await confirmDialog("End grace now", {}, ["stops working at once", "successor keeps working"]);
    await page.getByText("Grace ended").waitFor();
    await expect.poll(async () => (await introspect(old)).status).toBe(401);
    expect((await introspect(fresh)).status).toBe(200);
    await expect.poll(() => page.locator("tbody tr").getByText("rotating").count()).toBe(0);

    // On the old key itself, from its own page.
    await page.getByRole("button", { name: "Rotate Leaky" }).click();
    await confirmDialog("Rotate", { "The old key keeps working for": "3600" });
    const third = await readShownKey();
    await storedIt();
    const oldRow = page.locator("tbody tr", { hasText: "rotating — old key works until" });
    await oldRow.getByRole("link", { name: "Leaky", exact: true }).click();
    await page.getByRole("heading", { name: "Leaky", level: 1 }).waitFor();
    await page.getByRole("button", { name: /^End grace now for Leaky/ }).click();
    await confirmDialog("End grace now");
    await expect.poll(async () => (await introspect(fresh)).status).toBe(401);
    expect((await introspect(third)).status).toBe(200);
  });

  it("disabling a user says how many keys stop working; enabling brings them back", async () => {
    const admin = await setupAdmin(service);
    const bob = await member(admin);
    const keys: Array<{ id: string; key: string }> = [];
    for (const name of ["One", "Two", "Three", "Gone"]) keys.push(await createKeyAsAdmin(bob.userId, name));
    await service.call(`/v1/keys/${keys[3]?.id}/revoke`, { method: "POST", headers: jsonHeaders(service.adminKey), body: "{}" });
    // 60 more people: the list pages through the server, and searches there.
    const accounts = accountStoreFor(service.store);
    for (let i = 0; i < 60; i++) {
      const at = Date.now() + i;
      const email = `person${String(i).padStart(2, "0")}@example.com`;
      await accounts?.insertUser(
        {
          id: generateId("usr"),
          email,
          role: "member",
          passwordHash: "",
          disabled: false,
          mustChangePassword: false,
          createdAt: at,
          updatedAt: at,
        },
        null,
      );
    }
    await signInThroughPage(ADMIN.email, ADMIN.password);
    await open("users", "Users");
    await expect.poll(pageStatus).toBe("Showing 1–50 of 62");
    await page.getByRole("button", { name: "Next page" }).click();
    await expect.poll(pageStatus).toBe("Showing 51–62 of 62");
    await row("person59@example.com").waitFor();
    await axe("users, second page");
    await page.getByLabel("Search").fill("PERSON0");
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await expect.poll(pageStatus).toBe("Showing 1–10 of 10");
    await page.getByLabel("Search").fill("bob@");
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await expect.poll(pageStatus).toBe("Showing 1–1 of 1");
    await page.getByRole("button", { name: `Disable ${BOB.email}` }).click();
    await page.locator("dialog[open]").waitFor();
    await axe("disable user dialog");
    await confirmDialog("Disable user", {}, ["3 keys will stop working at once", "signed out everywhere"]);
    await row(BOB.email).getByText("disabled").waitFor();
    const denied = await introspect(keys[0]?.key as string);
    expect(((await denied.json()) as { code: string }).code).toBe("DISABLED");
    await page.getByRole("button", { name: `Enable ${BOB.email}` }).click();
    await confirmDialog("Enable user");
    await expect.poll(async () => (await introspect(keys[0]?.key as string)).status).toBe(200);

    // Bob's own page: his keys, requests, usage and what he did.
    await row(BOB.email).getByRole("link", { name: BOB.email }).click();
    await page.getByRole("heading", { name: BOB.email, level: 1 }).waitFor();
    await row("Three").waitFor();
    await page.getByRole("heading", { name: "Recent activity" }).waitFor();
    await auditAction("user.enabled").first().waitFor();
    await axe("user page");
    await shot("user-detail");

    // Bob signs in from three places: the page lists them; one ends, then all.
    const bobs = [];
    for (let i = 0; i < 3; i++) bobs.push(await signIn(service, BOB.email, BOB.password));
    await page.reload();
    const sessions = page.locator("tr[data-session-id]");
    await expect.poll(() => sessions.count()).toBe(3);
    await axe("user page, sessions");
    await sessions
      .first()
      .getByRole("button", { name: /^End the session/ })
      .click();
    await confirmDialog("End session", {}, ["1 session will be signed out", "(the one from 127.0.0.1)"]);
    await expect.poll(() => sessions.count()).toBe(2);
    await page.getByRole("button", { name: "End all sessions" }).click();
    await page.locator("dialog[open]").waitFor();
    await axe("end all sessions dialog");
    await confirmDialog("End all sessions", {}, ["2 sessions will be signed out"]);
    await page.getByText("No live sessions").waitFor();
    for (const bob of bobs) expect((await service.call("/v1/session", { headers: { cookie: bob.cookie } })).status).toBe(401);

    // Your own sessions: this one, and the one setup opened; sign out the other.
    await open("account", "Your account");
    const mine = page.locator("tr[data-session-id]");
    await expect.poll(() => mine.count()).toBe(2);
    await page.locator("tr[data-current]").getByText("this session").waitFor();
    await axe("account, sessions");
    await page.getByRole("button", { name: "Sign out other sessions" }).click();
    await confirmDialog("Sign out other sessions", {}, ["1 session will be signed out", "This session stays signed in."]);
    await page.getByText("You are signed in here only.").waitFor();
    expect((await service.call("/v1/session", { headers: { cookie: admin.cookie } })).status).toBe(401);
  });

  it("a session that ends says so, and sign-in returns to the page that was asked for", async () => {
    const admin = await setupAdmin(service);
    await createKeyAsAdmin(admin.userId, "Any key");
    // A deep link while signed out: sign in, and land there.
    await page.goto(`${service.url}/dashboard/#/audit?action=key.created`);
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    expect(decodeURIComponent(page.url())).toContain("next=/audit?action=key.created");
    await axe("sign in");
    await page.getByLabel("Email").fill(ADMIN.email);
    await page.getByLabel("Password").fill("wrong password!!");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("The email or password is wrong").waitFor();
    await page.getByLabel("Password").fill(ADMIN.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Audit log" }).waitFor();
    expect(await page.getByLabel("Action").inputValue()).toBe("key.created");

    // Signed out in another tab: this one says so at its next call, and signing in comes back here.
    await open("all-keys", "All keys");
    const other = await context.newPage();
    await other.goto(`${service.url}/dashboard/#/keys`);
    await other.getByRole("button", { name: "Sign out" }).click();
    await other.getByRole("heading", { name: "Sign in" }).waitFor();
    await other.close();
    await page.getByLabel("Status").selectOption("active");
    await page.getByRole("heading", { name: "Signed out" }).waitFor();
    expect(await page.getByText("Something went wrong").count()).toBe(0);
    expect(await page.getByRole("navigation", { name: "Main" }).getByRole("link").count()).toBe(0);
    await axe("signed out");
    await page.getByRole("link", { name: "Sign in again" }).click();
    await page.getByLabel("Email").fill(ADMIN.email);
    await page.getByLabel("Password").fill(ADMIN.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "All keys" }).waitFor();

    // A list that fails to load says so, with a Retry that works once the server answers again.
    let failing = true;
    await page.route(`${service.url}/v1/keys?**`, async (route) => {
      if (failing)
        await route.fulfill({
          status: 503,
          contentType: "application/problem+json",
          body: JSON.stringify({ title: "Store unavailable", status: 503, code: "STORE_UNAVAILABLE", detail: "", request_id: "req-1" }),
        });
      else await route.continue();
    });
    await open("all-keys?environment=sandbox", "All keys");
    await page.getByText("The server could not do this just now").waitFor();
    await axe("list error");
    failing = false;
    await page.getByRole("button", { name: "Retry" }).click();
    await row("Any key").waitFor();
  });

  it("a person an administrator requires a new password from chooses one before anything else", async () => {
    const admin = await setupAdmin(service);
    const bob = await member(admin);
    const required = await service.call(`/v1/users/${bob.userId}`, {
      method: "PATCH",
      headers: jsonHeaders(service.adminKey),
      body: JSON.stringify({ must_change_password: true }),
    });
    expect(required.status).toBe(200);
    await page.goto(`${service.url}/dashboard/#/keys`);
    await page.getByLabel("Email").fill(BOB.email);
    await page.getByLabel("Password").fill(BOB.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Choose a new password" }).waitFor();
    await page.getByText("An administrator requires you to choose a new password").waitFor();
    await axe("forced password change");
    await page.getByRole("textbox", { name: "Current password" }).fill(BOB.password);
    await page.getByRole("textbox", { name: "New password", exact: true }).fill("bob's brand new password");
    await page.getByRole("textbox", { name: "New password again" }).fill("bob's brand new password");
    await page.getByRole("button", { name: "Change password" }).click();
    await page.getByRole("heading", { name: "My API keys" }).waitFor();
  });

  it("invites a person and resets a password with one-time links", async () => {
    await setupAdmin(service);
    await signInThroughPage(ADMIN.email, ADMIN.password);
    await open("users", "Users");
    const form = page.getByRole("form", { name: "Create a user" });
    await form.getByLabel("Email").fill("carol@example.com");
    await form.getByRole("button", { name: "Create user" }).click();
    const invite = page.locator("[data-link=invite] input");
    await invite.waitFor();
    const inviteUrl = await invite.inputValue();
    expect(inviteUrl).toContain("/dashboard/#/invite/");
    await row("carol@example.com").getByText("invited").waitFor();
    await axe("invite link shown");
    await shot("invite-link");

    await context.clearCookies();
    await page.goto(inviteUrl);
    await page.getByRole("heading", { name: "Accept your invitation" }).waitFor();
    expect(page.url()).not.toContain(inviteUrl.split("/").at(-1) as string);
    expect(await page.getByLabel("Email").inputValue()).toBe("carol@example.com");
    await axe("accept invitation");
    await page.getByRole("textbox", { name: "New password", exact: true }).fill("carol's new password");
    await page.getByRole("textbox", { name: "New password again" }).fill("carol's new password");
    await page.getByRole("button", { name: "Choose password and sign in" }).click();
    await page.getByRole("heading", { name: "My API keys" }).waitFor();
    await page.getByRole("navigation", { name: "Main" }).getByText("carol@example.com").waitFor();
    // Used once: the link says so.
    await page.goto(inviteUrl);
    await page.getByRole("heading", { name: "This link does not work" }).waitFor();

    await context.clearCookies();
    await signInThroughPage(ADMIN.email, ADMIN.password);
    await open("users", "Users");
    await row("carol@example.com").getByRole("link", { name: "carol@example.com" }).click();
    await page.getByRole("button", { name: "Password reset link" }).click();
    await confirmDialog("Create reset link");
    const reset = page.locator("[data-link=reset] input");
    await reset.waitFor();
    const resetUrl = await reset.inputValue();
    await context.clearCookies();
    await page.goto(resetUrl);
    await page.getByRole("heading", { name: "Choose a new password" }).waitFor();
    await page.getByRole("textbox", { name: "New password", exact: true }).fill("carol's newer password");
    await page.getByRole("textbox", { name: "New password again" }).fill("carol's newer typo");
    await page.getByRole("button", { name: "Set new password and sign in" }).click();
    await page.getByText("The two passwords differ").waitFor();
    await page.getByRole("textbox", { name: "New password again" }).fill("carol's newer password");
    await page.getByRole("button", { name: "Set new password and sign in" }).click();
    await page.getByRole("heading", { name: "My API keys" }).waitFor();
    await context.clearCookies();
    await signInThroughPage("carol@example.com", "carol's newer password");
  });

  it("shows a key's recent requests: when, outcome, address, route and missing scopes", async () => {
    const admin = await setupAdmin(service);
    const { id, key } = await createKeyAsAdmin(admin.userId, "Logged key", { scopes: ["read"] });
    expect((await fetch(`${service.url}/v1/authz?scopes=write`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(403);
    expect((await introspect(key)).status).toBe(200);
    await signInThroughPage(ADMIN.email, ADMIN.password);
    await open(`keys/${id}`, "Logged key");
    const log = page.getByRole("table", { name: "Recent requests with Logged key" });
    await log.waitFor();
    const denied = log.locator("tbody tr", { hasText: "INSUFFICIENT_SCOPE" });
    await denied.waitFor();
    expect(await denied.locator("td[data-label='Missing scopes']").textContent()).toBe("write");
    expect(await denied.locator("td[data-label='Client address']").textContent()).toBe("127.0.0.1");
    // Last used is fresh, with the address beside it.
    await page.locator("main").getByText("from 127.0.0.1").first().waitFor();
    await axe("request log");

    // An imported key of a legacy format: its format, its external id and a legacy badge, on its page and in the list.
    const legacy = `acme_${"0123456789abcdef".repeat(2)}${Date.now()}`;
    service.plant(legacy);
    const imported = await service.call("/v1/keys/import", {
      method: "POST",
      headers: { authorization: `Bearer ${service.adminKey}`, "content-type": "application/x-ndjson" },
      body: JSON.stringify({ owner: `user:${admin.userId}`, name: "Imported key", key: legacy, external_id: "crm-1042", scopes: ["read"] }),
    });
    expect(imported.json()).toMatchObject({ created: 1 });
    const legacyId = ((await (await introspect(legacy)).json()) as { id: string }).id;
    await open(`keys/${legacyId}`, "Imported key");
    const settings = page.locator("main dl").first();
    await settings.getByText("legacy (acme)").waitFor();
    expect(await settings.textContent()).toContain("crm-1042");
    expect(await settings.locator(".badge", { hasText: /^legacy$/ }).count()).toBe(1);
    await axe("legacy key detail");
    await open("keys", "My API keys");
    const row = page.locator("tbody tr", { hasText: "Imported key" });
    await row.waitFor();
    expect(await row.locator(".badge", { hasText: /^legacy$/ }).count()).toBe(1);
    expect(
      await page
        .locator("tbody tr", { hasText: "Logged key" })
        .locator(".badge", { hasText: /^legacy$/ })
        .count(),
    ).toBe(0);
  });
});
