import { createServer, type Server } from "node:net";
import { SMTPServer } from "smtp-server";
import { afterEach, describe, expect, it } from "vitest";
import { KeywardError } from "../../src/core/errors.js";
import { loadConfig } from "../../src/service/config.js";
import { type SignedIn, sessionHeaders, setupAdmin } from "../helpers/people.js";
import { jsonHeaders, startTestService, type TestService } from "../helpers/service.js";

// docs/configuration.md, "Email": invite and reset links emailed through a real SMTP server on
// loopback (smtp-server, no TLS, authentication optional), and what happens when it is down.

interface Received {
  from: string;
  to: string[];
  raw: string;
}

interface Delivery {
  status: string;
  to?: string;
  reason?: string;
}

interface Link {
  purpose: "invite" | "reset";
  token: string;
  path: string;
  url: string;
  expires_at: string;
  delivery: Delivery;
}

let service: TestService | undefined;
let smtp: SMTPServer | undefined;
let blackHole: Server | undefined;
afterEach(async () => {
  await service?.close();
  service = undefined;
  await new Promise<void>((resolve) => (smtp ? smtp.close(() => resolve()) : resolve()));
  smtp = undefined;
  await new Promise<void>((resolve) => (blackHole ? blackHole.close(() => resolve()) : resolve()));
  blackHole = undefined;
});

/** A real SMTP server on a loopback port: every message it accepts, with its envelope. */
async function startSmtp(): Promise<{ port: number; received: Received[] }> {
  const received: Received[] = [];
  smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => {
        received.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
          to: session.envelope.rcptTo.map((rcpt) => rcpt.address),
          raw: Buffer.concat(chunks).toString("utf8"),
        });
        callback();
      });
    },
  });
  const server = smtp;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const address = server.server.address();
  return { port: typeof address === "object" && address ? address.port : 0, received };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", () => resolve()));
  const address = probe.address();
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return typeof address === "object" && address ? address.port : 0;
}

/** A mail server that accepts connections and never says a word. */
async function silentPort(): Promise<number> {
  blackHole = createServer(() => {});
  const server = blackHole;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const address = server.address();
  return typeof address === "object" && address ? address.port : 0;
}

const mailEnv = (port: number, extra: Record<string, string> = {}) => ({
  KEYWARD_SMTP_URL: `smtp://127.0.0.1:${port}`,
  KEYWARD_MAIL_FROM: "Keyward <keyward@example.com>",
  ...extra,
});

/** The message with quoted-printable soft breaks and escapes undone (nodemailer may use it for long lines). */
const decoded = (raw: string) =>
  raw.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));

const header = (raw: string, name: string) => new RegExp(`^${name}: (.*)$`, "mi").exec(raw)?.[1]?.trim();

const publicPost = (path: string, body: unknown) =>
  (service as TestService).call(path, {
    method: "POST",
    headers: { "content-type": "application/json", origin: (service as TestService).url },
    body: JSON.stringify(body),
  });

async function invite(email: string, by: SignedIn | string, extra: Record<string, unknown> = {}) {
  const s = service as TestService;
  const response = await s.call("/v1/users", {
    method: "POST",
    headers: typeof by === "string" ? jsonHeaders(by) : sessionHeaders(s, by),
    body: JSON.stringify({ email, role: "member", ...extra }),
  });
  expect(response.status, response.text).toBe(201);
  return response.json() as { id: string; invite: Link };
}

