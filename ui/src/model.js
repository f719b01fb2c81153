// A trace as the trace page needs it: spans from OTLP JSON with times relative to the trace
// start, the span tree, the critical path and the trace's quality warnings. No DOM here.

/**
 * @typedef {{key: string, value: string, type: string}} Attr
 * @typedef {{name: string, offset: number, attrs: Attr[]}} SpanEvent
 * @typedef {{traceId: string, spanId: string, attrs: Attr[]}} SpanLink
 * @typedef {{
 *   index: number, id: string, parentId: string, name: string, kind: number,
 *   service: string, start: number, end: number, duration: number,
 *   statusCode: number, statusMessage: string, error: boolean,
 *   attrs: Attr[], resource: Attr[], scope: {name: string, version: string, attrs: Attr[]},
 *   events: SpanEvent[], links: SpanLink[],
 *   parent: Span | null, children: Span[], depth: number, orphan: boolean,
 *   critical: boolean, search: string,
 * }} Span
 * @typedef {{kind: 'orphans' | 'roots' | 'skew', title: string, explanation: string, spans: Span[]}} Warning
 * @typedef {{
 *   id: string, spans: Span[], roots: Span[], startNs: bigint, duration: number,
 *   services: Map<string, {spans: number, errors: number}>, depth: number, errors: number,
 *   warnings: Warning[],
 * }} Trace
 */

export const KINDS = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'];

/** The string form of an OTLP AnyValue, and its type. @param {any} v @returns {{value: string, type: string}} */
export function anyValue(v) {
  if (!v || typeof v !== 'object') return { value: '', type: 'empty' };
  if ('stringValue' in v) return { value: String(v.stringValue), type: 'string' };
  if ('intValue' in v) return { value: String(v.intValue), type: 'int' };
  if ('doubleValue' in v) return { value: String(v.doubleValue), type: 'double' };
  if ('boolValue' in v) return { value: String(v.boolValue), type: 'bool' };
  if ('bytesValue' in v) return { value: String(v.bytesValue), type: 'bytes' };
  if ('arrayValue' in v) {
    const vals = (v.arrayValue && v.arrayValue.values) || [];
    return { value: JSON.stringify(vals.map((/** @type {any} */ x) => anyValue(x).value)), type: 'array' };
  }
  if ('kvlistValue' in v) {
    /** @type {Record<string, string>} */
    const o = {};
    for (const kv of (v.kvlistValue && v.kvlistValue.values) || []) o[kv.key] = anyValue(kv.value).value;
    return { value: JSON.stringify(o), type: 'map' };
  }
  return { value: '', type: 'empty' };
}

/** @param {any[] | undefined} list @returns {Attr[]} */
function attrs(list) {
  return (list || []).map(kv => ({ key: String(kv.key), ...anyValue(kv.value) }));
}

/** @param {Attr[]} list @param {string} key */
export function attr(list, key) {
  const a = list.find(x => x.key === key);
  return a ? a.value : undefined;
}

/** @param {unknown} v */
function big(v) {
  try {
    return BigInt(/** @type {string} */ (v ?? 0));
  } catch {
    return 0n;
  }
}

/**
 * Builds the trace from OTLP JSON `{resourceSpans: [...]}` (hex IDs).
 * @param {string} id
 * @param {any} otlp
 * @returns {Trace}
 */
