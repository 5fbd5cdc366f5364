import type { Readable } from "node:stream";
import type { Static } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import { KeywardError } from "../../core/errors.js";
import { type ImportInputFormat, readImportRecords } from "../../engine/import-records.js";
import { importReportJson } from "../../engine/key-import.js";
import { enforce } from "../authority-gate.js";
import type { ServiceContext } from "../context.js";
import { ImportKeysQuery, ImportReportSchema, ProblemSchema } from "../schemas.js";
import { callerContext } from "../sessions.js";

/** The body types an import takes, and the record format each is. */
const IMPORT_TYPES: Record<string, ImportInputFormat> = {
  "application/x-ndjson": "jsonl",
  "application/jsonl": "jsonl",
  "application/jsonlines": "jsonl",
  "text/csv": "csv",
};

/**
 * `POST /v1/keys/import` (docs/migrating.md): JSON lines or CSV, read as it arrives (never held
 * whole), up to KEYWARD_IMPORT_BODY_LIMIT. Admin keys only: the `keys.import` decision refuses
 * every bounded caller, since an import confers whatever its records name.
 */
export function registerKeyImportRoutes(app: FastifyInstance, ctx: ServiceContext): void {
  app.register(async (scope) => {
    // The body reaches the handler as the request stream itself, for these types only and in this route only.
    scope.addContentTypeParser(Object.keys(IMPORT_TYPES), (_request, payload, done) => done(null, payload));
    scope.post<{ Querystring: Static<typeof ImportKeysQuery> }>(
      "/v1/keys/import",
      {
        schema: {
          tags: ["keys"],
          summary: "Import keys (JSON lines or CSV): plaintexts or the digests of the system before Keyward; admin keys only",
          querystring: ImportKeysQuery,
          response: {
            200: ImportReportSchema,
            400: ProblemSchema,
            401: ProblemSchema,
            403: ProblemSchema,
            413: ProblemSchema,
            415: ProblemSchema,
          },
        },
      },
      async (request, reply) => {
        const caller = await ctx.requireKeyCaller(request, reply, ["keys:write"]);
        if (!caller) return reply;
        enforce(caller.authority, { type: "keys.import" });
        const type = (request.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
        const format = IMPORT_TYPES[type];
        if (!format) throw new KeywardError("UNSUPPORTED_MEDIA_TYPE", "send the records as application/x-ndjson (JSON lines) or text/csv");
        const query = request.query;
        const report = await ctx.keyward.importKeys(
          readImportRecords(request.body as Readable, { format, maxBytes: ctx.config.importBodyLimitBytes }),
          callerContext(request, caller),
          {
            dryRun: query.dry_run === true,
            strict: query.strict === true,
            ...(query.format ? { format: query.format } : {}),
            source: "api",
          },
        );
        return importReportJson(report);
      },
    );
  });
}
