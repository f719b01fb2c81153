// The service map: services as nodes, calls between them as arrows with call counts, for the
// time range in the URL (`/map?range=1h`).

import * as api from './api.js';
import { navigate } from './app.js';
import { RANGES, h, notice, serviceColour, svg, windowOf } from './util.js';

/** @typedef {{parent: string, child: string, callCount: number}} Edge */

/** @param {import('./app.js').ViewContext} ctx */
export async function renderMap(ctx) {
  document.title = 'Service map · Skein';
  const q = ctx.url.searchParams;
  const win = windowOf(q, '1h');
  const range = h('select', { id: 'map-range', 'aria-label': 'Time range' },
    ...RANGES.map(([k, label]) => h('option', { value: k, selected: k === win.key }, label)));
  range.addEventListener('change', () => navigate(`/map?range=${range.value}`));
  const out = h('div', { class: 'map-body' }, notice('loading', 'Loading the service map…'));
  ctx.root.append(h('div', { class: 'map-page' },
    h('div', { class: 'map-bar' }, h('h1', {}, 'Service map'), h('label', {}, 'Time range ', range),
      h('span', { class: 'muted' }, 'Calls between services, counted from parent and child spans of different services. Click a service to search its traces.')),
    out));
  /** @type {Edge[]} */
  let edges;
  try {
    const body = await api.get('/jaeger/api/dependencies', { endTs: win.end * 1000, lookback: (win.end - win.start) * 1000 }, ctx.signal);
    edges = Array.isArray(body && body.data) ? body.data : [];
  } catch (e) {
    if (ctx.signal.aborted) return;
    out.replaceChildren(notice('error', 'The service map could not be loaded', [/** @type {Error} */ (e).message, ' Try a shorter time range, or check the querier\'s log.']));
    return;
  }
  if (ctx.signal.aborted) return;
  if (!edges.length) {
    out.replaceChildren(notice('empty', 'No calls between services in this time range', [
      'A call is a span whose parent belongs to another service. Choose a longer time range, or check the tenant at the top right.',
    ]));
    return;
  }
  out.replaceChildren(draw(edges, ctx.root.clientWidth || 1000));
}

/**
 * Lays services out in columns by their longest call chain from a caller-less service
 * (cycles are cut where they close), then draws edges as curves with their call counts.
 * @param {Edge[]} edges
 * @param {number} width
 */
