import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawRequest } from "../helpers/raw-http.js";
import { startTestService, type TestService } from "../helpers/service.js";

let service: TestService;
beforeAll(async () => {
  service = await startTestService();
});
afterAll(async () => {
  await service.close();
});

/** SECURITY.md 23: no CORS on the management API; a browser on another origin gets no grant. */
describe("CORS", () => {
  it("a preflight from another origin gets no Access-Control-Allow-* header", async () => {
    const response = await rawRequest(service.url, {
      method: "OPTIONS",
      path: "/v1/keys",
      headers: {
        origin: "https://evil.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization",
      },
    });
    expect(Object.keys(response.headers).filter((name) => name.startsWith("access-control-"))).toEqual([]);
  });

  it("a cross-origin GET with credentials is answered without Access-Control-Allow-Origin", async () => {
    const response = await rawRequest(service.url, {
      path: "/v1/keys",
      headers: { origin: "https://evil.example", authorization: `Bearer ${service.adminKey}` },
    });
    expect(response.status).toBe(200);
    expect(response.headers["access-control-allow-origin"]).toBeUndefined();
    expect(response.headers["access-control-allow-credentials"]).toBeUndefined();
  });
});

/** SECURITY.md 24: a strict CSP with no inline script, no framing, no sniffing, no referrer. */
describe("dashboard and API response headers", () => {
  it("the dashboard page allows scripts from itself only and cannot be framed", async () => {
    const response = await rawRequest(service.url, { path: "/dashboard/" });
    expect(response.status).toBe(200);
    const csp = String(response.headers["content-security-policy"]);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    expect(csp).not.toContain("unsafe-eval");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(response.headers["x-content-type-options"]).toBe("nosniff");
    expect(response.headers["referrer-policy"]).toBe("no-referrer");
    // No inline script in the page itself: every <script> names a same-origin file.
    expect(response.body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/i);
  });

  it("API answers are never framed or sniffed either", async () => {
    const response = await rawRequest(service.url, { path: "/v1/keys", headers: { authorization: `Bearer ${service.adminKey}` } });
    expect(response.headers["x-content-type-options"]).toBe("nosniff");
    expect(String(response.headers["content-security-policy"])).toContain("frame-ancestors 'none'");
    expect(response.headers["x-frame-options"]).toBe("DENY");
  });
});
