import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawRequest } from "../helpers/raw-http.js";
import { createKeyOverHttp, startTestService, type TestService } from "../helpers/service.js";

// Keys inside query values are refused (KEY_IN_URL) like whole-value ones; a key in the path,
// percent-encoded or not, is refused too and never reaches the request log (issue 19, item 8).

let service: TestService;
let key: string;
beforeAll(async () => {
  // startTestService turns request logging on.
  service = await startTestService();
  key = (await createKeyOverHttp(service)).key;
});
afterAll(async () => service.close());

const code = (body: string) => (JSON.parse(body) as { code: string }).code;
const secretOf = (k: string) => k.slice(-38);
const everyCharEscaped = (text: string) => [...text].map((c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`).join("");

describe("a key inside a query value is KEY_IN_URL, over HTTP", () => {
  const queries: [string, (k: string) => string][] = [
    ["?auth=Bearer+<key>", (k) => `auth=Bearer+${k}`],
    ["?q=x,<key>", (k) => `q=x,${k}`],
    ["?q=x%2C<key, underscores encoded>", (k) => `q=x%2C${k.replaceAll("_", "%5F")}`],
    ["?q=<key, every character encoded>", (k) => `q=${everyCharEscaped(k)}`],
  ];
  for (const [name, query] of queries) {
    for (const path of ["/v1/introspect", "/v1/authz"]) {
      it(`${path}${name} → 400 KEY_IN_URL, the key in no answer or log`, async () => {
        // The key in a header as well: the request would otherwise pass.
        const response = await rawRequest(service.url, { path: `${path}?${query(key)}`, headers: { "x-api-key": key } });
        expect(response.status).toBe(400);
        expect(code(response.body)).toBe("KEY_IN_URL");
        expect(JSON.stringify(response)).not.toContain(secretOf(key));
        expect(service.logs.join("")).not.toContain(secretOf(key));
      });
    }
  }

  it("a query with no key in it is answered as usual", async () => {
    const response = await rawRequest(service.url, { path: "/v1/introspect?q=kw_test_&note=caf%C3%A9", headers: { "x-api-key": key } });
    expect(response.status).toBe(200);
  });
});

describe("a key in the path is refused (KEY_IN_URL) and scrubbed from the request log", () => {
  for (const [name, encode] of [
    ["as it is", (k: string) => k],
    ["underscores percent-encoded", (k: string) => k.replaceAll("_", "%5F")],
    ["every character percent-encoded", everyCharEscaped],
  ] as const) {
    it(`${name}`, async () => {
      const before = service.logs.length;
      const response = await rawRequest(service.url, { path: `/v1/owners/user/${encode(key)}`, headers: { "x-api-key": key } });
      expect(response.status).toBe(400);
      expect(code(response.body)).toBe("KEY_IN_URL");
      const lines = service.logs.slice(before).join("");
      expect(lines).toContain('"msg":"incoming request"');
      expect(lines).toContain("[REDACTED]");
      expect(lines).not.toContain(secretOf(key));
      // Nor any 8-character run of the secret, in case a form partly encoded slips through.
      for (let i = 0; i + 8 <= 38; i += 8) expect(lines).not.toContain(secretOf(key).slice(i, i + 8));
    });
  }
});
