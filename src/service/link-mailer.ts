import type { FastifyBaseLogger } from "fastify";
import { createTransport } from "nodemailer";
import type { UserLinkPurpose } from "../core/accounts.js";
import type { MailConfig } from "./config.js";

/**
 * What became of emailing an invite or reset link (docs/api.md, "Invites and password resets").
 * The link is in the answer whatever this says: a failed email never loses it.
 */
export type LinkDelivery = { status: "sent"; to: string } | { status: "failed"; reason: string } | { status: "not_configured" };

export interface LinkEmail {
  purpose: UserLinkPurpose;
  /** The recipient: the user's stored (validated) email. */
  to: string;
  userId: string;
  url: string;
  /** The token inside `url`: kept out of anything logged. */
  token: string;
  expiresAt: number;
  /** Who asked for the link, as the email names them. */
  requestedBy: string;
}

export interface LinkMailer {
  send(email: LinkEmail): Promise<LinkDelivery>;
  close(): void;
}

/** Short, fixed, non-secret texts for what went wrong, by nodemailer's error code. */
const REASONS: Record<string, string> = {
  ECONNECTION: "could not connect to the mail server",
  ESOCKET: "could not connect to the mail server",
  EDNS: "the mail server's name does not resolve",
  ETIMEDOUT: "the mail server did not answer in time",
  ETLS: "TLS with the mail server failed",
  EAUTH: "the mail server refused the credentials",
  ENOAUTH: "the mail server requires credentials",
  EENVELOPE: "the mail server refused the sender or the recipient",
  EMESSAGE: "the mail server refused the message",
  EPROTOCOL: "the mail server answered unexpectedly",
};

export function failureReason(error: { code?: unknown; responseCode?: unknown }): string {
  const text = (typeof error.code === "string" && REASONS[error.code]) || "the email could not be sent";
  return typeof error.responseCode === "number" ? `${text} (SMTP ${error.responseCode})` : text;
}

const SUBJECTS: Record<UserLinkPurpose, string> = {
  invite: "You're invited to Keyward",
  reset: "Reset your Keyward password",
};

/** The email's plain text: the link, its expiry, and who asked. */
export function linkEmailText(email: LinkEmail): string {
  const expires = `${new Date(email.expiresAt).toISOString().replace("T", " ").slice(0, 16)} UTC`;
  const lines =
    email.purpose === "invite"
      ? [
          "Hello,",
          "",
          `${email.requestedBy} invited you (${email.to}) to Keyward. Choose your password with this link:`,
          "",
          email.url,
          "",
          `The link works once, until ${expires}. A newer link replaces it.`,
        ]
      : [
          "Hello,",
          "",
          `${email.requestedBy} issued a password reset for your Keyward account (${email.to}). Choose a new password with this link:`,
          "",
          email.url,
          "",
          `The link works once, until ${expires}. A newer link replaces it. Your current password keeps working until you use it.`,
        ];
  lines.push("", "If you did not expect this email, ignore it: nothing changes unless the link is used.", "");
  return lines.join("\n");
}

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string);

/** The minimal HTML alternative: the same text, escaped, with the link clickable. */
function linkEmailHtml(email: LinkEmail, text: string): string {
  const body = text
    .split("\n\n")
    .map((paragraph) =>
      paragraph.trim() === email.url
        ? `<p><a href="${escapeHtml(email.url)}">${escapeHtml(email.url)}</a></p>`
        : `<p>${escapeHtml(paragraph.trim()).replace(/\n/g, "<br>")}</p>`,
    )
    .filter((paragraph) => paragraph !== "<p></p>")
    .join("\n");
  return `<!doctype html>\n<html><body>\n${body}\n</body></html>\n`;
}

/**
 * Sends invite and reset links over SMTP with nodemailer (docs/configuration.md, "Email"): a
 * connection per email, every phase bounded, and an overall deadline of `timeoutMs`, so a dead
 * mail server costs a request at most that long. Null when mail is not configured. Logs the
 * outcome, never the link.
 */
export function createLinkMailer(config: MailConfig | null, logger: FastifyBaseLogger): LinkMailer | null {
  if (!config) return null;
  const { timeoutMs } = config;
  const transport = createTransport({
    url: config.smtpUrl,
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
    dnsTimeout: timeoutMs,
    socketCloseTimeout: 0,
    disableFileAccess: true,
    disableUrlAccess: true,
    logger: false,
    debug: false,
  });
  const hide = (text: string, token: string) => text.split(token).join("[REDACTED]");

  return {
    async send(email) {
      const text = linkEmailText(email);
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(Object.assign(new Error("the email took too long"), { code: "ETIMEDOUT" })), timeoutMs);
      });
      const started = Date.now();
      try {
        await Promise.race([
          transport.sendMail({
            from: config.from,
            // An address object: nodemailer encodes it, and never parses user input into more recipients.
            to: { name: "", address: email.to },
            subject: SUBJECTS[email.purpose],
            text,
            html: linkEmailHtml(email, text),
          }),
          deadline,
        ]);
        logger.info({ purpose: email.purpose, userId: email.userId, delivery: "sent", ms: Date.now() - started }, "link email sent");
        return { status: "sent", to: email.to };
      } catch (error) {
        const err = error as { code?: unknown; responseCode?: unknown; message?: unknown };
        const reason = failureReason(err);
        logger.warn(
          {
            purpose: email.purpose,
            userId: email.userId,
            delivery: "failed",
            reason,
            code: typeof err.code === "string" ? err.code : undefined,
            detail: typeof err.message === "string" ? hide(hide(err.message, email.url), email.token).slice(0, 300) : undefined,
            ms: Date.now() - started,
          },
          "link email failed",
        );
        return { status: "failed", reason };
      } finally {
        clearTimeout(timer);
      }
    },
    close() {
      transport.close();
    },
  };
}
