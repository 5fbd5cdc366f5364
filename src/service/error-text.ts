/**
 * What a warning says of an error (docs/deploy.md, "Redis faults"): its message, else its code,
 * else the messages it aggregates, else its string form. Connection errors of ioredis and Node
 * (an `AggregateError` when a host name has several addresses) often carry an empty message,
 * which made warnings read `"err": ""`.
 */
export function errorText(error: unknown): string {
  if (error === null || error === undefined) return "unknown error";
  if (typeof error !== "object") return String(error);
  const { message, code, errors } = error as { message?: unknown; code?: unknown; errors?: unknown };
  if (typeof message === "string" && message !== "") return message;
  if (typeof code === "string" && code !== "") return code;
  if (Array.isArray(errors) && errors.length > 0) return errors.map(errorText).join("; ");
  return String(error);
}