async function issue(userId: string, what: "invite" | "password-reset", by: SignedIn | string, body?: unknown) {
  const s = service as TestService;
  const headers: Record<string, string> = typeof by === "string" ? jsonHeaders(by) : sessionHeaders(s, by);
  // No body at all, as the dashboard sends it: no content type either.
  if (body === undefined) delete headers["content-type"];
  const response = await s.call(`/v1/users/${userId}/${what}`, {
    method: "POST",
    headers,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  expect(response.status, response.text).toBe(201);
  return response.json() as Link;
}

async function auditEvents(action: string) {
  const s = service as TestService;
  const response = await s.call(`/v1/audit-events?action=${action}`, { headers: jsonHeaders(s.adminKey) });
  return (response.json() as { data: { action: string; details: Record<string, unknown> }[] }).data;
}

/** No log line, audit event or anything but the link's own answer holds the token. */
async function expectTokenOnlyInAnswers(token: string) {
  const s = service as TestService;
  expect(s.logs.join("")).not.toContain(token);
  const trail = await s.call("/v1/audit-events?limit=200", { headers: jsonHeaders(s.adminKey) });
  expect(trail.text).not.toContain(token);
}

describe("links emailed through SMTP", () => {
  it("an invite is emailed to the person; the emailed link works through the API", async () => {
    const mail = await startSmtp();
    service = await startTestService({ env: mailEnv(mail.port, { KEYWARD_PUBLIC_URL: "https://keyward.example.com/people/" }) });
    const admin = await setupAdmin(service);

    const carol = await invite("carol@example.com", admin);
    expect(carol.invite.delivery).toEqual({ status: "sent", to: "carol@example.com" });
    // KEYWARD_PUBLIC_URL is the link's base, in the answer and in the email.
    expect(carol.invite.url).toBe(`https://keyward.example.com/people/dashboard/#/invite/${carol.invite.token}`);
    expect(mail.received).toHaveLength(1);
    const message = mail.received[0] as Received;
    expect(message.to).toEqual(["carol@example.com"]);
    expect(message.from).toBe("keyward@example.com");
    expect(header(message.raw, "To")).toBe("carol@example.com");
    expect(header(message.raw, "From")).toBe("Keyward <keyward@example.com>");
    expect(header(message.raw, "Subject")).toBe("You're invited to Keyward");
    const body = decoded(message.raw);
    expect(body).toContain("admin@example.com invited you (carol@example.com) to Keyward");
    expect(body).toContain(`${carol.invite.expires_at.slice(0, 10)} ${carol.invite.expires_at.slice(11, 16)} UTC`);
    const emailed = /https:\/\/keyward\.example\.com\/people\/dashboard\/#\/invite\/([0-9A-Za-z]{32})/.exec(body);
    expect(emailed?.[1]).toBe(carol.invite.token);

    // The person follows the emailed link: the token it carries sets the password and signs in.
    const accepted = await publicPost("/v1/invites/accept", { token: emailed?.[1], password: "carol chose this one" });
    expect(accepted.status, accepted.text).toBe(201);
    expect(accepted.json()).toMatchObject({ user: { email: "carol@example.com", password_set: true } });

    const events = await auditEvents("user.link_email_sent");
    expect(events).toHaveLength(1);
    expect(events[0]?.details).toEqual({ purpose: "invite", to: "carol@example.com" });
    expect(service.logs.join("")).toContain('"msg":"link email sent"');
    await expectTokenOnlyInAnswers(carol.invite.token);
  });

  it("a password reset is emailed, naming who asked; an API key by the key's name", async () => {
    const mail = await startSmtp();
    service = await startTestService({ env: mailEnv(mail.port) });
    const admin = await setupAdmin(service);
    const dave = await invite("dave@example.com", service.adminKey, { send_email: false });
    expect((await publicPost("/v1/invites/accept", { token: dave.invite.token, password: "dave's long password" })).status).toBe(201);

    const reset = await issue(dave.id, "password-reset", admin);
    expect(reset.delivery).toEqual({ status: "sent", to: "dave@example.com" });
    expect(reset.url).toBe(`${service.url}/dashboard/#/reset/${reset.token}`);
    const byKey = await issue(dave.id, "password-reset", service.adminKey, {});
    expect(byKey.delivery.status).toBe("sent");
    expect(mail.received).toHaveLength(2);
    const [first, second] = mail.received as [Received, Received];
    expect(header(first.raw, "Subject")).toBe("Reset your Keyward password");
    expect(decoded(first.raw)).toContain("admin@example.com issued a password reset for your Keyward account (dave@example.com)");
    expect(decoded(first.raw)).toContain(reset.url);
    expect(decoded(second.raw)).toContain(`The API key "test admin" issued a password reset`);

    // The newer link replaced the first; the emailed newer one works.
    expect((await publicPost("/v1/password-resets/inspect", { token: reset.token })).status).toBe(400);
    const token = /#\/reset\/([0-9A-Za-z]{32})/.exec(decoded(second.raw))?.[1];
    expect(token).toBe(byKey.token);
    expect((await publicPost("/v1/password-resets/accept", { token, password: "dave's newer password" })).status).toBe(201);
    await expectTokenOnlyInAnswers(reset.token);
    await expectTokenOnlyInAnswers(byKey.token);
  });

  it("send_email: false sends nothing: the link is only in the answer", async () => {
    const mail = await startSmtp();
    service = await startTestService({ env: mailEnv(mail.port) });
    const erin = await invite("erin@example.com", service.adminKey, { send_email: false });
    expect(erin.invite.delivery).toEqual({ status: "not_requested" });
    const again = await issue(erin.id, "invite", service.adminKey, { send_email: false });
    expect(again.delivery).toEqual({ status: "not_requested" });
    expect(mail.received).toHaveLength(0);
    expect(await auditEvents("user.link_email_sent")).toHaveLength(0);
    // Anything else in the body is refused, as everywhere.
    const odd = await service.call(`/v1/users/${erin.id}/invite`, {
      method: "POST",
      headers: jsonHeaders(service.adminKey),
      body: JSON.stringify({ send_email: "no" }),
    });
    expect(odd.status).toBe(400);
  });

  it("without SMTP settings the answer says not_configured", async () => {
    service = await startTestService();
    const fay = await invite("fay@example.com", service.adminKey);
    expect(fay.invite.delivery).toEqual({ status: "not_configured" });
    expect((await issue(fay.id, "invite", service.adminKey)).delivery).toEqual({ status: "not_configured" });
    // The OpenAPI document describes the option and the answer.
    const spec = JSON.stringify((await service.call("/openapi.json")).json());
    expect(spec).toContain("send_email");
    expect(spec).toContain("not_configured");
    expect(spec).toContain("not_requested");
  });
});

describe("when the mail server fails, the link is not lost", () => {
  it("nothing listening: 201 with delivery failed at once, and the link works", async () => {
    service = await startTestService({ env: mailEnv(await closedPort()) });
    const started = Date.now();
    const gina = await invite("gina@example.com", service.adminKey);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(gina.invite.delivery).toEqual({ status: "failed", reason: "could not connect to the mail server" });
    expect((await publicPost("/v1/invites/accept", { token: gina.invite.token, password: "gina's long password" })).status).toBe(201);

    const events = await auditEvents("user.link_email_failed");
    expect(events[0]?.details).toEqual({ purpose: "invite", reason: "could not connect to the mail server" });
    const failed = service.logs.find((line) => line.includes('"msg":"link email failed"'));
    expect(failed).toContain('"reason":"could not connect to the mail server"');
    await expectTokenOnlyInAnswers(gina.invite.token);
  });

  it("a server that never answers: the attempt ends at KEYWARD_SMTP_TIMEOUT_MS, and the link works", async () => {
    service = await startTestService({ env: mailEnv(await silentPort(), { KEYWARD_SMTP_TIMEOUT_MS: "700" }) });
    const started = Date.now();
    const hank = await invite("hank@example.com", service.adminKey);
    const took = Date.now() - started;
    expect(hank.invite.delivery).toEqual({ status: "failed", reason: "the mail server did not answer in time" });
    expect(took).toBeGreaterThanOrEqual(600);
    expect(took).toBeLessThan(5_000);
    expect((await publicPost("/v1/invites/inspect", { token: hank.invite.token })).status).toBe(200);
    await expectTokenOnlyInAnswers(hank.invite.token);
  });
});

describe("email settings", () => {
  const refused = (env: Record<string, string>) => {
    try {
      loadConfig(env);
    } catch (error) {
      expect(error).toBeInstanceOf(KeywardError);
      expect((error as KeywardError).code).toBe("INVALID_CONFIGURATION");
      return (error as Error).message;
    }
    throw new Error("the configuration was accepted");
  };

  it("refuse to start on an SMTP URL without a sender, a bad URL or sender, or a bad public URL, without echoing secrets", () => {
    expect(refused({ KEYWARD_SMTP_URL: "smtp://mail.example.com:587" })).toMatch(
      /KEYWARD_MAIL_FROM is required when KEYWARD_SMTP_URL is set/,
    );
    expect(refused({ KEYWARD_MAIL_FROM: "keyward@example.com" })).toMatch(/KEYWARD_MAIL_FROM is set but KEYWARD_SMTP_URL is not/);
    for (const url of ["https://user:hunter2@mail.example.com", "mail.example.com:587", "smtp://", "not a url hunter2"]) {
      const message = refused({ KEYWARD_SMTP_URL: url, KEYWARD_MAIL_FROM: "keyward@example.com" });
      expect(message).toMatch(/KEYWARD_SMTP_URL must be an smtp:\/\/ or smtps:\/\/ URL/);
      expect(message).not.toContain("hunter2");
    }
    for (const from of ["keyward", "a@b.c\r\nBcc: x@y.z", "Keyward <not an address>"])
      expect(refused({ KEYWARD_SMTP_URL: "smtp://mail.example.com", KEYWARD_MAIL_FROM: from })).toMatch(
        /KEYWARD_MAIL_FROM must be an email address/,
      );
    for (const url of [
      "ftp://keyward.example.com",
      "https://keyward.example.com/?a=1",
      "https://u:p@keyward.example.com",
      "keyward.example.com",
    ])
      expect(refused({ KEYWARD_PUBLIC_URL: url })).toMatch(/KEYWARD_PUBLIC_URL must be an http:\/\/ or https:\/\/ URL/);
    expect(
      refused({ KEYWARD_SMTP_URL: "smtp://mail.example.com", KEYWARD_MAIL_FROM: "k@example.com", KEYWARD_SMTP_TIMEOUT_MS: "5" }),
    ).toMatch(/KEYWARD_SMTP_TIMEOUT_MS must be an integer/);
  });

  it("accept smtp:// and smtps:// with credentials, and a public URL with a path", () => {
    const config = loadConfig({
      KEYWARD_SMTP_URL: "smtps://user:p%40ss@mail.example.com:465",
      KEYWARD_MAIL_FROM: "Keyward <keyward@example.com>",
      KEYWARD_PUBLIC_URL: "https://example.com/keyward/",
    });
    expect(config.mail).toEqual({
      smtpUrl: "smtps://user:p%40ss@mail.example.com:465",
      from: "Keyward <keyward@example.com>",
      timeoutMs: 10_000,
    });
    expect(config.publicUrl).toBe("https://example.com/keyward");
    expect(loadConfig({ KEYWARD_PUBLIC_URL: "http://127.0.0.1:8080" }).publicUrl).toBe("http://127.0.0.1:8080");
    expect(loadConfig({}).mail).toBeNull();
  });
});
