import { Ajv } from "ajv";
import formatsPlugin from "ajv-formats";
import type { FastifyInstance } from "fastify";
import { isTimestamp } from "../core/timestamps.js";

// ajv-formats is CommonJS: its callable export sits on `default` at run time and in its types.
const addFormats = (formatsPlugin as unknown as { default: (ajv: Ajv) => Ajv }).default;

/**
 * Bodies are validated strictly: no type coercion (`"name": 123` is an error, not "123"),
 * unknown fields refused, all errors reported. Query strings and path parameters arrive as
 * text, so there numbers are coerced.
 */
export function installValidators(app: FastifyInstance): void {
  const common = { allErrors: true, removeAdditional: false, useDefaults: false, strict: false } as const;
  const body = new Ajv({ ...common, coerceTypes: false });
  const text = new Ajv({ ...common, coerceTypes: "array" });
  addFormats(body);
  addFormats(text);
  // `date-time` is our one timestamp parser, stricter than ajv-formats' (which takes `23:59:60`
  // and a space for `T`): what a schema accepts, the handler can always convert (docs/hardening.md).
  for (const ajv of [body, text]) ajv.addFormat("date-time", { type: "string", validate: isTimestamp });
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === "body" ? body : text).compile(schema));
}
