// The search page: the TraceQL box, the form that writes TraceQL into it (service,
// operation, status, tags, durations) with the time range and limits, the scatter plot of
// the results and the sortable result list with each trace's matched spans. The URL holds
// the whole search (`q` is the TraceQL that ran).

import * as api from './api.js';
import { navigate } from './app.js';
import { TraceqlEditor } from './editor.js';
import { buildQuery, logfmt, matchesAll, parseTags } from './traceql.js';
import {
  RANGES, debounce, fmtAgo, fmtDuration, fmtTime, h, notice, parseDuration, serviceColour, svg,
  toLocalInput, windowOf,
} from './util.js';

/**
 * An OTLP attribute as the search answers it (protobuf JSON; 64-bit integers as strings).
 * @typedef {{key: string, value?: {stringValue?: string, intValue?: string, doubleValue?: number, boolValue?: boolean}}} KeyValue
 * @typedef {{spanID: string, name?: string, startTimeUnixNano?: string, durationNanos?: string, attributes?: KeyValue[]}} MatchedSpan
 * @typedef {{spans?: MatchedSpan[], matched?: number, attributes?: KeyValue[]}} SpanSet
 */

/**
 * One search result, as `/api/search` returns it: Tempo's `TraceSearchMetadata`, whose
 * zero-valued fields are left out (no `durationMs` is 0 ms, no `errorCount` is none).
 * @typedef {{traceID: string, rootServiceName?: string, rootTraceName?: string,
 *   startTimeUnixNano?: string, durationMs?: number, spanSet?: SpanSet, spanSets?: SpanSet[],
 *   serviceStats?: Record<string, {spanCount?: number, errorCount?: number}>}} TraceSummary
 */

/** Spans and errors of a trace: the sums of its services' stats. @param {TraceSummary} t */
export function totals(t) {
  let spans = 0, errors = 0;
  for (const s of Object.values(t.serviceStats || {})) {
    spans += s.spanCount || 0;
    errors += s.errorCount || 0;
  }
  return { spans, errors, known: !!t.serviceStats };
}

const SORTS = /** @type {[string, string, (a: TraceSummary, b: TraceSummary) => number][]} */ ([
  ['recent', 'Most recent', (a, b) => startMs(b) - startMs(a)],
  ['longest', 'Longest first', (a, b) => (b.durationMs || 0) - (a.durationMs || 0)],
  ['shortest', 'Shortest first', (a, b) => (a.durationMs || 0) - (b.durationMs || 0)],
  ['spans', 'Most spans', (a, b) => totals(b).spans - totals(a).spans],
  ['errors', 'Most errors', (a, b) => totals(b).errors - totals(a).errors],
]);

/** @param {TraceSummary} t */
function startMs(t) {
  return Number(BigInt(t.startTimeUnixNano || '0') / 1000000n);
}

/** Most matched span IDs a trace link carries (URLs stay short). */
const MAX_MATCH_IDS = 100;
/** Spans per spanset when the URL names none (Tempo's default). */
const DEFAULT_SPSS = 3;

/** The form fields a URL holds. @param {URLSearchParams} q @returns {import('./traceql.js').FormFields} */
function fieldsOf(q) {
  return {
    service: q.get('service') || '',
    operation: q.get('operation') || '',
    status: q.get('status') || '',
    tags: q.get('tags') || '',
    minDuration: q.get('minDuration') || '',
    maxDuration: q.get('maxDuration') || '',
    durationOf: q.get('durationOf') || 'trace',
  };
}

/** The TraceQL a search URL runs: `q`, or what its form fields stand for. @param {URLSearchParams} q */
function queryOf(q) {
  const text = (q.get('q') || '').trim();
  return text || buildQuery(fieldsOf(q), parseDuration);
}

