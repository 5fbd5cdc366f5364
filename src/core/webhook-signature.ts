import { createHmac, timingSafeEqual } from "node:crypto";

/** The header that carries a webhook's signature: `t=<unix seconds>,v1=<hex HMAC-SHA-256 of "<t>.<body>">`. */
export const WEBHOOK_SIGNATURE_HEADER = "keyward-signature";

/** Default replay window: a signature older (or newer) than this is refused. */
export const DEFAULT_SIGNATURE_TOLERANCE_SECONDS = 300;

function hmacHex(secret: string, timestamp: number, body: string): string {
  return createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex");
}

/** The `Keyward-Signature` value for `body` sent at `timestampSeconds`. */
export function signWebhookPayload(secret: string, body: string, timestampSeconds: number): string {
  return `t=${timestampSeconds},v1=${hmacHex(secret, timestampSeconds, body)}`;
}

export interface VerifyWebhookSignatureOptions {
  /** Seconds a signature stays acceptable either side of now. Default 300. */
  toleranceSeconds?: number;
  /** The current time in epoch milliseconds. Default `Date.now()`. */
  now?: number;
}

/**
 * Checks a webhook from Keyward: the HMAC-SHA-256 of `"<t>.<raw body>"` under the endpoint's
 * secret must match one `v1=` value, and `t` must be within the tolerance of now (so a captured
 * delivery cannot be replayed later). Compare the raw body bytes as received, before parsing.
 *
 * @example
 * app.post("/hooks/keyward", express.raw({ type: "application/json" }), (req, res) => {
 *   if (!verifyWebhookSignature(req.body.toString("utf8"), req.get("keyward-signature"), process.env.KEYWARD_WEBHOOK_SECRET)) return res.sendStatus(400);
 *   const event = JSON.parse(req.body);
 *   res.sendStatus(204);
 * });
 */
export function verifyWebhookSignature(
  body: string,
  header: string | null | undefined,
  secret: string,
  options: VerifyWebhookSignatureOptions = {},
): boolean {
  if (!header || !secret) return false;
  let timestamp: number | null = null;
  const candidates: string[] = [];
  for (const part of header.split(",")) {
    const [name, value] = part.trim().split("=", 2);
    if (name === "t" && value && /^\d{1,12}$/.test(value)) timestamp = Number(value);
    else if (name === "v1" && value && /^[0-9a-f]{64}$/.test(value)) candidates.push(value);
  }
  if (timestamp === null || candidates.length === 0) return false;
  const nowSeconds = Math.floor((options.now ?? Date.now()) / 1000);
  if (Math.abs(nowSeconds - timestamp) > (options.toleranceSeconds ?? DEFAULT_SIGNATURE_TOLERANCE_SECONDS)) return false;
  const expected = Buffer.from(hmacHex(secret, timestamp, body), "hex");
  // Both sides are 32 bytes (checked by the pattern above), so timingSafeEqual never throws.
  return candidates.some((candidate) => timingSafeEqual(Buffer.from(candidate, "hex"), expected));
}