export function buildTrace(id, otlp) {
  /** @type {{raw: any, resource: Attr[], scope: {name: string, version: string, attrs: Attr[]}, service: string}[]} */
  const raws = [];
  for (const rs of (otlp && otlp.resourceSpans) || []) {
    const resource = attrs(rs.resource && rs.resource.attributes);
    const service = attr(resource, 'service.name') || 'unknown service';
    for (const ss of rs.scopeSpans || []) {
      const scope = {
        name: (ss.scope && ss.scope.name) || '',
        version: (ss.scope && ss.scope.version) || '',
        attrs: attrs(ss.scope && ss.scope.attributes),
      };
      for (const raw of ss.spans || []) raws.push({ raw, resource, scope, service });
    }
  }
  let min = -1n;
  for (const r of raws) {
    const s = big(r.raw.startTimeUnixNano);
    if (min < 0n || s < min) min = s;
  }
  if (min < 0n) min = 0n;
  /** @type {Span[]} */
  const spans = raws.map((r, index) => {
    const s = r.raw;
    const start = Number(big(s.startTimeUnixNano) - min);
    const end = Math.max(start, Number(big(s.endTimeUnixNano) - min));
    const a = attrs(s.attributes);
    const statusCode = Number((s.status && s.status.code) || 0);
    const error = statusCode === 2 || attr(a, 'error') === 'true' || (attr(a, 'otel.status_code') || '').toUpperCase() === 'ERROR';
    /** @type {Span} */
    const span = {
      index, id: String(s.spanId || '').toLowerCase(), parentId: String(s.parentSpanId || '').toLowerCase(),
      name: String(s.name || ''), kind: Number(s.kind || 0), service: r.service,
      start, end, duration: end - start, statusCode, statusMessage: (s.status && s.status.message) || '', error,
      attrs: a, resource: r.resource, scope: r.scope,
      events: (s.events || []).map((/** @type {any} */ e) => ({
        name: String(e.name || ''), offset: Number(big(e.timeUnixNano) - min), attrs: attrs(e.attributes),
      })).sort((/** @type {SpanEvent} */ x, /** @type {SpanEvent} */ y) => x.offset - y.offset),
      links: (s.links || []).map((/** @type {any} */ l) => ({
        traceId: String(l.traceId || '').toLowerCase(), spanId: String(l.spanId || '').toLowerCase(), attrs: attrs(l.attributes),
      })),
      parent: null, children: [], depth: 0, orphan: false, critical: false, search: '',
    };
    span.search = [span.name, span.service, span.id, ...a.map(x => `${x.key}=${x.value}`)].join('\n').toLowerCase();
    return span;
  });

  /** @type {Map<string, Span>} */
  const byId = new Map();
  for (const s of spans) if (s.id && !byId.has(s.id)) byId.set(s.id, s);
  /** @type {Span[]} */
  const roots = [];
  for (const s of spans) {
    const p = s.parentId && !/^0+$/.test(s.parentId) ? byId.get(s.parentId) : undefined;
    if (p && p !== s) {
      s.parent = p;
      p.children.push(s);
    } else {
      s.orphan = Boolean(s.parentId && !/^0+$/.test(s.parentId));
      roots.push(s);
    }
  }
  // A cycle of parent IDs (corrupt data) would leave spans unreachable: break it at the span
  // found first, which then shows as a root.
  const reached = new Set();
  const order = (/** @type {Span[]} */ list) => list.sort((a, b) => a.start - b.start || a.index - b.index);
  const walk = (/** @type {Span} */ root) => {
    /** @type {Span[]} */
    const stack = [root];
    root.depth = 0;
    while (stack.length) {
      const s = /** @type {Span} */ (stack.pop());
      reached.add(s);
      order(s.children);
      for (const c of s.children) {
        if (reached.has(c)) continue;
        c.depth = s.depth + 1;
        stack.push(c);
      }
    }
  };
  order(roots).forEach(walk);
  for (const s of spans) {
    if (reached.has(s)) continue;
    if (s.parent) s.parent.children = s.parent.children.filter(c => c !== s);
    s.parent = null;
    s.orphan = true;
    roots.push(s);
    walk(s);
  }
  order(roots);

  let duration = 0, depth = 0, errors = 0;
  /** @type {Map<string, {spans: number, errors: number}>} */
  const services = new Map();
  for (const s of spans) {
    duration = Math.max(duration, s.end);
    depth = Math.max(depth, s.depth + 1);
    if (s.error) errors++;
    const st = services.get(s.service) || { spans: 0, errors: 0 };
    st.spans++;
    if (s.error) st.errors++;
    services.set(s.service, st);
  }
  markCriticalPath(roots, duration);
  return { id, spans, roots, startNs: min, duration, services, depth, errors, warnings: warnings(spans, roots) };
}

/**
 * Marks the critical path: the spans whose work determined when the trace ended. Starting
 * from the trace's end, the child (or top-level span) that finished last before the current
 * point is on the path; the walk recurses into it and continues before its start.
 * Children that outlive their parent are clipped to the parent's end.
 * @param {Span[]} roots
 * @param {number} end
 */
export function markCriticalPath(roots, end) {
  /** @type {[Span[], number, number][]} */
  const work = [[roots, 0, end]];
  while (work.length) {
    const [list, lo, hi] = /** @type {[Span[], number, number]} */ (work.pop());
    const byEnd = list.slice().sort((a, b) => b.end - a.end);
    let t = hi;
    for (const c of byEnd) {
      if (t <= lo) break;
      if (c.start >= t) continue;
      // c is the last-finishing span that started before t: it was on the path until t.
      c.critical = true;
      const cEnd = Math.min(c.end, t);
      work.push([c.children, c.start, cEnd]);
      t = c.start;
    }
  }
}

/** @param {Span[]} spans @param {Span[]} roots @returns {Warning[]} */
function warnings(spans, roots) {
  /** @type {Warning[]} */
  const out = [];
  const orphans = spans.filter(s => s.orphan);
  if (orphans.length) {
    const services = [...new Set(orphans.map(s => s.service))].join(', ');
    out.push({
      kind: 'orphans',
      title: `${orphans.length} span${orphans.length === 1 ? ' has a parent' : 's have parents'} missing from the trace (${services})`,
      explanation: 'Context propagation is likely broken: the calling service did not export its span, sampled it out, or the trace headers were forwarded but the parent span was lost. Spans still in flight arrive later.',
      spans: orphans,
    });
  }
  const trueRoots = roots.filter(s => !s.orphan);
  if (trueRoots.length > 1) {
    out.push({
      kind: 'roots',
      title: `${trueRoots.length} root spans in one trace`,
      explanation: 'A service started new root spans instead of continuing the incoming context (it did not extract the traceparent header), or several requests reused one trace ID.',
      spans: trueRoots,
    });
  }
  const skewed = spans.filter(s => s.parent && s.start < s.parent.start);
  if (skewed.length) {
    out.push({
      kind: 'skew',
      title: `${skewed.length} span${skewed.length === 1 ? ' starts' : 's start'} before ${skewed.length === 1 ? 'its' : 'their'} parent`,
      explanation: 'Clock skew: the hosts that recorded parent and child disagree about the time (check NTP on them). Offsets between such spans are not exact.',
      spans: skewed,
    });
  }
  return out;
}