/** @param {import('./app.js').ViewContext} ctx */
export function renderSearch(ctx) {
  document.title = 'Search · Skein';
  const q = ctx.url.searchParams;
  const win = windowOf(q);
  const results = h('section', { class: 'results', id: 'results' });
  const { form, panel, editor } = searchForm(ctx, q, win);
  ctx.root.append(h('div', { class: 'search-page' }, form, h('div', { class: 'search-main' }, panel, results)));
  editor.autosize();
  runSearch(ctx, q, win, results, editor);
}

/**
 * @param {import('./app.js').ViewContext} ctx
 * @param {URLSearchParams} q
 * @param {{start: number, end: number, custom: boolean, key: string}} win
 */
function searchForm(ctx, q, win) {
  const want = fieldsOf(q);
  // The service is typed with suggestions from the API (a long list stays usable); empty
  // means all services.
  const service = h('input', {
    id: 'service', name: 'service', list: 'service-list', value: want.service,
    placeholder: 'All services', spellcheck: 'false', autocomplete: 'off', 'aria-label': 'Service',
  });
  const serviceList = h('datalist', { id: 'service-list' });
  // The wanted operation is an option from the start, so the query it writes is whole
  // before the operations arrive.
  const operation = h('select', { id: 'operation', name: 'operation', 'aria-label': 'Operation', disabled: !want.service },
    h('option', { value: '' }, want.service ? 'All operations' : 'Choose a service first'),
    want.operation ? h('option', { value: want.operation, selected: true }, want.operation) : null);
  const status = h('select', { id: 'status', name: 'status', 'aria-label': 'Status' },
    ...[['', 'Any status'], ['error', 'Error'], ['ok', 'OK'], ['unset', 'Unset']].map(([v, label]) =>
      h('option', { value: v, selected: v === want.status }, label)));
  const tags = h('input', {
    id: 'tags', name: 'tags', value: want.tags, list: 'tag-suggestions', spellcheck: 'false',
    placeholder: 'http.status_code=500 error=true', autocomplete: 'off',
  });
  const suggestions = h('datalist', { id: 'tag-suggestions' });
  const durationOf = h('select', { id: 'duration-of', name: 'durationOf', 'aria-label': 'Duration of' },
    h('option', { value: 'trace', selected: want.durationOf !== 'span' }, 'of the trace'),
    h('option', { value: 'span', selected: want.durationOf === 'span' }, 'of a span'));
  const minD = h('input', { id: 'min-duration', name: 'minDuration', value: want.minDuration, placeholder: 'e.g. 300ms', size: 8 });
  const maxD = h('input', { id: 'max-duration', name: 'maxDuration', value: want.maxDuration, placeholder: 'e.g. 1.2s', size: 8 });
  const range = h('select', { id: 'range', name: 'range', 'aria-label': 'Time range' },
    ...RANGES.map(([k, label]) => h('option', { value: k, selected: k === win.key }, label)),
    h('option', { value: 'custom', selected: win.custom }, 'Custom range…'));
  const from = h('input', { type: 'datetime-local', id: 'from', value: toLocalInput(win.start), 'aria-label': 'From' });
  const to = h('input', { type: 'datetime-local', id: 'to', value: toLocalInput(win.end), 'aria-label': 'To' });
  const custom = h('span', { class: 'custom-range', hidden: !win.custom }, from, ' – ', to);
  const limit = h('input', { id: 'limit', name: 'limit', type: 'number', min: 1, max: 10000, value: q.get('limit') || '20', size: 5 });
  const spss = h('input', { id: 'spss', name: 'spss', type: 'number', min: 1, max: 100, value: q.get('spss') || String(DEFAULT_SPSS), size: 4 });
  const error = h('div', { class: 'form-error', role: 'alert' });
  range.addEventListener('change', () => { custom.hidden = range.value !== 'custom'; });

  /** @returns {import('./traceql.js').FormFields} */
  const fields = () => ({
    service: service.value, operation: operation.value, status: status.value, tags: tags.value,
    minDuration: minD.value, maxDuration: maxD.value, durationOf: durationOf.value,
  });

  // The TraceQL box: the form writes it until it is edited by hand ("TraceQL mode"), then
  // leaves it alone until "Reset to the form".
  const initial = queryOf(q);
  let mode = q.get('q') && initial !== buildQuery(want, parseDuration) ? 'traceql' : 'form';
  const modeLabel = h('span', { class: 'tq-mode', id: 'traceql-mode' });
  const reset = h('button', { type: 'button', class: 'linklike', id: 'traceql-reset' }, 'Reset to the form');
  const queryFields = h('div', { class: 'query-fields', id: 'query-fields' });
  const detachedNote = h('p', { class: 'form-note', id: 'form-detached' },
    'The TraceQL box was edited: these fields no longer write it. ',
    h('button', { type: 'button', class: 'linklike', onclick: () => resetToForm() }, 'Reset to the form'));
  const setMode = (/** @type {string} */ m) => {
    mode = m;
    modeLabel.dataset.mode = m;
    modeLabel.textContent = m === 'form' ? 'written by the form' : 'edited by hand';
    reset.hidden = m === 'form';
    detachedNote.hidden = m === 'form';
    queryFields.classList.toggle('detached', m !== 'form');
  };
  const sync = () => {
    if (mode === 'form') editor.setValue(buildQuery(fields(), parseDuration));
  };
  const resetToForm = () => {
    setMode('form');
    sync();
  };
  reset.addEventListener('click', resetToForm);

  /** The window the tag APIs use: the form's range as chosen now. */
  const tagWindow = () => {
    if (range.value === 'custom') {
      const s = Math.floor(Date.parse(from.value) / 1000), en = Math.ceil(Date.parse(to.value) / 1000);
      if (Number.isFinite(s) && Number.isFinite(en) && s < en) return { start: s, end: en, key: `${s}-${en}` };
    }
    const w = windowOf(new URLSearchParams({ range: range.value === 'custom' ? win.key : range.value }));
    return { start: w.start, end: w.end, key: w.key };
  };
  const editor = new TraceqlEditor({
    value: initial,
    window: tagWindow,
    signal: ctx.signal,
    onRun: () => form.requestSubmit(),
    onEdit: () => { if (mode !== 'traceql') setMode('traceql'); },
  });
  setMode(mode);

  /** @type {string[]} */
  let known = [];
  api.services(ctx.signal).then(list => {
    known = list.slice().sort();
    serviceList.replaceChildren(...known.map(s => h('option', { value: s })));
    service.dataset.loaded = 'true';
    if (want.service) loadOperations(want.service, want.operation || '');
  }).catch(e => {
    if (ctx.signal.aborted) return;
    service.dataset.loaded = 'error';
    error.textContent = `Could not list services: ${e.message}`;
  });

  /** @param {string} svc @param {string} selected */
  function loadOperations(svc, selected) {
    operation.replaceChildren(h('option', { value: '' }, svc ? 'All operations' : 'Choose a service first'));
    if (selected) operation.append(h('option', { value: selected, selected: true }, selected));
    operation.disabled = !svc;
    if (!svc) return;
    api.operations(svc, ctx.signal).then(ops => {
      const names = ops.slice().sort();
      if (selected && !names.includes(selected)) names.unshift(selected);
      operation.replaceChildren(h('option', { value: '' }, 'All operations'),
        ...names.map(o => h('option', { value: o, selected: o === selected }, o)));
    }).catch(() => { /* the operation stays as it is; the search itself reports errors */ });
  }
  // Operations follow the service as soon as it names a known one (picking a suggestion
  // fires `input` too), and when the field is left.
  let opsFor = want.service;
  const followService = () => {
    const v = service.value.trim();
    if (v === opsFor || (v && !known.includes(v))) return;
    opsFor = v;
    loadOperations(v, '');
    sync();
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

  queryFields.append(
    field('Service', service), serviceList, field('Operation', operation), field('Status', status),
    field('Tags', tags, 'key=value pairs that must all hold on one span; quote a value to compare it as text (k="500")'), suggestions,
    h('div', { class: 'field-row' }, field('Min duration', minD), field('Max duration', maxD)),
    field('Duration', durationOf, 'Whether the bounds apply to the whole trace or to the matching span'));
  const form = h('form', { class: 'search-form', id: 'search-form', autocomplete: 'off' },
    detachedNote, queryFields,
    field('Time range', h('span', {}, range, custom)),
    h('div', { class: 'field-row' }, field('Limit', limit, 'Most traces to return'),
      field('Spans per trace', spss, 'Matched spans shown per trace (and highlighted on its page)')),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary', id: 'search-button' }, 'Find traces')),
    error);
  // Every change of a query field rewrites the box (in form mode).
  queryFields.addEventListener('input', sync);
  queryFields.addEventListener('change', sync);
  form.addEventListener('keydown', e => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      form.requestSubmit();
    }
  });

  form.addEventListener('submit', e => {
    e.preventDefault();
    error.textContent = '';
    const next = new URLSearchParams();
    if (mode === 'form') {
      if (service.value.trim()) next.set('service', service.value.trim());
      if (operation.value) next.set('operation', operation.value);
      if (status.value) next.set('status', status.value);
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
      if ((lo !== null || hi !== null) && durationOf.value === 'span') next.set('durationOf', 'span');
      sync();
    }
    next.set('q', editor.value.trim() || '{}');
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
    const n = Number(spss.value);
    if (!Number.isInteger(n) || n < 1 || n > 100) {
      error.textContent = 'Spans per trace: a whole number from 1 to 100.';
      return;
    }
    if (n !== DEFAULT_SPSS) next.set('spss', String(n));
    const sort = q.get('sort');
    if (sort) next.set('sort', sort);
    navigate(`/search?${next}`);
  });

  const panel = h('section', { class: 'tq-panel', id: 'traceql-panel' },
    h('div', { class: 'tq-head' },
      h('label', { for: 'traceql', class: 'tq-title' }, 'TraceQL'), modeLabel, reset,
      h('span', { class: 'spacer' }),
      h('span', { class: 'muted tq-hint' }, 'Ctrl+Enter runs · Ctrl+Space suggests'),
      h('button', { type: 'button', class: 'primary', id: 'traceql-run', onclick: () => form.requestSubmit() }, 'Run query')),
    editor.el);
  return { form, panel, editor };
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
 * @param {TraceqlEditor} editor
 */
