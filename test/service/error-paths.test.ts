import { afterEach, expect, it } from "vitest";
import type { KeyStore } from "../../src/ports/key-store.js";
import type { SqliteKeyStore } from "../../src/stores/sqlite/sqlite-key-store.js";
import { createKeyOverHttp, jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

let service: TestService | undefined;
afterEach(async () => {
  await service?.close();
  service = undefined;
});

// What a leaky error would carry: SQL, a digest-like value, a path and an environment variable.
const SECRET_DETAIL = "SELECT * FROM keys WHERE digest = 'f00dfeed' /work/secret KEYWARD_HASH_SECRET=hunter2";

/** A store whose writes fail with a detailed internal error, as a broken database would. */
function failingWrites(store: SqliteKeyStore): KeyStore {
  return new Proxy(store, {
    get(target, property, receiver) {
      if (property === "updateKey") return async () => Promise.reject(new Error(SECRET_DETAIL));
      const value = Reflect.get(target, property, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** SECURITY.md 13: an unexpected error gives a generic problem with a request id, nothing more. */
it("a database error on a management route answers a generic problem with a request id, and no detail", async () => {
  service = await startTestService({ wrapStore: failingWrites });
  const created = await createKeyOverHttp(service);
  const response = await service.call(`/v1/keys/${created.id}`, {
    method: "PATCH",
    headers: { ...jsonHeaders(service.adminKey), "x-request-id": "trace-13" },
    body: JSON.stringify({ name: "renamed" }),
  });
  expect(response.status).toBe(500);
  expect(response.headers.get("content-type")).toContain("application/problem+json");
  const body = response.json() as Record<string, unknown>;
  expect(body).toMatchObject({ code: "INTERNAL_ERROR", status: 500, request_id: "trace-13" });
  for (const leak of ["SELECT", "digest", "f00dfeed", "/work/secret", "hunter2", "at ", "Error:"])
    expect(response.text).not.toContain(leak);
  expect(Object.keys(body).sort()).toEqual(["code", "detail", "request_id", "status", "title", "type"]);
});
