import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { expectAccessible, findChromium, launchBrowser, SCREENSHOT_DIR } from "../helpers/browser.js";
import { createMember, setupAdmin } from "../helpers/people.js";
import { jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

// The console's organizations (docs/dashboard.md, "Organizations"), in Chromium: an administrator
// creates one, sets the quota its keys share and adds a member as developer; the member finds it,
// creates a key in it, and is offered no member management and no shared-limit form.

const chromium = await findChromium();
let browser: Awaited<ReturnType<typeof launchBrowser>>;
let context: BrowserContext;
let service: TestService;
let page: Page;
let external: string[];
let pageErrors: string[];

const ADMIN = { email: "admin@example.com", password: "correct horse battery" };
const DEV = { email: "dev@acme.test", password: "member password 1" };

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
  service = await startTestService();
  await context.clearCookies();
  page = await context.newPage();
  external = [];
  pageErrors = [];
  page.on("request", (request) => {
    const url = request.url();
    if (!url.startsWith(service.url) && !url.startsWith("data:")) external.push(url);
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

const axe = (state: string) => expectAccessible(page, state);
const navLink = (name: string) => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true });

async function signInThroughPage(email: string, password: string): Promise<void> {
  await page.goto(`${service.url}/dashboard/#/signin`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "My API keys", level: 1 }).waitFor();
}

async function signOut(): Promise<void> {
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("button", { name: "Sign in" }).waitFor();
}

/** The open dialog: fills its fields, checks what it says, presses `button`. */
async function confirmDialog(button: string, fields: Record<string, string> = {}, says: string[] = []): Promise<void> {
  const dialog = page.locator("dialog[open]");
  await dialog.waitFor();
  for (const text of says) expect(await dialog.textContent()).toContain(text);
  for (const [label, value] of Object.entries(fields)) await dialog.getByLabel(label).selectOption(value);
  await dialog.getByRole("button", { name: button, exact: true }).click();
  await dialog.waitFor({ state: "detached" });
}

const api = async (path: string) => {
  const reply = await service.call(path, { headers: jsonHeaders(service.adminKey) });
  return reply.json() as Record<string, unknown> & { data?: Array<Record<string, unknown>> };
};

