import { ERROR_REGISTRY, type ErrorCode, type FieldError } from "../core/errors.js";

/** An RFC 9457 problem document, as every Keyward error is sent. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  request_id?: string;
  errors?: FieldError[];
  missing_scopes?: string[];
}

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

export function buildProblem(
  code: ErrorCode,
  detail?: string,
  extra: { requestId?: string; errors?: FieldError[]; missingScopes?: string[] } = {},
): Problem {
  const definition = ERROR_REGISTRY[code];
  return {
    type: `/docs/errors#${code}`,
    title: definition.title,
    status: definition.status,
    detail: detail ?? definition.title,
    code,
    ...(extra.requestId ? { request_id: extra.requestId } : {}),
    ...(extra.errors ? { errors: extra.errors } : {}),
    ...(extra.missingScopes ? { missing_scopes: extra.missingScopes } : {}),
  };
}
