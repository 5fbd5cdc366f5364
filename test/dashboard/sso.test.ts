// The dashboard's single sign-on in Chromium (docs/dashboard.md, "Single sign-on"): a plain link, no inline script.
import type { BrowserContext } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { findChromium, launchBrowser } from "../helpers/browser.js";
import { CALLBACK, CLIENT_ID, CLIENT_SECRET, idp, people, startProvider, type TestProvider } from "../helpers/oidc-provider.js";
import { startTestService, type TestService } from "../helpers/service.js";

const chromium = await findChromium();
let browser: Awaited<ReturnType<typeof launchBrowser>>;
let context: BrowserContext;
let provider: TestProvider;
let service: TestService;

beforeAll(async () => {
  if (!chromium) return;
  browser = await launchBrowser(chromium);
  context = browser.context;
}, 60_000);
afterAll(async () => {
  await browser?.close();
});
afterEach(async () => {
  await service?.close();
  await provider?.close();
});

async function start(env: Record<string, string> = {}) {
  provider = await startProvider();
  service = await startTestService({
    env: {
      KEYWARD_OIDC_ISSUER: provider.url,
      KEYWARD_OIDC_CLIENT_ID: CLIENT_ID,
      KEYWARD_OIDC_CLIENT_SECRET: CLIENT_SECRET,
      KEYWARD_OIDC_ADMIN_GROUPS: "keyward-admins",
      ...env,
    },
  });
  provider.start(`${service.url}${CALLBACK}`);
  await context.clearCookies();
}

describe.skipIf(!chromium)("dashboard single sign-on", () => {
  it("signs in with SSO through a plain link and lands on the page asked for", async () => {
    await start();
    people.set("sso-admin", { email: "sso-admin@example.com", email_verified: true, groups: ["keyward-admins"] });
    idp.signingIn = "sso-admin";
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(`${service.url}/dashboard/#/signin?next=%2Fkeys`);
    const link = page.getByRole("link", { name: "Sign in with SSO" });
    await expect(link.getAttribute("href")).resolves.toBe(`/v1/session/oidc/start?return_to=${encodeURIComponent("/dashboard/#/keys")}`);
    // The password form is there too while passwords are on.
    await expect(page.getByLabel("Password").count()).resolves.toBe(1);
    await link.click();
    await page.waitForURL(`${service.url}/dashboard/#/keys`);
    await expect(page.getByText("sso-admin@example.com").first().waitFor()).resolves.toBeUndefined();
    expect(errors).toEqual([]);
    await page.close();
  });

  it("hides the password form when passwords are off, and explains an SSO failure", async () => {
    await start({ KEYWARD_PASSWORD_SIGN_IN: "off" });
    const page = await context.newPage();
    await page.goto(`${service.url}/dashboard/#/signin?error=sso_account_disabled`);
    await page.getByRole("link", { name: "Sign in with SSO" }).waitFor();
    await expect(page.getByRole("alert").textContent()).resolves.toContain("Your Keyward account is disabled");
    await expect(page.getByLabel("Password").count()).resolves.toBe(0);
    await page.close();
  });
});