async function runSearch(ctx, q, win, out, editor) {
  out.replaceChildren(notice('loading', 'Searching…'));
  const extra = parseTags(q.get('tags') || '');
  if (extra.error && !q.get('q')) {
    out.replaceChildren(notice('error', 'The tags in this link are malformed', [`${extra.error}. Fix them in the form.`]));
    return;
  }
  const query = queryOf(q);
  const started = performance.now();
  /** @type {TraceSummary[]} */
  let traces;
  /** @type {string[]} */
  let warnings;
  try {
    const { body, headers } = await api.request('/api/search', {
      q: query,
      spss: q.get('spss') || DEFAULT_SPSS,
      start: win.start,
      end: win.end,
      limit: q.get('limit') || 20,
    }, ctx.signal);
    traces = Array.isArray(body && body.traces) ? body.traces : [];
    warnings = api.partialWarnings(headers);
  } catch (e) {
    if (ctx.signal.aborted) return;
    const err = /** @type {api.ApiError} */ (e);
    const traceql = err.status === 400 && /TraceQL/.test(err.message);
    if (traceql && editor.value.trim() === query.trim()) editor.showError(err.message);
    out.replaceChildren(notice('error', traceql ? 'The query is not valid TraceQL' : 'The search failed', [
      err.message,
      err.status === 400 ? ' Correct the query and search again.' : ' Try again; if it keeps failing, check the querier\'s log.',
    ]));
    return;
  }
  if (ctx.signal.aborted) return;
  const took = performance.now() - started;
  const banner = warnings.length
    ? h('div', { id: 'partial-warning' }, notice('warning', 'Partial results: some traces may be missing', warnings.map(w => h('div', {}, w))))
    : null;
  if (!traces.length) {
    out.replaceChildren(banner || '', notice('empty', 'No traces match', [
      'Widen the time range, loosen the query (durations, tags, status), ',
      'or check the tenant at the top right: each tenant sees only its own traces.',
    ]));
    return;
  }
  const showMatches = !matchesAll(query);
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
    banner || '',
    scatter(traces, out.clientWidth || 900, showMatches),
    h('div', { class: 'results-bar' },
      h('span', { class: 'count', id: 'result-count' }, `${traces.length} trace${traces.length === 1 ? '' : 's'}`),
      h('span', { class: 'muted' }, ` in ${Math.round(took)} ms`),
      traces.length >= Number(q.get('limit') || 20)
        ? h('span', { class: 'muted', id: 'limit-note' }, ' · the limit was reached: raise it, or narrow the search, to see all matches')
        : null,
      h('label', { class: 'sort' }, 'Sort ', sortSelect)),
    resultList(sorted, showMatches));
}

