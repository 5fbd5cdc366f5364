import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  collectCidr,
  collectMetadata,
  parseConcurrency,
  parseExpiresAt,
  parseExpiresIn,
  parseMetadataJson,
  parseQuota,
  parseQuotaRefill,
  parseRateLimit,
} from "../../src/cli/key-options.js";
import { runCliProcess } from "../helpers/process.js";

describe("key setting flags, parsed into the API's fields", () => {
  it("--rate-limit: requests per second, minute, hour, day, or a window of several", () => {
    expect(parseRateLimit("5/s")).toEqual({ requests: 5, per_seconds: 1 });
    expect(parseRateLimit("100/m")).toEqual({ requests: 100, per_seconds: 60 });
    expect(parseRateLimit("1000/h")).toEqual({ requests: 1000, per_seconds: 3600 });
    expect(parseRateLimit("50000/day")).toEqual({ requests: 50000, per_seconds: 86_400 });
    expect(parseRateLimit("300 / 5m")).toEqual({ requests: 300, per_seconds: 300 });
    expect(parseRateLimit("none")).toBeNull();
    for (const bad of ["5", "5/x", "0/s", "5/2d", "1.5/s", "-1/s", "5/s/s", "2000000/s"]) expect(() => parseRateLimit(bad), bad).toThrow();
  });

  it("--quota: per day or month, or credits; --quota-refill", () => {
    expect(parseQuota("1000/day")).toEqual({ limit: 1000, period: "day" });
    expect(parseQuota("50000/Month")).toEqual({ limit: 50000, period: "month" });
    expect(parseQuota("500")).toEqual({ remaining: 500 });
    expect(parseQuota("none")).toBeNull();
    for (const bad of ["1000/week", "0/day", "abc", "1000/"]) expect(() => parseQuota(bad), bad).toThrow();
    expect(parseQuotaRefill("100/1h")).toEqual({ amount: 100, every_seconds: 3600 });
    expect(parseQuotaRefill("10/d")).toEqual({ amount: 10, every_seconds: 86_400 });
    for (const bad of ["100", "0/1h", "100/2y", "100/60w"]) expect(() => parseQuotaRefill(bad), bad).toThrow();
  });

  it("--concurrency, --cidr, --metadata, --metadata-json, --expires-in, --expires-at", () => {
    expect(parseConcurrency("4")).toBe(4);
    expect(parseConcurrency("none")).toBeNull();
    for (const bad of ["0", "10001", "two", "1e3"]) expect(() => parseConcurrency(bad), bad).toThrow();
    expect(collectCidr("10.0.0.0/8", collectCidr("203.0.113.7", undefined))).toEqual(["203.0.113.7", "10.0.0.0/8"]);
    expect(() => collectCidr("10.0.0.0/33", undefined)).toThrow(/not an IPv4 or IPv6/);
    expect(collectMetadata("team=pay=ments", collectMetadata("tier=gold", undefined))).toEqual({ tier: "gold", team: "pay=ments" });
    expect(() => collectMetadata("novalue", undefined)).toThrow(/key=value/);
    expect(() => collectMetadata("a=2", { a: "1" })).toThrow(/twice/);
    expect(parseMetadataJson('{"a": {"b": [1, 2]}}')).toEqual({ a: { b: [1, 2] } });
    for (const bad of ["[1]", "{nope", "3"]) expect(() => parseMetadataJson(bad), bad).toThrow();
    expect(parseExpiresIn("30d")).toBe(30 * 86_400_000);
    expect(parseExpiresIn("never")).toBeNull();
    expect(() => parseExpiresIn("30 days")).toThrow();
    expect(parseExpiresAt("2027-01-31T00:00:00Z")).toBe(Date.UTC(2027, 0, 31));
    expect(() => parseExpiresAt("2027-01-31")).toThrow(/RFC 3339/);
  });
});

