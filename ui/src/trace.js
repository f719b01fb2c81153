// The trace page: header, quality warnings, minimap, the virtualised waterfall and the span
// details. Only the rows in view exist in the DOM, so a trace of any size opens at once.

import * as api from './api.js';
import { setQuery } from './app.js';
import { KINDS, attr, buildTrace } from './model.js';
import { append, fmtAgo, fmtDuration, fmtTime, h, notice, serviceColour } from './util.js';

/** @typedef {import('./model.js').Span} Span @typedef {import('./model.js').Trace} Trace @typedef {import('./model.js').Attr} Attr */

const ROW = 26;
const OVERSCAN = 8;

/**
 * @param {import('./app.js').ViewContext} ctx
 * @param {string} rawId
 */
export async function renderTrace(ctx, rawId) {
  const id = rawId.trim().toLowerCase();
  document.title = `Trace ${id.slice(0, 12)} · Skein`;
  if (!/^[0-9a-f]{1,32}$/.test(id)) {
    ctx.root.append(notice('error', `"${rawId}" is not a trace ID`, [
      'A trace ID is 1 to 32 hexadecimal digits (0-9, a-f). Check the link, or paste the ID into the box at the top.',
    ]));
    return;
  }
  ctx.root.append(notice('loading', `Loading trace ${id}…`));
  performance.mark('skein:trace-requested');
  /** @type {any} */
  let body;
  try {
    body = await api.get(`/api/v2/traces/${id}`, {}, ctx.signal);
  } catch (e) {
    if (ctx.signal.aborted) return;
    const err = /** @type {api.ApiError} */ (e);
    const who = api.tenant() || 'single-tenant';
    ctx.root.replaceChildren(err.status === 404
      ? notice('error', `Trace ${id} was not found`, [
        `Tenant "${who}" has no trace with this ID. Check the ID, switch the tenant at the top right if the trace belongs to another one, `,
        'or wait a few seconds if it was just sent. Traces older than the retention period are deleted.',
      ])
      : notice('error', 'The trace could not be loaded', [err.message, ' Try again; if it keeps failing, check the querier\'s log.']));
    return;
  }
  if (ctx.signal.aborted) return;
  // Marks for measuring where the time of opening a trace goes (visible in dev tools).
  performance.mark('skein:trace-fetched');
  const otlp = (body && body.trace) || { resourceSpans: [] };
  const trace = buildTrace(id, otlp);
  performance.mark('skein:trace-built');
  ctx.root.replaceChildren();
  if (!trace.spans.length) {
    ctx.root.append(notice('empty', `Trace ${id} has no spans`, ['The trace exists but holds no spans to show.']));
    return;
  }
  new TraceView(ctx, trace, otlp).mount();
  performance.mark('skein:trace-drawn');
}

class TraceView {
  /**
   * @param {import('./app.js').ViewContext} ctx
   * @param {Trace} trace
   * @param {any} otlp
   */
  constructor(ctx, trace, otlp) {
    this.ctx = ctx;
    this.trace = trace;
    this.otlp = otlp;
    /** @type {Set<Span>} */
    this.collapsed = new Set();
    /** @type {Span[]} the rows the waterfall shows, in order */
    this.rows = [];
    /** @type {Span | null} */
    this.selected = null;
    this.find = ctx.url.searchParams.get('find') || '';
    this.onlyMatches = ctx.url.searchParams.get('only') === '1';
    /** @type {Set<Span>} */
    this.matches = new Set();
    // The spans the search query matched (`?match=<id>,<id>` from the result list), in tree
    // order, for highlighting and "next match".
    const wanted = new Set((ctx.url.searchParams.get('match') || '').toLowerCase().split(',').filter(x => /^[0-9a-f]{1,16}$/.test(x)).slice(0, 100));
    this.wantedMatches = wanted.size;
    this.view = { start: 0, end: Math.max(1, trace.duration) };
    /** @type {Span[]} every span in tree order, for the minimap */
    this.preorder = [];
    const walk = (/** @type {Span[]} */ list) => {
      for (const s of list) {
        this.preorder.push(s);
        walk(s.children);
      }
    };
    walk(trace.roots);
    /** @type {Map<Span, number>} */
    this.position = new Map(this.preorder.map((s, i) => [s, i]));
    /** @type {Span[]} */
    this.queryMatches = this.preorder.filter(s => wanted.has(s.id));
    this.queryMatchSet = new Set(this.queryMatches);
    this.matchCount = h('span', { class: 'match-count', id: 'match-count' });
    this.scroller = h('div', { class: 'wf-scroll', id: 'waterfall-scroll', tabindex: '0' });
    this.spacer = h('div', { class: 'wf-spacer' });
    this.rowsEl = h('div', { class: 'wf-rows', id: 'waterfall-rows' });
    this.spacer.append(this.rowsEl);
    this.scroller.append(this.spacer);
    this.axis = h('div', { class: 'wf-axis' });
    this.details = h('aside', { class: 'details', id: 'span-details', hidden: true });
    this.minimap = h('canvas', { class: 'minimap-canvas', height: 56 });
    this.minimapWindow = h('div', { class: 'minimap-window' });
    this.minimapSelect = h('div', { class: 'minimap-select', hidden: true });
    this.findCount = h('span', { class: 'find-count', id: 'find-count' });
    this.zoomReset = h('button', { type: 'button', id: 'zoom-reset', hidden: true, onclick: () => this.setZoom(0, this.trace.duration) }, 'Reset zoom');
  }