/** Rows are drawn in pages, so a search with a limit of thousands stays quick to show. */
const PAGE = 200;

/** @param {TraceSummary[]} sorted @param {boolean} showMatches */
function resultList(sorted, showMatches) {
  const list = h('ol', { class: 'result-list', id: 'result-list' });
  const more = h('button', { type: 'button', id: 'show-more', class: 'show-more' });
  let shown = 0;
  const next = () => {
    list.append(...sorted.slice(shown, shown + PAGE).map(t => resultRow(t, showMatches)));
    shown = Math.min(sorted.length, shown + PAGE);
    more.hidden = shown >= sorted.length;
    more.textContent = `Show ${Math.min(PAGE, sorted.length - shown)} more (${sorted.length - shown} not shown)`;
  };
  more.addEventListener('click', next);
  next();
  return h('div', {}, list, more);
}

/**
 * The matched spans of a trace (the spans of its spansets, each once) and how many matched
 * in all (more than those returned when a spanset had more than `spss`).
 * @param {TraceSummary} t
 */
export function matchedSpans(t) {
  const sets = t.spanSets && t.spanSets.length ? t.spanSets : t.spanSet ? [t.spanSet] : [];
  /** @type {Map<string, MatchedSpan>} */
  const spans = new Map();
  let matched = 0;
  /** @type {KeyValue[]} */
  const attributes = [];
  for (const set of sets) {
    matched += set.matched || 0;
    for (const s of set.spans || []) if (s.spanID && !spans.has(s.spanID)) spans.set(s.spanID, s);
    attributes.push(...(set.attributes || []));
  }
  return { spans: [...spans.values()], matched: Math.max(matched, spans.size), attributes };
}

