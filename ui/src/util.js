// Small helpers shared by the views: DOM building, formatting, durations, colours.

/**
 * @typedef {Record<string, string | number | boolean | null | undefined | EventListener>} Props
 * @typedef {Node | string | number | null | undefined | false} Child
 */

/**
 * Creates an element. `props` keys starting with `on` add listeners, `class` sets the class
 * name, `dataset`-style keys (`data-*`) and others become attributes; `false`/`null` skip.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Props} [props]
 * @param {...(Child | Child[])} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), /** @type {EventListener} */ (v));
    } else if (k === 'class') {
      el.className = String(v);
    } else if (k === 'value' && 'value' in el) {
      /** @type {HTMLInputElement} */ (/** @type {unknown} */ (el)).value = String(v);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

/**
 * @param {Node} el
 * @param {(Child | Child[])[]} children
 */
export function append(el, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

/** An SVG element. @param {string} tag @param {Record<string, string | number>} [attrs] */
export function svg(tag, attrs = {}) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/**
 * A human duration from nanoseconds: `850µs`, `12.3ms`, `1.24s`, `2m 5s`.
 * @param {number} ns
 */
export function fmtDuration(ns) {
  if (!Number.isFinite(ns)) return '–';
  const abs = Math.abs(ns);
  const sign = ns < 0 ? '-' : '';
  if (abs < 1e3) return `${sign}${Math.round(abs)}ns`;
  if (abs < 1e6) return `${sign}${trim(abs / 1e3)}µs`;
  if (abs < 1e9) return `${sign}${trim(abs / 1e6)}ms`;
  if (abs < 60e9) return `${sign}${trim(abs / 1e9)}s`;
  const m = Math.floor(abs / 60e9);
  const sec = Math.round((abs - m * 60e9) / 1e9);
  if (m < 60) return sec ? `${sign}${m}m ${sec}s` : `${sign}${m}m`;
  const hrs = Math.floor(m / 60);
  return `${sign}${hrs}h ${m % 60}m`;
}

/** Three significant digits, without trailing zeros. @param {number} x */
function trim(x) {
  const s = x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
}

const UNITS = /** @type {Record<string, number>} */ ({
  ns: 1, us: 1e3, 'µs': 1e3, 'μs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9,
});

/**
 * Parses a duration like the API takes them (Go syntax: `1.2s`, `300ms`, `1m30s`).
 * Returns nanoseconds, or `null` when the text is not a duration.
 * @param {string} text
 * @returns {number | null}
 */
export function parseDuration(text) {
  const s = text.trim();
  if (!s) return null;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/gy;
  let total = 0;
  let pos = 0;
  let m;
  while ((m = re.exec(s)) !== null) {
    total += parseFloat(m[1]) * UNITS[m[2]];
    pos = re.lastIndex;
  }
  return pos === s.length && pos > 0 ? total : null;
}

/** `5 minutes ago`, from a time in ms. @param {number} ms @param {number} [now] */
export function fmtAgo(ms, now = Date.now()) {
  const d = (now - ms) / 1000;
  if (d < 0) return 'in the future';
  if (d < 45) return 'just now';
  const steps = /** @type {[number, string][]} */ ([
    [60, 'minute'], [3600, 'hour'], [86400, 'day'], [7 * 86400, 'week'], [30 * 86400, 'month'], [365 * 86400, 'year'],
  ]);
  let unit = steps[0];
  for (const s of steps) if (d >= s[0] * 0.9) unit = s;
  const n = Math.max(1, Math.round(d / unit[0]));
  return `${n} ${unit[1]}${n === 1 ? '' : 's'} ago`;
}

/** `2026-11-22 04:13:30.123`, local time. @param {number} ms */
export function fmtTime(ms) {
  const d = new Date(ms);
  const p = (/** @type {number} */ n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** A hash of a string, stable across page loads. @param {string} s */
function hash(s) {
  let x = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    x ^= s.charCodeAt(i);
    x = Math.imul(x, 0x01000193);
  }
  return x >>> 0;
}

/** @type {Map<string, string>} */
const colours = new Map();

/**
 * The colour of a service: chosen from its name only, so it is the same on every page and
 * every load. Hues are spread with the golden angle; lightness kept readable on white.
 * @param {string} service
 */
export function serviceColour(service) {
  let c = colours.get(service);
  if (!c) {
    const x = hash(service);
    const hue = Math.round(((x % 360) * 137.508) % 360);
    const sat = 55 + ((x >>> 9) % 20);
    const light = 42 + ((x >>> 17) % 12);
    c = `hsl(${hue} ${sat}% ${light}%)`;
    colours.set(service, c);
  }
  return c;
}

/** Normalises a trace ID typed by a person: hex, 1–32 digits. @param {string} s */
export function cleanTraceId(s) {
  const t = s.trim().toLowerCase().replace(/^0x/, '');
  return /^[0-9a-f]{1,32}$/.test(t) ? t : null;
}

/** Debounces `fn` by `ms`. @template {unknown[]} A @param {(...a: A) => void} fn @param {number} ms */
export function debounce(fn, ms) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let t;
  return (/** @type {A} */ ...a) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...a), ms);
  };
}

/** A notice box for loading, empty, warning and error states. @param {'loading' | 'empty' | 'warning' | 'error'} kind @param {string} title @param {Child[]} [body] */
export function notice(kind, title, body = []) {
  return h('div', { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    kind === 'loading' ? h('span', { class: 'spinner', 'aria-hidden': 'true' }) : null,
    h('div', {}, h('strong', {}, title), body.length ? h('div', { class: 'notice-body' }, ...body) : null));
}

/** Time range presets, as `[key, label, seconds]`. */
export const RANGES = /** @type {[string, string, number][]} */ ([
  ['5m', 'Last 5 minutes', 300], ['15m', 'Last 15 minutes', 900], ['30m', 'Last 30 minutes', 1800],
  ['1h', 'Last hour', 3600], ['3h', 'Last 3 hours', 10800], ['6h', 'Last 6 hours', 21600],
  ['12h', 'Last 12 hours', 43200], ['24h', 'Last 24 hours', 86400], ['2d', 'Last 2 days', 172800],
  ['7d', 'Last 7 days', 604800],
]);

/**
 * The window of a view's URL parameters, in Unix seconds: a preset (`range=1h`, default
 * `fallback`) ending now, or `start`/`end` (custom).
 * @param {URLSearchParams} q
 * @param {string} [fallback]
 * @returns {{start: number, end: number, custom: boolean, key: string}}
 */
export function windowOf(q, fallback = '1h') {
  const now = Math.floor(Date.now() / 1000);
  const start = Number(q.get('start'));
  const end = Number(q.get('end'));
  if (q.get('range') === 'custom' && start > 0 && end > 0) {
    return { start: Math.min(start, end), end: Math.max(start, end), custom: true, key: 'custom' };
  }
  const key = q.get('range') || fallback;
  const preset = RANGES.find(r => r[0] === key) || RANGES.find(r => r[0] === fallback) || RANGES[3];
  return { start: now - preset[2], end: now, custom: false, key: preset[0] };
}

/** `datetime-local` input value from Unix seconds. @param {number} s */
export function toLocalInput(s) {
  const d = new Date(s * 1000);
  const p = (/** @type {number} */ n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}
