import { connect } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { normalisedPath } from "../../src/core/url-text.js";
import { issueSetupToken, setupAdmin } from "../helpers/people.js";
import { rawRequest } from "../helpers/raw-http.js";
import { startTestService, type TestService } from "../helpers/service.js";

// The sign-in Origin/Sec-Fetch-Site check (login CSRF) must hold however the path is spelled:
// the router decodes `/v1/%73ession` to `/v1/session` (issue 19, item 7).

let service: TestService;

const EVIL = { origin: "https://evil.example", "content-type": "application/json" };
const code = (body: string) => (JSON.parse(body) as { code: string }).code;

/** A request line sent byte for byte: no client library resolves `..` or `.` first. */
function rawSocketPost(path: string, headers: Record<string, string>, body: string): Promise<{ status: number; body: string }> {
  const target = new URL(service.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(target.port), target.hostname, () => {
      const lines = Object.entries({
        ...headers,
        host: target.host,
        "content-length": String(Buffer.byteLength(body)),
        connection: "close",
      })
        .map(([name, value]) => `${name}: ${value}\r\n`)
        .join("");
      socket.write(`POST ${path} HTTP/1.1\r\n${lines}\r\n${body}`);
    });
    let received = "";
    socket.on("data", (chunk) => {
      received += String(chunk);
    });
    socket.on("error", reject);
    socket.on("end", () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 0);
      resolve({ status, body: received.slice(received.indexOf("\r\n\r\n") + 4) });
    });
  });
}

describe("login CSRF: the sign-in paths are recognised however they are spelled", () => {
  beforeEach(async () => {
    service = await startTestService();
  });
  afterEach(async () => service.close());

  it("a cross-site sign-in through /v1/%73ession with the right password is refused, and opens no session", async () => {
    await setupAdmin(service);
    const response = await rawRequest(service.url, {
      method: "POST",
      path: "/v1/%73ession",
      headers: EVIL,
      body: JSON.stringify({ email: "admin@example.com", password: "correct horse battery" }),
    });
    expect(response.status).toBe(403);
    expect(code(response.body)).toBe("CSRF_FAILED");
    expect(response.headers["set-cookie"]).toBeUndefined();
  });

  it("a cross-site setup through /v1/setu%70 with a valid token is refused, and creates no admin", async () => {
    const token = await issueSetupToken(service);
    const response = await rawRequest(service.url, {
      method: "POST",
      path: "/v1/setu%70",
      headers: { ...EVIL, "sec-fetch-site": "cross-site" },
      body: JSON.stringify({ token, email: "mallory@example.com", password: "mallory's own password" }),
    });
    expect(response.status).toBe(403);
    expect(code(response.body)).toBe("CSRF_FAILED");
    expect((await service.call("/v1/setup")).json()).toEqual({ needed: true });
  });

  it("Sec-Fetch-Site: cross-site alone is refused on an encoded path too", async () => {
    const response = await rawRequest(service.url, {
      method: "POST",
      path: "/v1/sessio%6E",
      headers: { "content-type": "application/json", "sec-fetch-site": "cross-site" },
      body: JSON.stringify({ email: "admin@example.com", password: "correct horse battery" }),
    });
    expect(response.status).toBe(403);
    expect(code(response.body)).toBe("CSRF_FAILED");
  });

  for (const path of ["/v1/x/../session", "/v1/%2e%2e/v1/./setup", "/v1//se%73sion/"]) {
    it(`${path} (a proxy may resolve it to a sign-in path) is refused cross-site`, async () => {
      const response = await rawSocketPost(path, EVIL, JSON.stringify({ email: "admin@example.com", password: "x".repeat(16) }));
      expect(response.status).toBe(403);
      expect(code(response.body)).toBe("CSRF_FAILED");
    });
  }

  it("API clients (no Origin, no Sec-Fetch-Site) still reach the encoded path", async () => {
    await setupAdmin(service);
    const response = await rawRequest(service.url, {
      method: "POST",
      path: "/v1/%73ession",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "admin@example.com", password: "correct horse battery" }),
    });
    expect(response.status).toBe(201);
  });
});

describe("normalisedPath", () => {
  it.each([
    ["/v1/%73ession", "/v1/session"],
    ["/v1/setu%70?next=/", "/v1/setup"],
    ["/v1/%2573ession", "/v1/session"],
    ["/v1/x/../session", "/v1/session"],
    ["/v1/./setup/", "/v1/setup"],
    ["/../../v1/session", "/v1/session"],
    ["/v1\\session", "/v1/session"],
    ["/V1/SESSION", "/v1/session"],
    ["/v1/%E0%A4%A/session", "/v1/%e0%a4%a/session"],
    ["/v1/keys", "/v1/keys"],
  ])("%s → %s", (url, expected) => {
    expect(normalisedPath(url)).toBe(expected);
  });
});
