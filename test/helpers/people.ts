import { Accounts } from "../../src/engine/accounts.js";
import { accountStoreFor } from "../../src/service/account-store-factory.js";
import type { TestService } from "./service.js";

/** A one-time setup token for a test service with no users yet, as `keyward serve` prints on first start. */
export async function issueSetupToken(service: TestService): Promise<string> {
  const store = accountStoreFor(service.store);
  if (!store) throw new Error("no account store");
  const token = await new Accounts(service.keyward, store).issueSetupToken();
  if (!token) throw new Error("setup is no longer possible");
  return token;
}

export interface SignedIn {
  cookie: string;
  csrf: string;
  userId: string;
}

/** Session headers for a JSON call, as the dashboard sends them from its own origin. */
export function sessionHeaders(service: TestService, who: SignedIn, extra: Record<string, string> = {}): Record<string, string> {
  return { cookie: who.cookie, "x-csrf-token": who.csrf, "content-type": "application/json", origin: service.url, ...extra };
}

function sessionCookie(setCookie: string | null): string {
  const match = /kw_session=([^;]+)/.exec(setCookie ?? "");
  if (!match) throw new Error(`no session cookie in ${setCookie}`);
  return `kw_session=${match[1]}`;
}

export async function signIn(service: TestService, email: string, password: string): Promise<SignedIn> {
  const response = await service.call("/v1/session", {
    method: "POST",
    headers: { "content-type": "application/json", origin: service.url },
    body: JSON.stringify({ email, password }),
  });
  if (response.status !== 201) throw new Error(`sign-in failed: ${response.status} ${response.text}`);
  const body = response.json() as { csrf_token: string; user: { id: string } };
  return { cookie: sessionCookie(response.headers.get("set-cookie")), csrf: body.csrf_token, userId: body.user.id };
}

/** Creates the first admin through the setup route and returns its session. */
export async function setupAdmin(service: TestService, email = "admin@example.com", password = "correct horse battery"): Promise<SignedIn> {
  const token = await issueSetupToken(service);
  const response = await service.call("/v1/setup", {
    method: "POST",
    headers: { "content-type": "application/json", origin: service.url },
    body: JSON.stringify({ token, email, password }),
  });
  if (response.status !== 201) throw new Error(`setup failed: ${response.status} ${response.text}`);
  const body = response.json() as { csrf_token: string; user: { id: string } };
  return { cookie: sessionCookie(response.headers.get("set-cookie")), csrf: body.csrf_token, userId: body.user.id };
}

/** Creates a member as the admin and signs them in. */
export async function createMember(
  service: TestService,
  admin: SignedIn,
  email: string,
  password = "member password 1",
): Promise<SignedIn> {
  const response = await service.call("/v1/users", {
    method: "POST",
    headers: sessionHeaders(service, admin),
    body: JSON.stringify({ email, password, role: "member" }),
  });
  if (response.status !== 201) throw new Error(`user create failed: ${response.status} ${response.text}`);
  return signIn(service, email, password);
}
