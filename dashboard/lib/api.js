// The public HTTP API is the dashboard's only backend: the session cookie plus, on unsafe
// methods, the session's X-CSRF-Token (kept in memory only, never in web storage).

/** The signed-in session as GET /v1/session describes it, or null. */
export const state = { session: null };

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `The server answered ${status}.`);
    this.status = status;
    this.code = problem?.code ?? null;
    this.title = problem?.title ?? null;
    /** Field errors of a 400 VALIDATION_FAILED: [{field: "body.rate_limit.requests", message}]. */
    this.errors = Array.isArray(problem?.errors) ? problem.errors : [];
    this.requestId = problem?.request_id ?? null;
  }
}

/** A request that never reached the server, or whose answer could not be read. */
export class NetworkError extends Error {}

/** Calls that establish who you are: a 401 there is a wrong password, not a session that ended. */
const SIGN_IN_CALLS = new Set(["POST /v1/session", "POST /v1/setup", "POST /v1/session/password"]);

/**
 * The session ended under the page (signed out in another tab, idle or absolute timeout, the
 * user disabled): 401 SESSION_REQUIRED, or 401 MISSING once the cookie itself is gone.
 */
const endsSession = (method, path, error) =>
  error.status === 401 && (error.code === "SESSION_REQUIRED" || error.code === "MISSING") && !SIGN_IN_CALLS.has(`${method} ${path}`);

async function send(method, path, body) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && state.session) headers["x-csrf-token"] = state.session.csrf_token;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new NetworkError("The server could not be reached. Check your connection and try again.");
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      if (response.ok) throw new NetworkError("The server's answer could not be read.");
    }
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/**
 * One API call. A session that ended announces itself once (`keyward:signed-out`, handled by the
 * router) and the call throws; a CSRF token that changed (you signed in again in another tab)
 * is fetched again and the call retried once.
 */
export async function api(method, path, body) {
  try {
    return await send(method, path, body);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.status === 403 && error.code === "CSRF_FAILED" && state.session && method !== "GET") {
      const fresh = await send("GET", "/v1/session").catch(() => null);
      if (fresh && fresh.user.id === state.session.user.id) {
        state.session = fresh;
        return send(method, path, body);
      }
    }
    if (error.status === 403 && error.code === "PASSWORD_CHANGE_REQUIRED" && state.session && !state.session.password_change_required)
      window.dispatchEvent(new CustomEvent("keyward:password-change-required"));
    if (endsSession(method, path, error) && state.session) {
      state.session = null;
      window.dispatchEvent(new CustomEvent("keyward:signed-out"));
    }
    throw error;
  }
}

/** `?a=1&b=2` from an object, leaving out empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/**
 * Every row of a paginated list, following next_cursor, up to `max` rows (a bound, so a page
 * never walks an unbounded list). Returns {data, complete}.
 */
export async function listAll(path, params = {}, max = 1000) {
  const data = [];
  let cursor = null;
  do {
    const page = await api("GET", `${path}${query({ ...params, limit: Math.min(200, max - data.length), cursor })}`);
    data.push(...page.data);
    cursor = page.next_cursor ?? null;
  } while (cursor && data.length < max);
  return { data, complete: cursor === null };
}

export const isAdmin = () => state.session?.user.role === "admin";
export const me = () => state.session?.user ?? null;
