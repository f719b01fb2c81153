// The search page: the form (service, operation, tags, durations, time range, limit), the
// scatter plot of the results and the sortable result list. The URL holds the whole search.

import * as api from './api.js';
import { navigate } from './app.js';
import {
  RANGES, debounce, fmtAgo, fmtDuration, fmtTime, h, notice, parseDuration, serviceColour, svg,
  toLocalInput, windowOf,
} from './util.js';

/**
 * One search result, as `/api/search` returns it.
 * @typedef {{traceID: string, rootServiceName: string, rootTraceName: string,
 *   startTimeUnixNano: string, durationMs?: number, spanCount?: number, errorCount?: number,
 *   serviceStats?: Record<string, {spanCount: number, errorCount?: number}>}} TraceSummary
 */

const SORTS = /** @type {[string, string, (a: TraceSummary, b: TraceSummary) => number][]} */ ([
  ['recent', 'Most recent', (a, b) => startMs(b) - startMs(a)],
  ['longest', 'Longest first', (a, b) => (b.durationMs || 0) - (a.durationMs || 0)],
  ['shortest', 'Shortest first', (a, b) => (a.durationMs || 0) - (b.durationMs || 0)],
  ['spans', 'Most spans', (a, b) => (b.spanCount || 0) - (a.spanCount || 0)],
  ['errors', 'Most errors', (a, b) => (b.errorCount || 0) - (a.errorCount || 0)],
]);

/** @param {TraceSummary} t */
function startMs(t) {
  return Number(BigInt(t.startTimeUnixNano || '0') / 1000000n);
}

/**
 * Splits logfmt `key=value key2="a b"` into pairs; `null` with a reason when malformed.
 * @param {string} text
 * @returns {{pairs: [string, string][], error: string | null}}
 */