/** A trace's page, with its matched spans to highlight. @param {TraceSummary} t @param {boolean} showMatches */
function traceHref(t, showMatches) {
  const ids = showMatches ? matchedSpans(t).spans.map(s => s.spanID).slice(0, MAX_MATCH_IDS) : [];
  return ids.length ? `/trace/${t.traceID}?match=${ids.join(',')}` : `/trace/${t.traceID}`;
}

/** An OTLP attribute value as text. @param {KeyValue['value']} v */
function valueText(v) {
  if (!v) return '';
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return String(v.intValue);
  if (v.doubleValue !== undefined) return String(v.doubleValue);
  if (v.boolValue !== undefined) return String(v.boolValue);
  return '';
}

/** @param {KeyValue[]} attrs */
function attrChips(attrs) {
  return attrs.map(a => h('span', { class: 'match-attr' }, h('span', { class: 'muted' }, `${a.key}=`), valueText(a.value)));
}

/** @param {TraceSummary} t @param {boolean} showMatches */
function resultRow(t, showMatches) {
  const ms = startMs(t);
  const stats = Object.entries(t.serviceStats || {}).sort((a, b) => (b[1].spanCount || 0) - (a[1].spanCount || 0));
  const { spans, errors, known } = totals(t);
  const m = showMatches ? matchedSpans(t) : null;
  const root = t.rootServiceName || '';
  return h('li', {},
    h('a', { class: `result${errors ? ' has-errors' : ''}`, href: traceHref(t, showMatches), 'data-trace-id': t.traceID },
      h('div', { class: 'result-head' },
        h('span', { class: 'svc-dot', style: `background:${serviceColour(root)}` }),
        h('span', { class: 'root-service' }, root),
        h('span', { class: 'root-name' }, t.rootTraceName || ''),
        h('span', { class: 'result-duration' }, fmtDurationMs(t.durationMs || 0))),
      h('div', { class: 'result-meta' },
        h('span', { title: fmtTime(ms) }, fmtAgo(ms)),
        h('span', { class: 'muted' }, fmtTime(ms)),
        h('span', { class: 'span-count' }, known ? `${spans} span${spans === 1 ? '' : 's'}` : '? spans'),
        errors ? h('span', { class: 'error-count' }, `${errors} error${errors === 1 ? '' : 's'}`) : h('span', { class: 'muted' }, 'no errors'),
        h('span', { class: 'trace-id mono' }, t.traceID)),
      h('div', { class: 'pills' }, ...stats.map(([svc, s]) =>
        h('span', { class: `pill${s.errorCount ? ' pill-error' : ''}`, style: `--c:${serviceColour(svc)}` },
          h('span', { class: 'svc-dot' }), svc, h('b', {}, String(s.spanCount || 0))))),
      m && m.spans.length ? h('div', { class: 'matches' },
        h('div', { class: 'match-head' },
          h('span', { class: 'match-count' }, `${m.matched} matched span${m.matched === 1 ? '' : 's'}`),
          m.matched > m.spans.length ? h('span', { class: 'muted match-more' }, ` (${m.spans.length} shown)`) : null,
          ...attrChips(m.attributes)),
        h('ul', { class: 'match-list' }, ...m.spans.map(s =>
          h('li', { class: 'match-span', 'data-span-id': s.spanID },
            h('span', { class: 'match-name' }, s.name || '(no name)'),
            h('span', { class: 'match-duration' }, s.durationNanos ? fmtDuration(Number(s.durationNanos)) : '0ns'),
            ...attrChips(s.attributes || []))))) : null));
}

/** The search answers whole milliseconds (0 when left out). @param {number} ms */
function fmtDurationMs(ms) {
  return ms < 1 ? '< 1ms' : fmtDuration(ms * 1e6);
}

/**
 * Duration against start time, one dot per trace; errors in red; a click opens the trace.
 * @param {TraceSummary[]} traces
 * @param {number} width
 * @param {boolean} showMatches
 */
function scatter(traces, width, showMatches) {
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
    const { spans, errors } = totals(t);
    const dot = svg('circle', {
      cx: x(times[i]), cy: y(t.durationMs || 0), r: 4 + Math.min(4, Math.log10(1 + (spans || 1))),
      class: errors > 0 ? 'dot dot-error' : 'dot', 'data-trace-id': t.traceID,
    });
    const title = svg('title');
    title.textContent = `${t.rootServiceName || ''}: ${t.rootTraceName || ''}\n${fmtDurationMs(t.durationMs || 0)}, ${spans} spans, ${errors} errors\n${fmtTime(times[i])}`;
    dot.append(title);
    dot.addEventListener('click', () => navigate(traceHref(t, showMatches)));
    el.append(dot);
  });
  return h('div', { class: 'scatter-wrap' }, el);
}
