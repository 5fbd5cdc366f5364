import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createMember, type SignedIn, sessionHeaders, setupAdmin } from "../helpers/people.js";
import { startTestService, type TestService } from "../helpers/service.js";

// Adding a member is decided before the user named is looked up: a member who may not add anyone
// (a viewer, a developer) cannot tell a console user's email from an unknown one by the answer.

let service: TestService;
let admin: SignedIn;

beforeEach(async () => {
  service = await startTestService();
  admin = await setupAdmin(service);
});
afterEach(async () => {
  await service.close();
});

const post = (who: SignedIn, path: string, body: unknown) =>
  service.call(path, { method: "POST", headers: sessionHeaders(service, who), body: JSON.stringify(body) });

describe("adding an organization member", () => {
  it("refuses those who may not add before saying whether the email is a console user", async () => {
    expect((await post(admin, "/v1/organizations", { id: "acme", name: "Acme" })).status).toBe(201);
    const viewer = await createMember(service, admin, "vic@acme.test");
    const developer = await createMember(service, admin, "dev@acme.test");
    await createMember(service, admin, "known@else.test");
    expect((await post(admin, "/v1/organizations/acme/members", { email: "vic@acme.test", role: "viewer" })).status).toBe(201);
    expect((await post(admin, "/v1/organizations/acme/members", { email: "dev@acme.test", role: "developer" })).status).toBe(201);
    for (const who of [viewer, developer])
      for (const email of ["known@else.test", "nobody@else.test"]) {
        const answer = await post(who, "/v1/organizations/acme/members", { email, role: "viewer" });
        expect(answer.status, `${email}: ${answer.text}`).toBe(403);
      }
    // An administrator is told who is unknown.
    expect((await post(admin, "/v1/organizations/acme/members", { email: "nobody@else.test", role: "viewer" })).status).toBe(404);
  });
});