describe("keyward keys create / update / end-grace with settings", () => {
  let dir: string;
  let env: Record<string, string>;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "keyward-cli-settings-"));
    env = { KEYWARD_DATABASE_URL: `sqlite:${join(dir, "keyward.db")}` };
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const json = (stdout: string) => JSON.parse(stdout) as Record<string, unknown>;

  it("create takes every setting the API does, update changes only what it is given", async () => {
    const created = await runCliProcess(
      [
        "keys",
        "create",
        "--owner",
        "application:billing",
        "--name",
        "billing",
        "--scopes",
        "read",
        "--rate-limit",
        "100/m",
        "--burst",
        "20",
        "--concurrency",
        "4",
        "--quota",
        "500",
        "--quota-refill",
        "100/1h",
        "--cidr",
        "10.0.0.0/8",
        "--cidr",
        "2001:db8::/32",
        "--metadata",
        "team=payments",
        "--metadata",
        "tier=gold",
        "--expires-at",
        "2099-01-01T00:00:00Z",
        "--json",
      ],
      env,
    );
    expect(created.stderr).toBe("");
    expect(created.code).toBe(0);
    const key = json(created.stdout);
    expect(key).toMatchObject({
      rate_limit: { requests: 100, per_seconds: 60, burst: 20 },
      concurrency: 4,
      quota: { remaining: 500, refill: { amount: 100, every_seconds: 3600 } },
      allowed_cidrs: ["10.0.0.0/8", "2001:db8::/32"],
      metadata: { team: "payments", tier: "gold" },
      expires_at: "2099-01-01T00:00:00.000Z",
    });

    const updated = await runCliProcess(
      [
        "keys",
        "update",
        String(key.id),
        "--rate-limit",
        "5/s",
        "--quota",
        "1000/day",
        "--cidr",
        "none",
        "--metadata-json",
        '{"team": "search", "n": 2}',
        "--expires-in",
        "30d",
        "--disable",
        "--json",
      ],
      env,
    );
    expect(updated.stderr).toBe("");
    expect(updated.code).toBe(0);
    const after = json(updated.stdout);
    expect(after).toMatchObject({
      name: "billing",
      status: "disabled",
      rate_limit: { requests: 5, per_seconds: 1 },
      concurrency: 4,
      quota: { limit: 1000, period: "day" },
      allowed_cidrs: [],
      metadata: { team: "search", n: 2 },
    });
    expect(Date.parse(String(after.expires_at)) - Date.now()).toBeGreaterThan(29 * 86_400_000);

    const cleared = json(
      (
        await runCliProcess(
          [
            "keys",
            "update",
            String(key.id),
            "--rate-limit",
            "none",
            "--concurrency",
            "none",
            "--expires-at",
            "never",
            "--enable",
            "--json",
          ],
          env,
        )
      ).stdout,
    );
    expect(cleared).toMatchObject({ status: "active", rate_limit: null, concurrency: null, expires_at: null, quota: { limit: 1000 } });
    const shown = await runCliProcess(["keys", "show", String(key.id)], env);
    expect(shown.stdout).toContain("quota        1000 a day");
  });

  it("refuses bad values and contradictory flags with exit code 2 and a message naming the flag", async () => {
    const base = ["keys", "create", "--owner", "user:alice", "--name", "x"];
    const cases: [string[], RegExp][] = [
      [[...base, "--rate-limit", "5/x"], /--rate-limit/],
      [[...base, "--concurrency", "0"], /--concurrency/],
      [[...base, "--quota", "10/week"], /--quota/],
      [[...base, "--cidr", "300.1.1.1"], /--cidr/],
      [[...base, "--metadata", "oops"], /--metadata/],
      [[...base, "--metadata-json", "[1]"], /--metadata-json/],
      [[...base, "--expires-in", "soon"], /--expires-in/],
      [[...base, "--burst", "3"], /--burst needs --rate-limit/],
      [[...base, "--quota", "100/day", "--quota-refill", "1/1h"], /--quota-refill needs --quota <n>/],
      [[...base, "--expires-in", "1d", "--expires-at", "2099-01-01T00:00:00Z"], /not both/],
      [[...base, "--metadata", "a=b", "--metadata-json", "{}"], /not both/],
      [[...base, "--cidr", "none", "--cidr", "10.0.0.0/8"], /alone/],
      [[...base, "--grantable-environments", "sandbox"], /--grantable-environments needs --grantable-scopes/],
      [["keys", "update", "key_AAAAAAAAAAAAAAAAAAAA"], /nothing to change/],
      [["keys", "update", "key_AAAAAAAAAAAAAAAAAAAA", "--enable", "--disable"], /not both/],
    ];
    for (const [args, message] of cases) {
      const result = await runCliProcess(args, env);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stderr, args.join(" ")).toMatch(message);
      expect(result.stdout, args.join(" ")).toBe("");
    }
  });

  it("creates a key with a delegation ceiling: what a portal:create or keys:write key may confer", async () => {
    const created = json(
      (
        await runCliProcess(
          [
            "keys",
            "create",
            "--owner",
            "application:host",
            "--name",
            "portal",
            "--environment",
            "production",
            "--scopes",
            "portal:create",
            "--grantable-scopes",
            "read,write",
            "--grantable-environments",
            "sandbox,production",
            "--json",
          ],
          env,
        )
      ).stdout,
    );
    expect(created).toMatchObject({ grantable_scopes: ["read", "write"], grantable_environments: ["sandbox", "production"] });
    const sandboxOnly = json(
      (
        await runCliProcess(
          [
            "keys",
            "create",
            "--owner",
            "application:host",
            "--name",
            "p2",
            "--scopes",
            "keys:write",
            "--grantable-scopes",
            "read",
            "--json",
          ],
          env,
        )
      ).stdout,
    );
    expect(sandboxOnly).toMatchObject({ grantable_scopes: ["read"], grantable_environments: ["sandbox"] });
  });

  it("end-grace stops the key a rotation replaced, at once", async () => {
    const created = json((await runCliProcess(["keys", "create", "--owner", "user:bob", "--name", "b", "--json"], env)).stdout);
    const rotated = json((await runCliProcess(["keys", "rotate", String(created.id), "--grace", "3600", "--json"], env)).stdout);
    expect(json((await runCliProcess(["verify", String(created.key), "--json"], env)).stdout).code).toBe("VALID");
    const ended = await runCliProcess(["keys", "end-grace", String(rotated.id), "--json"], env);
    expect(ended.code).toBe(0);
    expect(json(ended.stdout)).toMatchObject({ id: rotated.id, ended_grace: [created.id] });
    expect(json((await runCliProcess(["verify", String(created.key), "--json"], env)).stdout).code).toBe("REVOKED");
    const again = await runCliProcess(["keys", "end-grace", String(rotated.id)], env);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain("NO_GRACE_PERIOD");
  });
});
