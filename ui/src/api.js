// Skein's HTTP API as the UI uses it. Every call carries the selected tenant.

const TENANT_KEY = 'skein.tenant';
const TENANTS_KEY = 'skein.tenants';

/** The tenant sent as `X-Scope-OrgID`; empty means none (the server's `single-tenant`). */
export function tenant() {
  try {
    return localStorage.getItem(TENANT_KEY) || '';
  } catch {
    return '';
  }
}

/** Remembers `t` as the tenant, and in the list of tenants used before. @param {string} t */
export function setTenant(t) {
  const v = t.trim();
  try {
    if (v) localStorage.setItem(TENANT_KEY, v);
    else localStorage.removeItem(TENANT_KEY);
    if (v) {
      const seen = knownTenants().filter(x => x !== v);
      localStorage.setItem(TENANTS_KEY, JSON.stringify([v, ...seen].slice(0, 20)));
    }
  } catch {
    // Storage disabled: the choice lasts for this page only.
  }
}

/** Tenants used before in this browser, most recent first. @returns {string[]} */
export function knownTenants() {
  try {
    const v = JSON.parse(localStorage.getItem(TENANTS_KEY) || '[]');
    return Array.isArray(v) ? v.filter(x => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

/** An API answer that was not a success: the HTTP status and the server's message. */
export class ApiError extends Error {
  /** @param {number} status @param {string} message */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * GETs `path` (with `params`) as JSON, with the answer's headers (a partial answer says so
 * only in them: `X-Skein-Partial`, `X-Skein-Unreachable-Ingesters`, `X-Skein-Truncated`).
 * @param {string} path
 * @param {Record<string, string | number | undefined | null>} [params]
 * @param {AbortSignal} [signal]
 * @returns {Promise<{body: any, headers: Headers}>}
 */
export async function request(path, params = {}, signal) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const url = q.size ? `${path}?${q}` : path;
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json' };
  const t = tenant();
  if (t) headers['X-Scope-OrgID'] = t;
  let resp;
  try {
    resp = await fetch(url, { headers, signal });
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'Skein did not answer: check that the server is running and reachable.');
  }
  const text = await resp.text();
  /** @type {any} */
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!resp.ok) {
    const msg = (body && typeof body.error === 'string' && body.error)
      || (body && body.error && body.error.message)
      || (body && Array.isArray(body.errors) && body.errors[0] && body.errors[0].msg)
      || `HTTP ${resp.status}`;
    throw new ApiError(resp.status, msg);
  }
  return { body, headers: resp.headers };
}

/**
 * GETs `path` (with `params`) as JSON: the body only.
 * @param {string} path
 * @param {Record<string, string | number | undefined | null>} [params]
 * @param {AbortSignal} [signal]
 * @returns {Promise<any>}
 */
export async function get(path, params = {}, signal) {
  return (await request(path, params, signal)).body;
}

/**
 * The warnings of a partial answer, from its headers; empty when the answer is whole.
 * @param {Headers} headers
 * @returns {string[]}
 */
export function partialWarnings(headers) {
  if ((headers.get('X-Skein-Partial') || '').toLowerCase() !== 'true') return [];
  const out = [];
  const truncated = headers.get('X-Skein-Truncated');
  if (truncated) out.push(truncated);
  const unreachable = headers.get('X-Skein-Unreachable-Ingesters');
  if (unreachable) {
    out.push(...unreachable.split('; ').filter(Boolean).map(x => `ingester ${x}: its recent data is missing`));
  }
  if (!out.length) out.push('the server marked this answer partial');
  return out;
}

/** Service names (Jaeger API). @param {AbortSignal} [signal] @returns {Promise<string[]>} */
export async function services(signal) {
  const v = await get('/jaeger/api/services', {}, signal);
  return Array.isArray(v && v.data) ? v.data : [];
}

/** Span names of `service`. @param {string} service @param {AbortSignal} [signal] @returns {Promise<string[]>} */
export async function operations(service, signal) {
  const v = await get(`/jaeger/api/services/${encodeURIComponent(service)}/operations`, {}, signal);
  return Array.isArray(v && v.data) ? v.data : [];
}

/** Tag names in the window. @param {{start: number, end: number}} w @returns {Promise<string[]>} */
export async function tagNames(w) {
  const v = await get('/api/search/tags', { start: w.start, end: w.end });
  return Array.isArray(v && v.tagNames) ? v.tagNames : [];
}

/** Values of tag `name` in the window. @param {string} name @param {{start: number, end: number}} w @returns {Promise<string[]>} */
export async function tagValues(name, w) {
  const v = await get(`/api/search/tag/${encodeURIComponent(name)}/values`, { start: w.start, end: w.end });
  return Array.isArray(v && v.tagValues) ? v.tagValues : [];
}

/** A window in Unix seconds. @typedef {{start: number, end: number}} Window */

/**
 * Tag names by scope (Tempo's v2 listing), narrowed by the TraceQL query `q` when given.
 * @param {'span' | 'resource' | 'intrinsic' | ''} scope
 * @param {string} q
 * @param {Window} w
 * @param {AbortSignal} [signal]
 * @returns {Promise<Record<string, string[]>>} names by scope name
 */
export async function tagNamesV2(scope, q, w, signal) {
  const v = await get('/api/v2/search/tags', { scope, q, start: w.start, end: w.end, limit: 1000 }, signal);
  /** @type {Record<string, string[]>} */
  const out = {};
  for (const s of Array.isArray(v && v.scopes) ? v.scopes : []) {
    if (s && typeof s.name === 'string') out[s.name] = Array.isArray(s.tags) ? s.tags : [];
  }
  return out;
}

/**
 * Typed values of a TraceQL tag (`resource.service.name`, `span.x`, `.x`, `name`, …),
 * narrowed by the TraceQL query `q`.
 * @param {string} tag
 * @param {string} q
 * @param {Window} w
 * @param {AbortSignal} [signal]
 * @returns {Promise<{type: string, value: string}[]>}
 */
export async function tagValuesV2(tag, q, w, signal) {
  const v = await get(`/api/v2/search/tag/${encodeURIComponent(tag)}/values`, { q, start: w.start, end: w.end, limit: 1000 }, signal);
  return (Array.isArray(v && v.tagValues) ? v.tagValues : [])
    .filter((/** @type {any} */ x) => x && typeof x.value === 'string')
    .map((/** @type {any} */ x) => ({ type: typeof x.type === 'string' ? x.type : 'string', value: x.value }));
}
