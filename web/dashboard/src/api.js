// The dashboard's one way to the server: the public API, with the session
// cookie (same origin; the browser adds Origin to writes, which the server
// checks). A problem answer (RFC 9457) becomes an ApiError whose message is
// the problem's detail, plus the fields named in errors[]: what the page
// shows a person, never the raw JSON.

export class ApiError extends Error {
  constructor(status, message, problem) {
    super(message);
    this.status = status;
    this.problem = problem;
  }
}

let unauthorized = () => {};

// Called on any 401: the session ended (signed out, expired, removed).
export function onUnauthorized(fn) {
  unauthorized = fn;
}

function problemMessage(status, data) {
  let msg = data && typeof data.detail === 'string' && data.detail
    ? data.detail
    : (data && typeof data.title === 'string' && data.title) || `The server answered ${status}.`;
  if (data && Array.isArray(data.errors) && data.errors.length) {
    const fields = data.errors
      .filter((e) => e && e.field && e.message)
      .map((e) => `${e.field} ${e.message}`);
    if (fields.length) msg += ` (${fields.join('; ')})`;
  }
  return msg;
}

// api('/api/v1/me') -> {status, data, headers}; throws ApiError.
export async function api(path, { method = 'GET', body, quiet401 = false } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let r;
  try {
    r = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'The server could not be reached. Check the connection and try again.');
  }
  let data = null;
  if (r.status !== 204 && (r.headers.get('Content-Type') || '').includes('json')) {
    try {
      data = await r.json();
    } catch {
      data = null;
    }
  }
  if (!r.ok) {
    if (r.status === 401 && !quiet401) unauthorized();
    throw new ApiError(r.status, problemMessage(r.status, data), data);
  }
  return { status: r.status, data, headers: r.headers };
}

// One page of a cursor-paginated list.
export function listUrl(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}
