// Unit tests of ui/src/model.js (no browser needed): the span tree, the critical path and the
// trace quality warnings. Run by tests/ui_browser.rs, or directly:
//
//   node --test tests/ui/model.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildTrace } from '../../ui/src/model.js';

const T0 = 1_700_000_000_000_000_000n;

/** A span; times in ms after T0. */
function span(id, parent, name, from, to, extra = {}) {
  return {
    traceId: 'ab'.repeat(16), spanId: id, parentSpanId: parent, name, kind: 2,
    startTimeUnixNano: String(T0 + BigInt(Math.round(from * 1e6))),
    endTimeUnixNano: String(T0 + BigInt(Math.round(to * 1e6))),
    ...extra,
  };
}

function otlp(service, spans) {
  return { resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }] }, scopeSpans: [{ scope: { name: 's' }, spans }] }] };
}

const critical = trace => trace.spans.filter(s => s.critical).map(s => s.name).sort();

test('sequential children are all on the critical path; a span hidden by a longer sibling is not', () => {
  const t = buildTrace('x', otlp('a', [
    span('0000000000000001', '', 'root', 0, 100),
    span('0000000000000002', '0000000000000001', 'first', 0, 40),
    span('0000000000000003', '0000000000000001', 'shadowed', 10, 30),
    span('0000000000000004', '0000000000000001', 'second', 45, 95),
  ]));
  assert.deepEqual(critical(t), ['first', 'root', 'second']);
});

test('the last-finishing child wins; a child outliving its parent is clipped, not skipped', () => {
  const t = buildTrace('x', otlp('a', [
    span('0000000000000001', '', 'root', 0, 100),
    span('0000000000000002', '0000000000000001', 'early', 5, 50),
    span('0000000000000003', '0000000000000001', 'async', 60, 180),
    span('0000000000000004', '0000000000000003', 'async-child', 150, 170),
    span('0000000000000005', '0000000000000001', 'parallel', 20, 55),
  ]));
  // async outlives the root: it counts up to the root's end (100), so its child, which runs
  // after that, does not; before async's start (60) parallel ended last (55), and before
  // parallel's start (20) early ran.
  assert.deepEqual(critical(t), ['async', 'early', 'parallel', 'root']);
  assert.equal(t.duration, 180e6);
});

test('a tree: depth, services, errors, children in start order', () => {
  const doc = otlp('api', [
    span('0000000000000001', '', 'root', 0, 10),
    span('0000000000000003', '0000000000000001', 'b', 5, 6, { status: { code: 2, message: 'boom' } }),
    span('0000000000000002', '0000000000000001', 'a', 1, 2, { attributes: [{ key: 'error', value: { boolValue: true } }] }),
  ]);
  doc.resourceSpans.push(otlp('db', [span('0000000000000004', '0000000000000002', 'q', 1.2, 1.8)]).resourceSpans[0]);
  const t = buildTrace('x', doc);
  assert.equal(t.depth, 3);
  assert.equal(t.errors, 2);
  assert.deepEqual([...t.services.keys()].sort(), ['api', 'db']);
  assert.deepEqual(t.roots[0].children.map(s => s.name), ['a', 'b']);
  assert.equal(t.spans.find(s => s.name === 'q').start, 1.2e6);
  assert.deepEqual(t.warnings, []);
});

test('warnings: missing parent, several roots, child before parent', () => {
  const t = buildTrace('x', otlp('a', [
    span('0000000000000001', '', 'root', 10, 100),
    span('0000000000000002', '', 'second root', 20, 30),
    span('0000000000000003', 'ffffffffffffffff', 'orphan', 40, 50),
    span('0000000000000004', '0000000000000001', 'skewed', 5, 50),
  ]));
  assert.deepEqual(t.warnings.map(w => w.kind), ['orphans', 'roots', 'skew']);
  assert.deepEqual(t.warnings[0].spans.map(s => s.name), ['orphan']);
  assert.deepEqual(t.warnings[1].spans.map(s => s.name).sort(), ['root', 'second root']);
  assert.deepEqual(t.warnings[2].spans.map(s => s.name), ['skewed']);
});

test('a parent cycle in corrupt data does not hang or lose spans', () => {
  const t = buildTrace('x', otlp('a', [
    span('0000000000000001', '0000000000000002', 'p', 0, 10),
    span('0000000000000002', '0000000000000001', 'q', 1, 9),
  ]));
  assert.equal(t.spans.length, 2);
  assert.ok(t.roots.length >= 1);
  const seen = new Set();
  const walk = list => list.forEach(s => { seen.add(s); walk(s.children); });
  walk(t.roots);
  assert.equal(seen.size, 2, 'every span is reachable from a root');
});

test('nanosecond precision survives 64-bit timestamps', () => {
  const doc = otlp('a', [
    { traceId: 'ab'.repeat(16), spanId: '0000000000000001', name: 'r', startTimeUnixNano: '1700000000000000001', endTimeUnixNano: '1700000000000000998' },
  ]);
  const t = buildTrace('x', doc);
  assert.equal(t.spans[0].duration, 997);
  assert.equal(t.startNs, 1700000000000000001n);
});