function draw(edges, width) {
  const names = [...new Set(edges.flatMap(e => [e.parent, e.child]))].sort();
  /** @type {Map<string, string[]>} */
  const out = new Map(names.map(n => [n, []]));
  const indeg = new Map(names.map(n => [n, 0]));
  for (const e of edges) {
    if (e.parent === e.child) continue;
    /** @type {string[]} */ (out.get(e.parent)).push(e.child);
    indeg.set(e.child, (indeg.get(e.child) || 0) + 1);
  }
  // Columns by call distance from the services nobody calls (breadth first), so services
  // that call each other in a cycle share a column instead of stretching into a long chain.
  /** @type {Map<string, number>} */
  const level = new Map();
  const queue = names.filter(n => !indeg.get(n));
  if (!queue.length) queue.push(names[0]);
  for (const n of queue) level.set(n, 0);
  for (;;) {
    for (let i = 0; i < queue.length; i++) {
      const n = queue[i];
      for (const c of out.get(n) || []) {
        if (!level.has(c)) {
          level.set(c, /** @type {number} */ (level.get(n)) + 1);
          queue.push(c);
        }
      }
    }
    // Services reachable only through a cycle with no entry: start a new search there.
    const rest = names.find(n => !level.has(n));
    if (!rest) break;
    level.set(rest, 0);
    queue.push(rest);
  }
  const columns = Math.max(...level.values()) + 1;
  /** @type {string[][]} */
  const cols = Array.from({ length: columns }, () => []);
  for (const n of names) cols[level.get(n) || 0].push(n);
  const NW = 160, NH = 40, GAPY = 34;
  const W = Math.max(width - 40, columns * (NW + 50));
  const H = Math.max(...cols.map(c => c.length)) * (NH + GAPY) + 60;
  /** @type {Map<string, {x: number, y: number}>} */
  const pos = new Map();
  cols.forEach((col, i) => {
    const x = columns === 1 ? W / 2 - NW / 2 : 20 + (i * (W - NW - 40)) / (columns - 1);
    const top = (H - col.length * (NH + GAPY) + GAPY) / 2;
    col.forEach((n, j) => pos.set(n, { x, y: top + j * (NH + GAPY) }));
  });
  const el = svg('svg', { class: 'service-map', id: 'service-map', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': 'Service map' });
  const defs = svg('defs');
  const marker = svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' });
  marker.append(svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrow-head' }));
  defs.append(marker);
  el.append(defs);
  const max = Math.max(...edges.map(e => e.callCount));
  for (const e of edges) {
    const a = /** @type {{x: number, y: number}} */ (pos.get(e.parent));
    const b = /** @type {{x: number, y: number}} */ (pos.get(e.child));
    const g = svg('g', { class: 'edge', 'data-parent': e.parent, 'data-child': e.child });
    let d, lx, ly;
    if (e.parent === e.child) {
      d = `M ${a.x + NW - 30} ${a.y} C ${a.x + NW} ${a.y - 40}, ${a.x + NW + 30} ${a.y + 10}, ${a.x + NW} ${a.y + NH / 2}`;
      lx = a.x + NW + 18; ly = a.y - 12;
    } else {
      const forward = b.x > a.x;
      const x1 = forward ? a.x + NW : a.x + NW / 2, y1 = forward ? a.y + NH / 2 : a.y + NH;
      const x2 = forward ? b.x : b.x + NW / 2, y2 = forward ? b.y + NH / 2 : b.y;
      const mx = (x1 + x2) / 2;
      d = forward ? `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}` : `M ${x1} ${y1} C ${x1 + 60} ${(y1 + y2) / 2}, ${x2 + 60} ${(y1 + y2) / 2}, ${x2} ${y2}`;
      lx = forward ? mx : (x1 + x2) / 2 + 50; ly = (y1 + y2) / 2 - 6;
    }
    g.append(svg('path', { d, class: 'edge-line', 'stroke-width': 1.2 + 3 * Math.sqrt(e.callCount / max), 'marker-end': 'url(#arrow)' }));
    const label = svg('text', { x: lx, y: ly, 'text-anchor': 'middle', class: 'edge-label' });
    label.textContent = `${e.callCount} call${e.callCount === 1 ? '' : 's'}`;
    const title = svg('title');
    title.textContent = `${e.parent} → ${e.child}: ${e.callCount} calls`;
    g.append(label, title);
    el.append(g);
  }
  for (const n of names) {
    const p = /** @type {{x: number, y: number}} */ (pos.get(n));
    const g = svg('g', { class: 'node', 'data-service': n, transform: `translate(${p.x} ${p.y})`, tabindex: 0, role: 'link' });
    g.append(svg('rect', { width: NW, height: NH, rx: 8, class: 'node-box' }));
    g.append(svg('rect', { width: 6, height: NH, rx: 3, fill: serviceColour(n) }));
    const t = svg('text', { x: 16, y: NH / 2 + 5, class: 'node-label' });
    t.textContent = n.length > 20 ? `${n.slice(0, 19)}…` : n;
    const title = svg('title');
    title.textContent = `${n}: click to search its traces`;
    g.append(t, title);
    const go = () => navigate(`/search?service=${encodeURIComponent(n)}`);
    g.addEventListener('click', go);
    g.addEventListener('keydown', ev => { if (/** @type {KeyboardEvent} */ (ev).key === 'Enter') go(); });
    el.append(g);
  }
  return h('div', { class: 'map-scroll' }, el);
}