describe.runIf(chromium)("dashboard organizations", { timeout: 180_000 }, () => {
  it("an administrator creates an organization, shares a quota and adds a developer, who creates a key in it and manages no member", async () => {
    const admin = await setupAdmin(service, ADMIN.email, ADMIN.password);
    // The person to add: a console member (made through the API, which leaves no cookie in the browser).
    await createMember(service, admin, DEV.email, DEV.password);

    await signInThroughPage(ADMIN.email, ADMIN.password);
    await navLink("Organizations").click();
    await page.getByRole("heading", { name: "Organizations", level: 1 }).waitFor();
    await page.getByText("No organizations yet: create one above.").waitFor();
    await axe("organizations, empty");

    // The new organization: a name is needed, the id is checked as the server checks it.
    const create = page.getByRole("form", { name: "New organization" });
    await create.getByLabel("Id (optional)").fill("acme inc");
    await create.getByRole("button", { name: "Create organization" }).click();
    const nameField = create.getByLabel("Name", { exact: true });
    await expect.poll(() => nameField.getAttribute("aria-invalid")).toBe("true");
    await expect.poll(() => create.getByLabel("Id (optional)").getAttribute("aria-invalid")).toBe("true");
    await nameField.fill("Acme Inc.");
    await create.getByLabel("Id (optional)").fill("acme");
    await create.getByRole("button", { name: "Create organization" }).click();
    await page.getByRole("heading", { name: "Acme Inc.", level: 1 }).waitFor();
    expect(page.url()).toContain("#/organizations/acme");

    // Members: the administrator may give any role; the developer is added by email.
    const add = page.getByRole("form", { name: "Add a member" });
    const roles = await add
      .getByLabel("Role")
      .locator("option")
      .evaluateAll((options) => options.map((o) => o.getAttribute("value")));
    expect(roles).toEqual(["owner", "admin", "developer", "viewer"]);
    await add.getByLabel("Email").fill("nobody@acme.test");
    await add.getByRole("button", { name: "Add member" }).click();
    await add.getByText("No one with this email uses the console").waitFor();
    await add.getByLabel("Email").fill(DEV.email);
    await add.getByLabel("Role").selectOption("developer");
    await add.getByRole("button", { name: "Add member" }).click();
    const devRow = page.locator("tr", { hasText: DEV.email });
    await devRow.getByText("Developer").waitFor();
    await devRow.getByRole("button", { name: `Change role of ${DEV.email}` }).waitFor();

    // The shared quota: set by the administrator, after a confirmation that says what it does.
    const limits = page.getByRole("form", { name: "Shared limits" });
    await limits.getByLabel("Quota", { exact: true }).selectOption("period");
    await limits.getByLabel("Quota: requests").fill("1000");
    await limits.getByLabel("Quota: period").selectOption("day");
    await limits.getByRole("button", { name: "Save shared limits" }).click();
    await confirmDialog("Save shared limits", {}, ["quota: 1,000 per day", "draws from these together"]);
    await expect
      .poll(async () => (await api("/v1/organizations/acme")).shared_limits)
      .toEqual({ rate_limit: null, concurrency: null, quota: { limit: 1000, period: "day" } });
    await page.getByRole("heading", { name: "Acme Inc.", level: 1 }).waitFor();
    await axe("organization, administrator");

    // The organization is an owner choice where the console filters by owner.
    await page.goto(`${service.url}/dashboard/#/usage`);
    await page.getByRole("textbox", { name: "Owner" }).fill("organization:acme");
    await page.getByRole("button", { name: "Show" }).click();
    await page.getByRole("heading", { name: "Keys of organization acme" }).waitFor();
    await signOut();

    // The developer: finds the organization with their role, reads the shared limits, manages no one.
    await signInThroughPage(DEV.email, DEV.password);
    await navLink("Organizations").click();
    const listed = page.locator("tr", { hasText: "Acme Inc." });
    await listed.getByText("Developer").waitFor();
    await axe("organizations, member");
    await listed.getByRole("link", { name: "Acme Inc." }).click();
    await page.getByRole("heading", { name: "Acme Inc.", level: 1 }).waitFor();
    await page.getByText("You are a developer here: you create keys and manage the ones you created").waitFor();
    await page.locator("dd", { hasText: "1,000 per day" }).waitFor();
    await page.locator("tr", { hasText: DEV.email }).getByRole("button", { name: "Leave organization" }).waitFor();
    expect(await page.getByRole("form", { name: "Add a member" }).count()).toBe(0);
    expect(await page.getByRole("form", { name: "Shared limits" }).count()).toBe(0);
    expect(await page.getByRole("form", { name: "Rename the organization" }).count()).toBe(0);
    expect(await page.getByRole("button", { name: /^Change role of|^Remove / }).count()).toBe(0);

    // A key in the organization, shown once.
    const form = page.getByRole("form", { name: "Create a key for Acme Inc." });
    await form.getByLabel("Name", { exact: true }).fill("Acme CI");
    await form.getByRole("button", { name: "Create key" }).click();
    const shown = page.locator("#new-key");
    await shown.waitFor();
    await expect.poll(() => shown.inputValue()).not.toBe("");
    const key = await shown.inputValue();
    service.plant(key);
    expect(key).toMatch(/^kw_test_/);
    await axe("organization, developer, new key shown");
    await page.getByRole("button", { name: "I have stored it" }).click();
    await page.locator("tbody tr", { hasText: "Acme CI" }).waitFor();
    await page.screenshot({ path: join(SCREENSHOT_DIR, "organization.png"), fullPage: true });
    const keys = await api("/v1/keys?owner_type=organization&owner_id=acme");
    expect(keys.data?.map((k) => [k.name, k.owner])).toEqual([["Acme CI", { type: "organization", id: "acme" }]]);
    // The key draws from the quota the organization shares.
    const introspected = await fetch(`${service.url}/v1/introspect`, { headers: { authorization: `Bearer ${key}` } });
    expect(((await introspected.json()) as { limits: { owner?: { quota?: unknown } } }).limits.owner?.quota).toMatchObject({ limit: 1000 });
    await signOut();

    // The administrator makes the developer a viewer: a dialog offering the roles, saying what changes.
    await signInThroughPage(ADMIN.email, ADMIN.password);
    await page.goto(`${service.url}/dashboard/#/organizations/acme`);
    await page.getByRole("heading", { name: "Acme Inc.", level: 1 }).waitFor();
    await page.getByRole("button", { name: `Change role of ${DEV.email}` }).click();
    await confirmDialog("Change role", { "New role": "viewer" }, [`${DEV.email} is developer of Acme Inc.`]);
    await page.locator("tr", { hasText: DEV.email }).getByText("Viewer").waitFor();
    await signOut();

    // The viewer reads the keys and acts on none; leaving says what it does, and the organization is gone from their list.
    await signInThroughPage(DEV.email, DEV.password);
    await page.goto(`${service.url}/dashboard/#/organizations/acme`);
    await page.getByText("You are a viewer here").waitFor();
    const keyRow = page.locator("tbody tr", { hasText: "Acme CI" });
    await keyRow.getByRole("link", { name: "Details of Acme CI" }).waitFor();
    expect(await page.getByRole("form", { name: /^Create a key/ }).count()).toBe(0);
    expect(await keyRow.getByRole("button").count()).toBe(0);
    await axe("organization, viewer");
    await keyRow.getByRole("link", { name: "Details of Acme CI" }).click();
    await page.getByRole("heading", { name: "Acme CI", level: 1 }).waitFor();
    await page.getByText("As a viewer of Acme Inc. you read its keys").waitFor();
    expect(await page.getByRole("button", { name: /^(Rotate|Revoke|Disable)/ }).count()).toBe(0);
    expect(await navLink("Organizations").getAttribute("aria-current")).toBe("page");
    await page.goto(`${service.url}/dashboard/#/organizations/acme`);
    await page.getByRole("button", { name: "Leave organization" }).click();
    await confirmDialog("Leave organization", {}, [
      "You lose access to Acme Inc.'s keys",
      "The keys you created stay with the organization",
    ]);
    await page.getByText("You belong to no organization yet").waitFor();
    expect((await service.call("/v1/organizations/acme/members", { headers: jsonHeaders(service.adminKey) })).json()).toEqual({ data: [] });
  });
});