  mount() {
    const t = this.trace;
    const root = t.roots.find(s => !s.orphan) || t.roots[0];
    const services = [...t.services.entries()].sort((a, b) => b[1].spans - a[1].spans);
    const startMs = Number(t.startNs / 1000000n);
    const header = h('section', { class: 'trace-header' },
      h('div', { class: 'trace-title' },
        h('span', { class: 'svc-dot big', style: `background:${serviceColour(root.service)}` }),
        h('h1', { id: 'trace-title' }, h('span', { class: 'root-service' }, root.service), ': ', root.name),
        h('span', { class: 'trace-id mono', title: 'Trace ID' }, t.id),
        h('span', { class: 'spacer' }),
        h('button', { type: 'button', id: 'download', onclick: () => this.download() }, 'Download OTLP JSON')),
      h('dl', { class: 'trace-stats' },
        stat('Start', fmtTime(startMs), 'stat-start', '', fmtAgo(startMs)),
        stat('Duration', fmtDuration(t.duration), 'stat-duration'),
        stat('Spans', String(t.spans.length), 'stat-spans'),
        stat('Services', String(t.services.size), 'stat-services'),
        stat('Depth', String(t.depth), 'stat-depth'),
        stat('Errors', String(t.errors), 'stat-errors', t.errors > 0 ? 'bad' : '')),
      h('div', { class: 'pills' }, ...services.map(([svc, st]) =>
        h('span', { class: `pill${st.errors ? ' pill-error' : ''}`, style: `--c:${serviceColour(svc)}` },
          h('span', { class: 'svc-dot' }), svc, h('b', {}, String(st.spans))))));

    const warnings = t.warnings.length
      ? h('section', { class: 'warnings', id: 'warnings' }, ...t.warnings.map(w =>
        h('div', { class: 'warning', 'data-kind': w.kind },
          h('strong', {}, '⚠ ', w.title),
          h('span', {}, ' ', w.explanation, ' '),
          h('span', { class: 'warning-spans' }, ...w.spans.slice(0, 5).map(s =>
            h('button', { type: 'button', class: 'linklike', onclick: () => this.select(s, true) }, `${s.service}: ${s.name}`))),
          w.spans.length > 5 ? h('span', { class: 'muted' }, ` and ${w.spans.length - 5} more`) : null)))
      : null;

    const findInput = h('input', { id: 'find', type: 'search', placeholder: 'Find in trace: name, service, attribute, span ID', value: this.find, spellcheck: 'false' });
    findInput.addEventListener('input', () => this.setFind(findInput.value));
    const only = h('input', { type: 'checkbox', id: 'only-matches', checked: this.onlyMatches });
    only.addEventListener('change', () => {
      this.onlyMatches = only.checked;
      this.saveQuery();
      this.refresh();
    });
    const critical = this.trace.spans.filter(s => s.critical).length;
    const matchNav = this.wantedMatches
      ? h('span', { class: 'match-nav', id: 'match-nav' },
        h('span', { class: 'qmatch-swatch', 'aria-hidden': 'true' }), this.matchCount,
        h('button', { type: 'button', id: 'match-prev', title: 'Previous matched span (Shift+N)', disabled: !this.queryMatches.length, onclick: () => this.nextMatch(-1) }, '‹ Prev'),
        h('button', { type: 'button', id: 'match-next', title: 'Next matched span (N)', disabled: !this.queryMatches.length, onclick: () => this.nextMatch(1) }, 'Next match ›'))
      : null;
    const toolbar = h('div', { class: 'toolbar' },
      findInput, this.findCount,
      h('label', { class: 'check', title: 'Only the spans that match the find text (or, without one, the search query), with their ancestors' }, only, ' Only matches'),
      matchNav,
      h('span', { class: 'spacer' }),
      h('span', { class: 'legend-critical', title: 'The chain of spans that determined the end-to-end duration' },
        h('span', { class: 'critical-swatch' }), `Critical path (${critical} spans)`),
      this.zoomReset,
      h('button', { type: 'button', id: 'expand-all', onclick: () => { this.collapsed.clear(); this.refresh(); } }, 'Expand all'),
      h('button', { type: 'button', id: 'collapse-all', onclick: () => this.collapseAll() }, 'Collapse all'));

    const minimap = h('div', { class: 'minimap', id: 'minimap', title: 'Click to go to a span; drag across to zoom into a time range' },
      this.minimap, this.minimapWindow, this.minimapSelect);
    const waterfall = h('section', { class: 'waterfall', id: 'waterfall' },
      h('div', { class: 'wf-head' }, h('div', { class: 'wf-name-head' }, 'Service & operation'), this.axis),
      this.scroller);
    this.ctx.root.append(h('div', { class: 'trace-page' }, header, warnings || null, minimap, toolbar,
      h('div', { class: 'trace-body' }, waterfall, this.details)));

    this.scroller.addEventListener('scroll', () => this.paint(), { passive: true });
    // Keyboard: Escape closes the details, arrow keys move the selection through the rows,
    // N and Shift+N go through the spans the search matched.
    window.addEventListener('keydown', e => {
      const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement || e.target instanceof HTMLTextAreaElement;
      if (!typing && (e.key === 'n' || e.key === 'N') && !e.ctrlKey && !e.metaKey && !e.altKey && this.queryMatches.length) {
        e.preventDefault();
        this.nextMatch(e.shiftKey ? -1 : 1);
        return;
      }
      if (!this.selected || typing) return;
      if (e.key === 'Escape') {
        this.select(null, false);
      } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        const i = this.rows.indexOf(this.selected) + (e.key === 'ArrowDown' ? 1 : -1);
        if (i >= 0 && i < this.rows.length) {
          e.preventDefault();
          this.select(this.rows[i], true);
        }
      }
    }, { signal: this.ctx.signal });
    this.rowsEl.addEventListener('click', e => this.onRowClick(e));
    const ro = new ResizeObserver(() => {
      this.drawMinimap();
      this.paint();
    });
    ro.observe(this.scroller);
    this.ctx.signal.addEventListener('abort', () => ro.disconnect());
    this.setupMinimap();
    this.computeMatches();
    this.refresh();
    const want = this.ctx.url.searchParams.get('span');
    const span = want && this.trace.spans.find(s => s.id === want.toLowerCase());
    if (span) this.select(span, true);
    else if (this.queryMatches.length) this.reveal(this.queryMatches[0]);
    this.showMatchCount();
  }

  /** The spans "only matches" keeps (with their ancestors): find matches, else query matches. */
  filterSet() {
    if (!this.onlyMatches) return null;
    if (this.find) return this.matches;
    return this.queryMatches.length ? this.queryMatchSet : null;
  }

  /** Selects the next (`dir` 1) or previous (-1) span the search query matched. @param {number} dir */
  nextMatch(dir) {
    const list = this.queryMatches;
    if (!list.length) return;
    let i;
    if (this.selected && this.queryMatchSet.has(this.selected)) {
      i = (list.indexOf(this.selected) + dir + list.length) % list.length;
    } else {
      const at = this.selected ? this.position.get(this.selected) ?? -1 : -1;
      const pos = (/** @type {Span} */ s) => this.position.get(s) ?? 0;
      i = dir > 0 ? list.findIndex(s => pos(s) > at) : list.length - 1 - list.slice().reverse().findIndex(s => pos(s) < at);
      if (i < 0 || i >= list.length) i = dir > 0 ? 0 : list.length - 1;
    }
    this.select(list[i], true);
  }

  showMatchCount() {
    if (!this.wantedMatches) return;
    const n = this.queryMatches.length;
    const missing = this.wantedMatches - n;
    const at = this.selected ? this.queryMatches.indexOf(this.selected) : -1;
    this.matchCount.textContent = (at >= 0 ? `Match ${at + 1} of ${n}` : `${n} span${n === 1 ? '' : 's'} matched the search`)
      + (missing > 0 ? ` (${missing} not in this trace)` : '');
  }

  /** Rebuilds the visible row list, then draws. */
  refresh() {
    /** @type {Span[]} */
    const rows = [];
    /** @type {Set<Span> | null} */
    let keep = null;
    const only = this.filterSet();
    if (only) {
      keep = new Set();
      for (const m of only) {
        for (let s = /** @type {Span | null} */ (m); s && !keep.has(s); s = s.parent) keep.add(s);
      }
    }
    /** @type {Span[]} */
    const stack = this.trace.roots.slice().reverse();
    while (stack.length) {
      const s = /** @type {Span} */ (stack.pop());
      if (keep && !keep.has(s)) continue;
      rows.push(s);
      if (!this.collapsed.has(s)) {
        for (let i = s.children.length - 1; i >= 0; i--) stack.push(s.children[i]);
      }
    }
    this.rows = rows;
    this.spacer.style.height = `${rows.length * ROW}px`;
    this.findCount.textContent = this.find ? `${this.matches.size} of ${this.trace.spans.length} spans match` : '';
    this.drawAxis();
    this.paint();
  }

  /** Draws the rows in view (plus a few around them) and nothing else. */
  paint() {
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const last = Math.min(this.rows.length, Math.ceil((top + height) / ROW) + OVERSCAN);
    this.rowsEl.style.transform = `translateY(${first * ROW}px)`;
    const frag = document.createDocumentFragment();
    for (let i = first; i < last; i++) frag.append(this.row(this.rows[i]));
    this.rowsEl.replaceChildren(frag);
    this.paintMinimapWindow(Math.floor(top / ROW), Math.min(this.rows.length, Math.ceil((top + height) / ROW)));
  }

  /** @param {Span} s */
  row(s) {
    const { start, end } = this.view;
    const span = end - start || 1;
    const left = ((s.start - start) / span) * 100;
    const width = Math.max(((s.end - s.start) / span) * 100, 0.15);
    const colour = serviceColour(s.service);
    const classes = ['row'];
    if (s.critical) classes.push('critical');
    if (s.error) classes.push('error');
    if (this.selected === s) classes.push('selected');
    if (this.find && this.matches.has(s)) classes.push('match');
    if (this.find && !this.matches.has(s)) classes.push('dim');
    const qmatch = this.queryMatchSet.has(s);
    if (qmatch) classes.push('qmatch');
    const hasKids = s.children.length > 0;
    const toggle = hasKids
      ? h('button', { type: 'button', class: 'toggle', 'aria-label': this.collapsed.has(s) ? 'Expand' : 'Collapse', 'aria-expanded': String(!this.collapsed.has(s)) },
        this.collapsed.has(s) ? '▸' : '▾')
      : h('span', { class: 'toggle-space' });
    // Duration label: after the bar, or inside its end when the bar reaches the right edge
    // (before it when it is too narrow to hold the text).
    const atEnd = left + width > 82;
    const labelClass = atEnd ? (width > 12 ? 'bar-label inside' : 'bar-label before') : 'bar-label';
    const labelStyle = atEnd ? (width > 12 ? `right:${100 - left - width}%` : `right:${100 - left}%`) : `left:${left + width}%`;
    return h('div', { class: classes.join(' '), 'data-span-id': s.id, 'data-index': s.index },
      h('div', { class: 'wf-name', style: `padding-left:${6 + Math.min(s.depth, 40) * 14}px` },
        toggle,
        qmatch ? h('span', { class: 'qmatch-mark', title: 'Matched the search query' }, '◆') : null,
        h('span', { class: 'svc-bar', style: `background:${colour}` }),
        h('span', { class: 'span-service' }, s.service),
        h('span', { class: 'span-name', title: s.name }, s.name),
        s.kind > 1 ? h('span', { class: `kind kind-${KINDS[s.kind]}` }, KINDS[s.kind]) : null,
        s.error ? h('span', { class: 'error-mark', title: s.statusMessage || 'error' }, '!') : null,
        hasKids && this.collapsed.has(s) ? h('span', { class: 'hidden-count' }, `+${countDescendants(s)}`) : null,
        s.orphan ? h('span', { class: 'orphan-mark', title: 'Parent span missing from the trace' }, 'orphan') : null),
      h('div', { class: 'wf-timeline' },
        h('div', { class: 'bar', style: `left:${left}%;width:${width}%;background:${colour}` }),
        // Events as ticks on the timeline (at most a few dozen per row, so a chatty span
        // stays cheap to draw).
        ...s.events.slice(0, 40).map(e => h('span', {
          class: e.name === 'exception' ? 'event-tick event-tick-exception' : 'event-tick',
          style: `left:${((e.offset - start) / span) * 100}%`,
          title: `${e.name} at +${fmtDuration(e.offset - s.start)}`,
        })),
        h('span', { class: labelClass, style: labelStyle }, fmtDuration(s.duration))));
  }

  /** @param {MouseEvent} e */
  onRowClick(e) {
    const target = /** @type {Element} */ (e.target);
    const rowEl = target.closest('.row');
    if (!rowEl) return;
    const span = this.trace.spans[Number(rowEl.getAttribute('data-index'))];
    if (!span) return;
    if (target.closest('.toggle')) {
      if (this.collapsed.has(span)) this.collapsed.delete(span);
      else this.collapsed.add(span);
      this.refresh();
      return;
    }
    this.select(this.selected === span ? null : span, false);
  }

  collapseAll() {
    for (const s of this.trace.spans) if (s.children.length) this.collapsed.add(s);
    this.scroller.scrollTop = 0;
    this.refresh();
  }

  /** @param {string} text */
  setFind(text) {
    this.find = text.trim();
    this.computeMatches();
    // Matches inside collapsed subtrees are shown.
    for (const m of this.matches) for (let p = m.parent; p; p = p.parent) this.collapsed.delete(p);
    this.saveQuery();
    this.refresh();
  }

  computeMatches() {
    this.matches = new Set();
    if (!this.find) return;
    const needle = this.find.toLowerCase();
    for (const s of this.trace.spans) if (s.search.includes(needle)) this.matches.add(s);
  }

  saveQuery() {
    const q = new URLSearchParams(location.search);
    if (this.find) q.set('find', this.find); else q.delete('find');
    if (this.onlyMatches) q.set('only', '1'); else q.delete('only');
    if (this.selected) q.set('span', this.selected.id); else q.delete('span');
    setQuery(q);
  }

  /**
   * Selects a span (or none): details shown, row highlighted, and, when `reveal`, its
   * ancestors expanded and the row scrolled into view.
   * @param {Span | null} span
   * @param {boolean} reveal
   */
  select(span, reveal) {
    this.selected = span;
    this.saveQuery();
    if (span && reveal) this.reveal(span);
    this.paint();
    this.renderDetails();
    this.showMatchCount();
  }

  /** Expands the ancestors of `span` and scrolls its row into view. @param {Span} span */
  reveal(span) {
    let changed = false;
    for (let p = span.parent; p; p = p.parent) changed = this.collapsed.delete(p) || changed;
    const only = this.filterSet();
    if (only && !only.has(span)) {
      this.onlyMatches = false;
      const box = /** @type {HTMLInputElement | null} */ (document.getElementById('only-matches'));
      if (box) box.checked = false;
      this.saveQuery();
      changed = true;
    }
    if (changed) this.refresh();
    const i = this.rows.indexOf(span);
    if (i >= 0) {
      const top = i * ROW;
      const viewTop = this.scroller.scrollTop;
      const viewH = this.scroller.clientHeight || 600;
      if (top < viewTop || top + ROW > viewTop + viewH) this.scroller.scrollTop = Math.max(0, top - viewH / 3);
    }
    this.paint();
  }

  renderDetails() {
    const s = this.selected;
    this.details.hidden = !s;
    if (!s) {
      this.details.replaceChildren();
      return;
    }
    const close = h('button', { type: 'button', class: 'close', 'aria-label': 'Close details', onclick: () => this.select(null, false) }, '×');
    const status = s.statusCode === 2 ? 'error' : s.statusCode === 1 ? 'ok' : 'unset';
    const exceptions = s.events.filter(e => e.name === 'exception');
    this.details.replaceChildren();
    append(this.details, [
      h('div', { class: 'details-head' },
        h('span', { class: 'svc-dot big', style: `background:${serviceColour(s.service)}` }),
        h('h2', { id: 'details-name' }, s.name), close),
      h('dl', { class: 'kv' },
        kv('Service', s.service), kv('Kind', KINDS[s.kind] || String(s.kind)),
        kv('Status', h('span', { class: `status status-${status}`, id: 'details-status' }, status, s.statusMessage ? `: ${s.statusMessage}` : '')),
        kv('Start', `+${fmtDuration(s.start)} after the trace start`),
        kv('Duration', fmtDuration(s.duration)),
        kv('Span ID', h('span', { class: 'mono' }, s.id)),
        kv('Parent', s.parent
          ? h('button', { type: 'button', class: 'linklike', onclick: () => this.select(s.parent, true) }, `${s.parent.service}: ${s.parent.name}`)
          : s.orphan ? h('span', { class: 'bad' }, `${s.parentId} (missing from the trace)`) : 'none (root span)'),
        s.critical ? kv('Critical path', 'yes: this span is on the chain that determined the trace duration') : null),
      exceptions.length ? h('section', { class: 'exceptions' }, h('h3', {}, 'Exceptions'), ...exceptions.map(e =>
        h('div', { class: 'exception' },
          h('div', {}, h('strong', { class: 'exc-type' }, attr(e.attrs, 'exception.type') || 'exception'), ': ',
            h('span', { class: 'exc-message' }, attr(e.attrs, 'exception.message') || '')),
          attr(e.attrs, 'exception.stacktrace') ? h('pre', { class: 'stacktrace' }, attr(e.attrs, 'exception.stacktrace') || '') : null))) : null,
      table('Span attributes', s.attrs, 'attrs-span'),
      table('Resource attributes', s.resource, 'attrs-resource'),
      s.scope.name || s.scope.attrs.length ? h('section', { class: 'attr-section', id: 'attrs-scope' },
        h('h3', {}, `Instrumentation scope (${s.scope.attrs.length} attributes)`),
        h('p', { class: 'scope-name mono' }, s.scope.name || '(unnamed)', s.scope.version ? ` ${s.scope.version}` : ''),
        s.scope.attrs.length ? attrTable(s.scope.attrs) : null) : null,
      h('section', { class: 'events', id: 'details-events' }, h('h3', {}, `Events (${s.events.length})`),
        s.events.length ? h('ol', { class: 'event-list' }, ...s.events.map(e =>
          h('li', { class: 'event' },
            h('div', { class: 'event-head' }, h('span', { class: 'event-offset mono' }, `+${fmtDuration(e.offset - s.start)}`), ' ', h('strong', {}, e.name)),
            e.attrs.length ? attrTable(e.attrs) : null))) : h('p', { class: 'muted' }, 'No events.')),
      h('section', { class: 'links', id: 'details-links' }, h('h3', {}, `Links (${s.links.length})`),
        s.links.length ? h('ul', {}, ...s.links.map(l =>
          h('li', {},
            h('a', { href: `/trace/${l.traceId}?span=${l.spanId}`, class: 'span-link mono' }, `${l.traceId} / ${l.spanId}`),
            l.traceId === this.trace.id ? h('span', { class: 'muted' }, ' (this trace)') : null,
            l.attrs.length ? attrTable(l.attrs) : null))) : h('p', { class: 'muted' }, 'No links.'))]);
  }

  drawAxis() {
    const { start, end } = this.view;
    const ticks = [];
    for (let i = 0; i <= 4; i++) {
      const t = start + ((end - start) * i) / 4;
      ticks.push(h('span', { class: `tick${i === 4 ? ' last' : ''}`, style: `left:${i * 25}%` }, fmtDuration(t)));
    }
    this.axis.replaceChildren(...ticks);
  }

  /** @param {number} start @param {number} end */
  setZoom(start, end) {
    const d = this.trace.duration || 1;
    this.view = { start: Math.max(0, start), end: Math.min(d, Math.max(end, start + d / 1000)) };
    this.zoomReset.hidden = this.view.start <= 0 && this.view.end >= d;
    this.drawAxis();
    this.paint();
    this.drawMinimap();
  }

  drawMinimap() {
    const c = this.minimap;
    const w = c.clientWidth || 800;
    const dpr = window.devicePixelRatio || 1;
    c.width = Math.round(w * dpr);
    c.height = Math.round(56 * dpr);
    const g = c.getContext('2d');
    if (!g) return;
    g.scale(dpr, dpr);
    g.clearRect(0, 0, w, 56);
    const n = this.preorder.length;
    const d = this.trace.duration || 1;
    const rowH = Math.max(56 / n, 0.5);
    this.preorder.forEach((s, i) => {
      g.fillStyle = s.error ? '#d6334a' : serviceColour(s.service);
      g.fillRect((s.start / d) * w, (i / n) * 56, Math.max(1, (s.duration / d) * w), Math.max(rowH, 1));
    });
    // The zoomed time window.
    const x0 = (this.view.start / d) * w, x1 = (this.view.end / d) * w;
    g.fillStyle = 'rgba(30, 50, 80, 0.12)';
    if (x0 > 0) g.fillRect(0, 0, x0, 56);
    if (x1 < w) g.fillRect(x1, 0, w - x1, 56);
  }

  /** Outlines, on the minimap, the rows the waterfall shows. @param {number} first @param {number} last */
  paintMinimapWindow(first, last) {
    const n = this.preorder.length || 1;
    const a = this.rows[first];
    const b = this.rows[Math.max(first, last - 1)];
    if (!a || !b) return;
    const pos = (/** @type {Span} */ s) => this.position.get(s) || 0;
    const top = (pos(a) / n) * 100;
    const bottom = ((pos(b) + 1) / n) * 100;
    this.minimapWindow.style.top = `${top}%`;
    this.minimapWindow.style.height = `${Math.max(bottom - top, 2)}%`;
  }

  setupMinimap() {
    const wrap = this.minimap;
    /** @type {{x: number, y: number} | null} */
    let down = null;
    const frac = (/** @type {MouseEvent} */ e) => {
      const r = wrap.getBoundingClientRect();
      return { x: Math.min(1, Math.max(0, (e.clientX - r.left) / r.width)), y: Math.min(1, Math.max(0, (e.clientY - r.top) / r.height)) };
    };
    wrap.addEventListener('mousedown', e => {
      down = frac(e);
      e.preventDefault();
    });
    const move = (/** @type {MouseEvent} */ e) => {
      if (!down) return;
      const p = frac(e);
      const lo = Math.min(p.x, down.x), hi = Math.max(p.x, down.x);
      this.minimapSelect.hidden = hi - lo < 0.005;
      this.minimapSelect.style.left = `${lo * 100}%`;
      this.minimapSelect.style.width = `${(hi - lo) * 100}%`;
    };
    const up = (/** @type {MouseEvent} */ e) => {
      if (!down) return;
      const p = frac(e);
      const start = down;
      down = null;
      this.minimapSelect.hidden = true;
      const d = this.trace.duration;
      if (Math.abs(p.x - start.x) >= 0.005) {
        this.setZoom(Math.min(p.x, start.x) * d, Math.max(p.x, start.x) * d);
        return;
      }
      const span = this.preorder[Math.min(this.preorder.length - 1, Math.floor(p.y * this.preorder.length))];
      if (span) this.select(span, true);
    };
    window.addEventListener('mousemove', move, { signal: this.ctx.signal });
    window.addEventListener('mouseup', up, { signal: this.ctx.signal });
  }

  download() {
    const blob = new Blob([JSON.stringify(this.otlp, null, 1)], { type: 'application/json' });
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: `trace-${this.trace.id}.json` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }
}

