import { type DestinationStream, type Logger, pino } from "pino";
import { percentDecode } from "../core/url-text.js";
import { errorText } from "./error-text.js";

// Anything shaped like a Keyward key, whatever the prefix, plus long base64url runs (digests).
const KEY_SHAPED = /[a-z][a-z0-9]{1,15}_(?:live|test)_[0-9A-Za-z]{8,}/g;

/**
 * Replaces key-shaped substrings: a last line of defence for messages that echo input. Text with
 * `%` escapes is also looked at decoded (`/v1/keys/kw%5Ftest%5F…` is a key once a server reads
 * it); when decoding reveals a key, the decoded text is logged, scrubbed.
 */
export function scrubSecrets(text: string): string {
  if (text.includes("%")) {
    const decoded = percentDecode(text);
    const scrubbed = decoded.replace(KEY_SHAPED, "[REDACTED]");
    if (scrubbed !== decoded) return scrubbed;
  }
  return text.replace(KEY_SHAPED, "[REDACTED]");
}

/** Whether the text holds a key-shaped substring (what scrubSecrets would replace). */
export function containsKeyShaped(text: string): boolean {
  KEY_SHAPED.lastIndex = 0;
  const found = KEY_SHAPED.test(text);
  KEY_SHAPED.lastIndex = 0;
  return found;
}

// Top-level fields with a serializer of their own (ours above, or Fastify's `res`): left to it.
const SERIALIZED_FIELDS = new Set(["req", "res", "err", "error"]);

/**
 * Every string in a log argument, at any depth and under any field name, scrubbed with
 * scrubSecrets (docs/hardening.md): not only the fields we know. Objects are read as
 * JSON.stringify would read them (`toJSON`, then own enumerable fields); a copy is made only
 * where something changed, so a line with nothing to scrub costs one walk.
 */
export function scrubFields(value: unknown, depth = 0, seen: WeakSet<object> = new WeakSet()): unknown {
  if (typeof value === "string") return scrubSecrets(value);
  if (value === null || typeof value !== "object" || depth > 32 || seen.has(value)) return value;
  // An error given as the line's object goes to the `err` serializer, which scrubs its message and stack.
  if (depth === 0 && value instanceof Error) return value;
  seen.add(value);
  const json = (value as { toJSON?: unknown }).toJSON;
  if (typeof json === "function" && !Buffer.isBuffer(value)) {
    const shown: unknown = json.call(value);
    return shown === value ? value : scrubFields(shown, depth + 1, seen);
  }
  if (Array.isArray(value)) {
    let copy: unknown[] | null = null;
    value.forEach((item, i) => {
      const scrubbed = scrubFields(item, depth + 1, seen);
      if (scrubbed === item) return;
      copy ??= [...value];
      copy[i] = scrubbed;
    });
    return copy ?? value;
  }
  if (ArrayBuffer.isView(value)) return value;
  let copy: Record<string, unknown> | null = null;
  for (const field of Object.keys(value)) {
    const item = (value as Record<string, unknown>)[field];
    if (depth === 0 && SERIALIZED_FIELDS.has(field) && item !== null && typeof item === "object") continue;
    const scrubbed = scrubFields(item, depth + 1, seen);
    if (scrubbed === item) continue;
    copy ??= { ...(value as Record<string, unknown>) };
    copy[field] = scrubbed;
  }
  return copy ?? value;
}

interface SerializedRequest {
  method: string;
  url: string;
  id: string;
  remoteAddress?: string | undefined;
}

/** Logs the path only (scrubbed, also of percent-encoded keys: a client may put a key in it); a query string may hold a key (KEY_IN_URL), so it is never logged. */
function serializeRequest(req: {
  method: string;
  url: string;
  id: string;
  ip?: string;
  socket?: { remoteAddress?: string };
}): SerializedRequest {
  const question = req.url.indexOf("?");
  return {
    method: req.method,
    url: scrubSecrets(question < 0 ? req.url : `${req.url.slice(0, question)}?[query redacted]`),
    id: scrubSecrets(req.id),
    remoteAddress: req.ip ?? req.socket?.remoteAddress,
  };
}

/**
 * Errors keep type, code and a scrubbed message and stack; nested objects (headers, bodies) are
 * dropped. An `err` given as text is its message; an empty message is replaced by the code or
 * the aggregated errors' messages (docs/deploy.md, "Redis faults"), so no warning says `""`.
 */
