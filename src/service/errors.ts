import type { FastifyError, FastifyInstance, FastifyRequest } from "fastify";
import { type ErrorCode, type FieldError, isKeywardError } from "../core/errors.js";
import { TIMESTAMP_RULE } from "../core/timestamps.js";
import { buildProblem, PROBLEM_CONTENT_TYPE } from "../middleware/problem.js";
import { isStoreUnavailableError, isStoreUnwritableError } from "../stores/store-errors.js";

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: "PAYLOAD_TOO_LARGE",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "UNSUPPORTED_MEDIA_TYPE",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "VALIDATION_FAILED",
  FST_ERR_CTP_EMPTY_JSON_BODY: "INVALID_JSON",
  FST_ERR_CTP_INVALID_JSON_BODY: "INVALID_JSON",
};

function validationErrors(error: FastifyError): FieldError[] {
  return (error.validation ?? []).map((issue) => {
    const base = `${error.validationContext ?? "body"}${issue.instancePath.replaceAll("/", ".")}`;
    const extra = issue.params as Record<string, unknown>;
    if (issue.keyword === "additionalProperties") return { field: `${base}.${String(extra.additionalProperty)}`, message: "unknown field" };
    if (issue.keyword === "required") return { field: `${base}.${String(extra.missingProperty)}`, message: "required" };
    if (issue.keyword === "format" && extra.format === "date-time") return { field: base, message: TIMESTAMP_RULE };
    return { field: base, message: issue.message ?? "invalid" };
  });
}

/**
 * Node's error when the client resets or closes the connection before the body arrived whole:
 * the request stream is destroyed with `aborted`, code ECONNRESET. A database connection reset
 * shares the code (and is an outage), so it is told apart by the message and the request itself.
 */
function isClientAbort(error: FastifyError, request: FastifyRequest): boolean {
  return error.code === "ECONNRESET" && error.message === "aborted" && request.raw.destroyed;
}

/**
 * Every error becomes an RFC 9457 problem with a registered code. Parser messages are never
 * echoed (Node's JSON errors quote the input, which may hold a key), and 5xx answers carry
 * only a request id: no stack, SQL, digest or environment.
 */
export function installErrorHandling(
  app: FastifyInstance,
  hooks: { onUnexpectedError?: () => void; onStoreUnwritable?: (error: unknown) => void } = {},
): void {
  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    const requestId = request.id;
    if (isKeywardError(error)) {
      if (error.status >= 500) request.log.error({ err: error }, "request failed");
      if (error.retryAfterSeconds !== undefined) reply.header("retry-after", String(error.retryAfterSeconds));
      const detail = error.status >= 500 ? undefined : error.message;
      return reply
        .code(error.status)
        .type(PROBLEM_CONTENT_TYPE)
        .send(buildProblem(error.code, detail, { requestId, ...(error.errors ? { errors: error.errors } : {}) }));
    }
    if (isClientAbort(error, request)) {
      // The client went away mid-body: its fault, not an outage, and nobody is left to answer.
      request.log.debug({ err: error }, "client aborted the request");
      return reply
        .code(400)
        .type(PROBLEM_CONTENT_TYPE)
        .send(buildProblem("VALIDATION_FAILED", "the request ended before its body arrived whole", { requestId }));
    }
    if (isStoreUnwritableError(error)) {
      hooks.onStoreUnwritable?.(error);
      request.log.error(
        { code: (error as { code?: string }).code },
        "store cannot be written (disk full, file or file system read-only, or an I/O error): writes answer 503 and /readyz fails until a write succeeds",
      );
    } else if (isStoreUnavailableError(error))
      request.log.warn({ err: { message: error.message || String(error.code) } }, "store unavailable");
    if (isStoreUnavailableError(error)) {
      return reply
        .code(503)
        .header("retry-after", "5")
        .type(PROBLEM_CONTENT_TYPE)
        .send(buildProblem("STORE_UNAVAILABLE", undefined, { requestId }));
    }
    if (error.validation) {
      const errors = validationErrors(error);
      return reply
        .code(400)
        .type(PROBLEM_CONTENT_TYPE)
        .send(buildProblem("VALIDATION_FAILED", errors.map((e) => `${e.field}: ${e.message}`).join("; "), { requestId, errors }));
    }
    const mapped = error.code ? FASTIFY_CODES[error.code] : undefined;
    if (mapped || error instanceof SyntaxError || (error.statusCode === 400 && /prototype|constructor/i.test(error.message))) {
      const code = mapped ?? "INVALID_JSON";
      return reply
        .code(code === "VALIDATION_FAILED" ? 400 : buildProblem(code).status)
        .type(PROBLEM_CONTENT_TYPE)
        .send(buildProblem(code, undefined, { requestId }));
    }
    if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
      return reply
        .code(400)
        .type(PROBLEM_CONTENT_TYPE)
        .send(buildProblem("VALIDATION_FAILED", "the request could not be read", { requestId }));
    }
    request.log.error({ err: error }, "unhandled error");
    hooks.onUnexpectedError?.();
    return reply
      .code(500)
      .type(PROBLEM_CONTENT_TYPE)
      .send(buildProblem("INTERNAL_ERROR", "an unexpected error occurred", { requestId }));
  });

  app.setNotFoundHandler(async (request, reply) =>
    reply
      .code(404)
      .type(PROBLEM_CONTENT_TYPE)
      .send(buildProblem("ROUTE_NOT_FOUND", "no route matches this method and path", { requestId: request.id })),
  );
}
