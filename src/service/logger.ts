import { type DestinationStream, type Logger, pino } from "pino";

// Anything shaped like a Keyward key, whatever the prefix, plus long base64url runs (digests).
const KEY_SHAPED = /[a-z][a-z0-9]{1,15}_(?:live|test)_[0-9A-Za-z]{8,}/g;

/** Replaces key-shaped substrings: a last line of defence for messages that echo input. */
export function scrubSecrets(text: string): string {
  return text.replace(KEY_SHAPED, "[REDACTED]");
}

interface SerializedRequest {
  method: string;
  url: string;
  id: string;
  remoteAddress?: string | undefined;
}

/** Logs the path only (scrubbed: a client may put a key in it); a query string may hold a key (KEY_IN_URL), so it is never logged. */
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
    id: req.id,
    remoteAddress: req.ip ?? req.socket?.remoteAddress,
  };
}

/** Errors keep type, code and a scrubbed message and stack; nested objects (headers, bodies) are dropped. */
function serializeError(err: {
  name?: string;
  message?: string;
  code?: string;
  stack?: string;
  statusCode?: number;
}): Record<string, unknown> {
  return {
    type: err.name,
    code: err.code,
    statusCode: err.statusCode,
    message: scrubSecrets(String(err.message ?? "")),
    stack: err.stack ? scrubSecrets(err.stack) : undefined,
  };
}

/**
 * The service logger (pino): no request headers are logged at all, the usual carriers and
 * cookies are redacted wherever they appear, and every string argument is scrubbed of
 * key-shaped text.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
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
          const scrubbed = args.map((arg) => (typeof arg === "string" ? scrubSecrets(arg) : arg)) as Parameters<typeof method>;
          method.apply(this, scrubbed);
        },
      },
    },
    destination,
  );
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
