// Calls to this node's API. Same origin only: every URL is relative to the console's own address
// (/ui/ -> /), and the page's Content-Security-Policy (connect-src 'self') refuses any other.
//
// The bearer token lives in sessionStorage (this tab only, gone when it closes) and travels only in
// the Authorization header, never in a URL. EventSource cannot send that header, so the watch stream
// is read with fetch() as well (see live.js).

const TOKEN_KEY = 'kvstore.console.token';
const base = new URL('../', document.baseURI);

let authLost = () => {};

/** Called when the node answers 401 to a request: the token is missing, wrong or revoked. */
export function onAuthLost(fn) {
  authLost = fn;
}

export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch (e) {
    return null;
  }
}

export function setToken(t) {
  sessionStorage.setItem(TOKEN_KEY, t);
}

export function clearToken() {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch (e) {
    // storage disabled: nothing kept
  }
}

/** An answer of the API that is not a success: status, its error code and message. */
export class ApiError extends Error {
  constructor(status, code, message, body, response) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body || {};
    this.response = response;
  }
}

/** The node did not answer at all (down, restarting, network). */
export class Unreachable extends Error {}

/**
 * One request. Resolves with the Response for 2xx and 304; rejects with ApiError (with the API's
 * {"error", "message"}) or Unreachable. A 401 also calls the onAuthLost callback.
 */
export async function request(method, path, { body, headers, signal, quietAuth } = {}) {
  const h = new Headers(headers || {});
  const t = token();
  if (t) h.set('Authorization', 'Bearer ' + t);
  let res;
  try {
    res = await fetch(new URL(path, base), {
      method, headers: h, body, signal,
      cache: 'no-store', credentials: 'same-origin', redirect: 'error', referrerPolicy: 'no-referrer',
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new Unreachable('the node does not answer (' + e.message + ')');
  }
  if (res.ok || res.status === 304) return res;
  let err = {};
  try {
    err = await res.json();
  } catch (e) {
    // not JSON (a proxy in between, say)
  }
  const error = new ApiError(res.status, err.error || 'http_' + res.status,
    err.message || ('HTTP ' + res.status + ' ' + res.statusText), err, res);
  if (res.status === 401 && !quietAuth) authLost(error);
  throw error;
}

export async function getJson(path, options) {
  return (await request('GET', path, options)).json();
}

export async function getText(path, options) {
  return (await request('GET', path, options)).text();
}

/**
 * The path of a key under /v1/kv. The key is one percent-encoded segment ('/' as %2F). A key that is
 * exactly "." or ".." cannot be sent as a path segment: browsers resolve it as a directory step.
 */
export function kvPath(key) {
  if (key === '.' || key === '..') {
    throw new ApiError(0, 'unaddressable', 'the console cannot address the key "' + key
      + '" (a browser treats it as a directory step in a URL); use the API with ?key= instead');
  }
  return 'v1/kv/' + encodeURIComponent(key);
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

/** The node's Prometheus text as {name: [{labels, value}]}. */
export function parseMetrics(text) {
  const out = new Map();
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const raw of text.split('\n')) {
    if (!raw || raw.startsWith('#')) continue;
    const m = line.exec(raw);
    if (!m) continue;
    const labels = {};
    if (m[2]) {
      for (const l of m[2].matchAll(label)) labels[l[1]] = l[2].replace(/\\(.)/g, '$1');
    }
    const value = Number(m[3]);
    if (!out.has(m[1])) out.set(m[1], []);
    out.get(m[1]).push({ labels, value });
  }
  return out;
}

/** The sum of a metric over the series whose labels pass `filter`; undefined if it is absent. */
export function metric(metrics, name, filter = () => true) {
  const series = metrics.get(name);
  if (!series) return undefined;
  let sum = 0;
  for (const s of series) {
    if (filter(s.labels) && Number.isFinite(s.value)) sum += s.value;
  }
  return sum;
}