/** @param {Span} s */
function countDescendants(s) {
  let n = 0;
  const stack = [...s.children];
  while (stack.length) {
    const c = /** @type {Span} */ (stack.pop());
    n++;
    stack.push(...c.children);
  }
  return n;
}

/** @param {string} label @param {string} value @param {string} id @param {string} [cls] @param {string} [title] */
function stat(label, value, id, cls = '', title = '') {
  return h('div', { class: `stat ${cls}`, title: title || null }, h('dt', {}, label), h('dd', { id }, value));
}

/** @param {string} k @param {import('./util.js').Child} v */
function kv(k, v) {
  return h('div', { class: 'kv-row' }, h('dt', {}, k), h('dd', {}, v));
}

/** @param {Attr[]} list */
function attrTable(list) {
  return h('table', { class: 'attrs' }, h('tbody', {}, ...list.map(a =>
    h('tr', {}, h('th', { scope: 'row' }, a.key), h('td', { class: `v-${a.type}` }, a.value)))));
}

/** @param {string} title @param {Attr[]} list @param {string} id */
function table(title, list, id) {
  return h('section', { class: 'attr-section', id },
    h('h3', {}, `${title} (${list.length})`),
    list.length ? attrTable(list) : h('p', { class: 'muted' }, 'None.'));
}