export function parseTags(text) {
  /** @type {[string, string][]} */
  const pairs = [];
  const re = /\s*([^\s="]+)=("((?:[^"\\]|\\.)*)"|[^\s"]*)/y;
  let pos = 0;
  const s = text.trim();
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) {
      const rest = s.slice(pos).trim().split(/\s+/)[0];
      return { pairs, error: `"${rest}" is not key=value (quote values with spaces: name="GET /x")` };
    }
    const value = m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : m[2];
    if (!value) return { pairs, error: `tag "${m[1]}" has no value` };
    pairs.push([m[1], value]);
    pos = re.lastIndex;
    while (pos < s.length && /\s/.test(s[pos])) pos++;
  }
  return { pairs, error: null };
}

/** logfmt of one pair. @param {string} k @param {string} v */
function logfmt(k, v) {
  return /[\s"=]/.test(v) || v === '' ? `${k}="${v.replace(/["\\]/g, '\\$&')}"` : `${k}=${v}`;
}

/** @param {import('./app.js').ViewContext} ctx */
export function renderSearch(ctx) {
  document.title = 'Search · Skein';
  const q = ctx.url.searchParams;
  const win = windowOf(q);
  const form = searchForm(ctx, q, win);
  const results = h('section', { class: 'results', id: 'results' });
  ctx.root.append(h('div', { class: 'search-page' }, form, results));
  runSearch(ctx, q, win, results);
}

/**
 * @param {import('./app.js').ViewContext} ctx
 * @param {URLSearchParams} q
 * @param {{start: number, end: number, custom: boolean, key: string}} win
 */
function searchForm(ctx, q, win) {
  // The service is typed with suggestions from the API (a long list stays usable); empty
  // means all services.
  const service = h('input', {
    id: 'service', name: 'service', list: 'service-list', value: q.get('service') || '',
    placeholder: 'All services', spellcheck: 'false', autocomplete: 'off', 'aria-label': 'Service',
  });
  const serviceList = h('datalist', { id: 'service-list' });
  const operation = h('select', { id: 'operation', name: 'operation', 'aria-label': 'Operation', disabled: !q.get('service') },
    h('option', { value: '' }, q.get('service') ? 'All operations' : 'Choose a service first'));
  const tags = h('input', {
    id: 'tags', name: 'tags', value: q.get('tags') || '', list: 'tag-suggestions', spellcheck: 'false',
    placeholder: 'http.status_code=500 error=true', autocomplete: 'off',
  });
  const suggestions = h('datalist', { id: 'tag-suggestions' });
  const minD = h('input', { id: 'min-duration', name: 'minDuration', value: q.get('minDuration') || '', placeholder: 'e.g. 300ms', size: 8 });
  const maxD = h('input', { id: 'max-duration', name: 'maxDuration', value: q.get('maxDuration') || '', placeholder: 'e.g. 1.2s', size: 8 });
  const range = h('select', { id: 'range', name: 'range', 'aria-label': 'Time range' },
    ...RANGES.map(([k, label]) => h('option', { value: k, selected: k === win.key }, label)),
    h('option', { value: 'custom', selected: win.custom }, 'Custom range…'));
  const from = h('input', { type: 'datetime-local', id: 'from', value: toLocalInput(win.start), 'aria-label': 'From' });
  const to = h('input', { type: 'datetime-local', id: 'to', value: toLocalInput(win.end), 'aria-label': 'To' });
  const custom = h('span', { class: 'custom-range', hidden: !win.custom }, from, ' – ', to);
  const limit = h('input', { id: 'limit', name: 'limit', type: 'number', min: 1, max: 10000, value: q.get('limit') || '20', size: 5 });
  const error = h('div', { class: 'form-error', role: 'alert' });
  range.addEventListener('change', () => { custom.hidden = range.value !== 'custom'; });

  const wantService = q.get('service') || '';
  const wantOp = q.get('operation') || '';
  /** @type {string[]} */
  let known = [];
  api.services(ctx.signal).then(list => {
    known = list.slice().sort();
    serviceList.replaceChildren(...known.map(s => h('option', { value: s })));
    service.dataset.loaded = 'true';
    if (wantService) loadOperations(wantService, wantOp);
  }).catch(e => {
    if (ctx.signal.aborted) return;
    service.dataset.loaded = 'error';
    error.textContent = `Could not list services: ${e.message}`;
  });

  /** @param {string} svc @param {string} selected */
  function loadOperations(svc, selected) {
    operation.replaceChildren(h('option', { value: '' }, svc ? 'All operations' : 'Choose a service first'));
    operation.disabled = !svc;
    if (!svc) return;
    api.operations(svc, ctx.signal).then(ops => {
      const names = ops.slice().sort();
      if (selected && !names.includes(selected)) names.unshift(selected);
      operation.append(...names.map(o => h('option', { value: o, selected: o === selected }, o)));
    }).catch(() => { /* the operation stays "all"; the search itself reports errors */ });
  }
  // Operations follow the service as soon as it names a known one (picking a suggestion
  // fires `input` too), and when the field is left.
  let opsFor = wantService;
  const followService = () => {
    const v = service.value.trim();
    if (v === opsFor || (v && !known.includes(v))) return;
    opsFor = v;
    loadOperations(v, '');
  };
  service.addEventListener('input', followService);
  service.addEventListener('change', followService);

  // Tag autocomplete: names while typing a key, values after `key=`; each suggestion is the
  // whole input with the last word completed, which is what a datalist can offer.
  /** @type {Map<string, Promise<string[]>>} */
  const cache = new Map();
  /** @param {string} key @param {() => Promise<string[]>} load */
  const cached = (key, load) => {
    let p = cache.get(key);
    if (!p) {
      p = load().catch(() => /** @type {string[]} */ ([]));
      cache.set(key, p);
    }
    return p;
  };
  const suggest = debounce(async () => {
    const text = tags.value;
    const m = /(^|\s)([^\s=]*)(=("?)([^"\s]*))?$/.exec(text);
    if (!m) return;
    const head = text.slice(0, m.index + m[1].length);
    const w = windowOf(q);
    let options = /** @type {string[]} */ ([]);
    if (m[3] === undefined) {
      const names = await cached('', () => api.tagNames(w));
      options = ['service.name', 'name', ...names].filter(n => n.startsWith(m[2])).slice(0, 50).map(n => `${head}${n}=`);
    } else {
      const key = m[2];
      const loader = key === 'service.name'
        ? () => api.services()
        : key === 'name' ? () => Promise.resolve(/** @type {string[]} */ ([])) : () => api.tagValues(key, w);
      const values = await cached(`v:${key}`, loader);
      options = values.filter(v => v.startsWith(m[5])).slice(0, 50).map(v => `${head}${logfmt(key, v)}`);
    }
    if (tags.value !== text) return;
    suggestions.replaceChildren(...options.map(o => h('option', { value: o })));
  }, 150);
  tags.addEventListener('input', suggest);
  tags.addEventListener('focus', suggest);

  const form = h('form', { class: 'search-form', id: 'search-form', autocomplete: 'off' },
    field('Service', service), serviceList, field('Operation', operation),
    field('Tags', tags, 'key=value pairs that must all hold on one span'), suggestions,
    field('Min duration', minD), field('Max duration', maxD),
    field('Time range', h('span', {}, range, custom)), field('Limit', limit),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary', id: 'search-button' }, 'Find traces')),
    error);

  form.addEventListener('submit', e => {
    e.preventDefault();
    error.textContent = '';
    const next = new URLSearchParams();
    if (service.value.trim()) next.set('service', service.value.trim());
    if (operation.value) next.set('operation', operation.value);
    const t = tags.value.trim();
    if (t) {
      const parsed = parseTags(t);
      if (parsed.error) {
        error.textContent = `Tags: ${parsed.error}.`;
        tags.focus();
        return;
      }
      next.set('tags', t);
    }
    for (const [input, name] of /** @type {[HTMLInputElement, string][]} */ ([[minD, 'minDuration'], [maxD, 'maxDuration']])) {
      const v = input.value.trim();
      if (!v) continue;
      if (parseDuration(v) === null) {
        error.textContent = `${name === 'minDuration' ? 'Min' : 'Max'} duration "${v}" is not a duration: write e.g. 300ms, 1.2s or 2m.`;
        input.focus();
        return;
      }
      next.set(name, v);
    }
    const lo = parseDuration(minD.value), hi = parseDuration(maxD.value);
    if (lo !== null && hi !== null && lo > hi) {
      error.textContent = 'Min duration is greater than max duration.';
      return;
    }
    if (range.value === 'custom') {
      const s = Date.parse(from.value) / 1000, en = Date.parse(to.value) / 1000;
      if (!Number.isFinite(s) || !Number.isFinite(en) || s >= en) {
        error.textContent = 'Custom range: choose a start before the end.';
        return;
      }
      next.set('range', 'custom');
      next.set('start', String(Math.floor(s)));
      next.set('end', String(Math.ceil(en)));
    } else if (range.value !== '1h') {
      next.set('range', range.value);
    }
    const l = Number(limit.value);
    if (!Number.isInteger(l) || l < 1 || l > 10000) {
      error.textContent = 'Limit: a whole number from 1 to 10000.';
      return;
    }
    if (l !== 20) next.set('limit', String(l));
    const sort = q.get('sort');
    if (sort) next.set('sort', sort);
    navigate(`/search?${next}`);
  });
  return form;
}

/** @param {string} label @param {HTMLElement} control @param {string} [hint] */
function field(label, control, hint) {
  return h('label', { class: 'field', title: hint || null }, h('span', { class: 'field-label' }, label), control);
}

/**
 * @param {import('./app.js').ViewContext} ctx
 * @param {URLSearchParams} q
 * @param {{start: number, end: number}} win
 * @param {HTMLElement} out
 */
async function runSearch(ctx, q, win, out) {
  out.replaceChildren(notice('loading', 'Searching…'));
  const pairs = [];
  if (q.get('service')) pairs.push(logfmt('service.name', q.get('service') || ''));
  if (q.get('operation')) pairs.push(logfmt('name', q.get('operation') || ''));
  const extra = parseTags(q.get('tags') || '');
  if (extra.error) {
    out.replaceChildren(notice('error', 'The tags in this link are malformed', [`${extra.error}. Fix them in the form above.`]));
    return;
  }
  for (const [k, v] of extra.pairs) pairs.push(logfmt(k, v));
  const started = performance.now();
  /** @type {TraceSummary[]} */
  let traces;
  try {
    const body = await api.get('/api/search', {
      tags: pairs.join(' '),
      minDuration: q.get('minDuration'),
      maxDuration: q.get('maxDuration'),
      start: win.start,
      end: win.end,
      limit: q.get('limit') || 20,
    }, ctx.signal);
    traces = Array.isArray(body && body.traces) ? body.traces : [];
  } catch (e) {
    if (ctx.signal.aborted) return;
    const err = /** @type {api.ApiError} */ (e);
    out.replaceChildren(notice('error', 'The search failed', [
      err.message,
      err.status === 400 ? ' Correct the form above and search again.' : ' Try again; if it keeps failing, check the querier\'s log.',
    ]));
    return;
  }
  if (ctx.signal.aborted) return;
  const took = performance.now() - started;
  if (!traces.length) {
    out.replaceChildren(notice('empty', 'No traces match', [
      'Widen the time range, lower or remove the duration bounds, or remove tags. ',
      'Check the tenant at the top right: each tenant sees only its own traces.',
    ]));
    return;
  }
  const sortKey = q.get('sort') || 'recent';
  const sort = SORTS.find(s => s[0] === sortKey) || SORTS[0];
  const sorted = traces.slice().sort(sort[2]);
  const sortSelect = h('select', { id: 'sort', 'aria-label': 'Sort by' },
    ...SORTS.map(([k, label]) => h('option', { value: k, selected: k === sort[0] }, label)));
  sortSelect.addEventListener('change', () => {
    const next = new URLSearchParams(q);
    if (sortSelect.value === 'recent') next.delete('sort');
    else next.set('sort', sortSelect.value);
    navigate(`/search?${next}`, { replace: true });
  });
  out.replaceChildren(
    scatter(traces, out.clientWidth || 900),
    h('div', { class: 'results-bar' },
      h('span', { class: 'count', id: 'result-count' }, `${traces.length} trace${traces.length === 1 ? '' : 's'}`),
      h('span', { class: 'muted' }, ` in ${Math.round(took)} ms`),
      traces.length >= Number(q.get('limit') || 20)
        ? h('span', { class: 'muted', id: 'limit-note' }, ' · the limit was reached: raise it, or narrow the search, to see all matches')
        : null,
      h('label', { class: 'sort' }, 'Sort ', sortSelect)),
    resultList(sorted));
}

/** Rows are drawn in pages, so a search with a limit of thousands stays quick to show. */
const PAGE = 200;

/** @param {TraceSummary[]} sorted */
function resultList(sorted) {
  const list = h('ol', { class: 'result-list', id: 'result-list' });
  const more = h('button', { type: 'button', id: 'show-more', class: 'show-more' });
  let shown = 0;
  const next = () => {
    list.append(...sorted.slice(shown, shown + PAGE).map(resultRow));
    shown = Math.min(sorted.length, shown + PAGE);
    more.hidden = shown >= sorted.length;
    more.textContent = `Show ${Math.min(PAGE, sorted.length - shown)} more (${sorted.length - shown} not shown)`;
  };
  more.addEventListener('click', next);
  next();
  return h('div', {}, list, more);
}

/** @param {TraceSummary} t */
function resultRow(t) {
  const ms = startMs(t);
  const stats = Object.entries(t.serviceStats || {}).sort((a, b) => b[1].spanCount - a[1].spanCount);
  const errors = t.errorCount || 0;
  return h('li', {},
    h('a', { class: `result${errors ? ' has-errors' : ''}`, href: `/trace/${t.traceID}`, 'data-trace-id': t.traceID },
      h('div', { class: 'result-head' },
        h('span', { class: 'svc-dot', style: `background:${serviceColour(t.rootServiceName)}` }),
        h('span', { class: 'root-service' }, t.rootServiceName),
        h('span', { class: 'root-name' }, t.rootTraceName),
        h('span', { class: 'result-duration' }, fmtDurationMs(t.durationMs))),
      h('div', { class: 'result-meta' },
        h('span', { title: fmtTime(ms) }, fmtAgo(ms)),
        h('span', { class: 'muted' }, fmtTime(ms)),
        h('span', { class: 'span-count' }, `${t.spanCount ?? '?'} span${t.spanCount === 1 ? '' : 's'}`),
        errors ? h('span', { class: 'error-count' }, `${errors} error${errors === 1 ? '' : 's'}`) : h('span', { class: 'muted' }, 'no errors'),
        h('span', { class: 'trace-id mono' }, t.traceID)),
      h('div', { class: 'pills' }, ...stats.map(([svc, s]) =>
        h('span', { class: `pill${s.errorCount ? ' pill-error' : ''}`, style: `--c:${serviceColour(svc)}` },
          h('span', { class: 'svc-dot' }), svc, h('b', {}, String(s.spanCount)))))));
}

/** The search answers whole milliseconds. @param {number | undefined} ms */
function fmtDurationMs(ms) {
  if (ms === undefined) return '–';
  return ms < 1 ? '< 1ms' : fmtDuration(ms * 1e6);
}

/**
 * Duration against start time, one dot per trace; errors in red; a click opens the trace.
 * @param {TraceSummary[]} traces
 * @param {number} width
 */
function scatter(traces, width) {
  const W = Math.max(320, width), H = 170, L = 56, R = 12, T = 10, B = 24;
  const el = svg('svg', { class: 'scatter', id: 'scatter', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': 'Trace durations over time' });
  const times = traces.map(startMs);
  let t0 = Math.min(...times), t1 = Math.max(...times);
  if (t1 - t0 < 1000) { t0 -= 30000; t1 += 30000; }
  const durations = traces.map(t => t.durationMs || 0);
  const maxD = Math.max(1, ...durations);
  const median = durations.slice().sort((a, b) => a - b)[Math.floor(durations.length / 2)];
  // One slow outlier would flatten every other dot onto the axis: past a 50x spread the
  // duration axis turns logarithmic (labelled at powers of ten).
  const log = maxD / Math.max(1, median) > 50;
  const x = (/** @type {number} */ ms) => L + ((ms - t0) / (t1 - t0)) * (W - L - R);
  const scale = (/** @type {number} */ d) => (log ? Math.log10(1 + d) / Math.log10(1 + maxD) : d / maxD);
  const y = (/** @type {number} */ d) => H - B - scale(d) * (H - T - B);
  const ticks = log
    ? [0, ...Array.from({ length: Math.floor(Math.log10(maxD)) + 1 }, (_, i) => 10 ** i)]
    : [0, 1, 2, 3, 4].map(i => (maxD * i) / 4);
  for (const d of ticks) {
    el.append(svg('line', { x1: L, x2: W - R, y1: y(d), y2: y(d), class: 'grid' }));
    const label = svg('text', { x: L - 6, y: y(d) + 4, 'text-anchor': 'end', class: 'axis' });
    label.textContent = d === 0 ? '0' : fmtDuration(d * 1e6);
    el.append(label);
  }
  el.dataset.scale = log ? 'log' : 'linear';
  for (let i = 0; i <= 4; i++) {
    const ms = t0 + ((t1 - t0) * i) / 4;
    const label = svg('text', { x: x(ms), y: H - 6, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle', class: 'axis' });
    label.textContent = fmtTime(ms).slice(11, 19);
    el.append(label);
  }
  traces.forEach((t, i) => {
    const dot = svg('circle', {
      cx: x(times[i]), cy: y(t.durationMs || 0), r: 4 + Math.min(4, Math.log10(1 + (t.spanCount || 1))),
      class: (t.errorCount || 0) > 0 ? 'dot dot-error' : 'dot', 'data-trace-id': t.traceID,
    });
    const title = svg('title');
    title.textContent = `${t.rootServiceName}: ${t.rootTraceName}\n${fmtDurationMs(t.durationMs)}, ${t.spanCount} spans, ${t.errorCount || 0} errors\n${fmtTime(times[i])}`;
    dot.append(title);
    dot.addEventListener('click', () => navigate(`/trace/${t.traceID}`));
    el.append(dot);
  });
  return h('div', { class: 'scatter-wrap' }, el);
}