function serializeError(
  err:
    | string
    | {
        name?: string;
        message?: string;
        code?: string;
        stack?: string;
        statusCode?: number;
      },
): Record<string, unknown> {
  if (typeof err === "string") return { message: scrubSecrets(err) };
  return {
    type: err.name,
    code: err.code,
    statusCode: err.statusCode,
    message: scrubSecrets(errorText(err)),
    stack: err.stack ? scrubSecrets(err.stack) : undefined,
  };
}

/**
 * The service logger (pino): no request headers are logged at all, the usual carriers and
 * cookies are redacted wherever they appear, and every string, in every argument and field, is
 * scrubbed of key-shaped text.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const logger = pino(
    {
      level,
      redact: {
        paths: [
          "authorization",
          "cookie",
          '["x-api-key"]',
          "*.authorization",
          "*.cookie",
          '*["x-api-key"]',
          '*["set-cookie"]',
          "*.headers.authorization",
          '*.headers["x-api-key"]',
          "*.headers.cookie",
          '*.headers["set-cookie"]',
          // Carriers nested deeper (an error's request or response headers), up to four levels.
          ...["authorization", "cookie", '["x-api-key"]', '["set-cookie"]'].flatMap((name) => [
            `*.*.${name}`.replace(".[", "["),
            `*.*.*.${name}`.replace(".[", "["),
          ]),
          "key",
          "*.key",
        ],
        censor: "[REDACTED]",
      },
      serializers: { req: serializeRequest, err: serializeError, error: serializeError },
      hooks: {
        logMethod(args, method) {
          const scrubbed = args.map((arg) => scrubFields(arg)) as Parameters<typeof method>;
          method.apply(this, scrubbed);
        },
      },
    },
    destination,
  );
  // Child bindings (a request's `reqId`, anything a module binds) are scrubbed once, when the
  // child is made. pino gives children no bindings formatter of their parent's, but every
  // descendant is made through this method: a pino child inherits from its parent object.
  const child = logger.child;
  logger.child = function scrubbedChild(this: Logger, bindings, options) {
    return child.call(this, scrubFields(bindings) as pino.Bindings, options);
  } as Logger["child"];
  return logger;
}

/**
 * A request's child logger, made on first use. Fastify builds one per request; with redaction a
 * pino child costs several percent of a verify request's time, and most requests log nothing.
 */
class LazyChildLogger {
  #child: Logger | undefined;

  constructor(
    private readonly parent: Logger,
    private readonly childBindings: pino.Bindings,
    private readonly childOptions: pino.ChildLoggerOptions,
  ) {}

  #real(): Logger {
    this.#child ??= this.parent.child(this.childBindings, this.childOptions);
    return this.#child;
  }

  get level(): string {
    return this.#real().level;
  }

  set level(level: string) {
    this.#real().level = level;
  }

  fatal(...args: Parameters<Logger["fatal"]>): void {
    this.#real().fatal(...args);
  }

  error(...args: Parameters<Logger["error"]>): void {
    this.#real().error(...args);
  }

  warn(...args: Parameters<Logger["warn"]>): void {
    this.#real().warn(...args);
  }

  info(...args: Parameters<Logger["info"]>): void {
    this.#real().info(...args);
  }

  debug(...args: Parameters<Logger["debug"]>): void {
    this.#real().debug(...args);
  }

  trace(...args: Parameters<Logger["trace"]>): void {
    this.#real().trace(...args);
  }

  silent(...args: Parameters<Logger["silent"]>): void {
    this.#real().silent(...args);
  }

  isLevelEnabled(level: string): boolean {
    return this.#real().isLevelEnabled(level);
  }

  bindings(): pino.Bindings {
    return this.#real().bindings();
  }

  child(bindings: pino.Bindings, options?: pino.ChildLoggerOptions): Logger {
    return this.#real().child(bindings, options);
  }
}

/** Fastify's `childLoggerFactory`: the per-request logger is built only when a request logs. */
export function lazyChildLoggerFactory(logger: Logger, bindings: pino.Bindings, options: pino.ChildLoggerOptions): Logger {
  return new LazyChildLogger(logger, bindings, options) as unknown as Logger;
}
