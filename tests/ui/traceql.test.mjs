// Unit tests of the TraceQL helpers in ui/src/traceql.js (no browser needed): quoting, the
// query the search form writes, error positions, and what autocomplete offers where.
//
//   node --test tests/ui/traceql.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  attrName, buildQuery, completionAt, errorPosition, matchesAll, narrowingQuery, offsetOf, parseTags,
  scan, stringLiteral, tagOf, valueLiteral,
} from '../../ui/src/traceql.js';
import { parseDuration } from '../../ui/src/util.js';

/** completionAt with the cursor where `‸` is. */
const at = text => completionAt(text.replace('‸', ''), text.indexOf('‸'));

test('strings and attribute names are quoted as TraceQL reads them', () => {
  assert.equal(stringLiteral('GET /api'), '"GET /api"');
  assert.equal(stringLiteral('say "hi" \\ bye'), '"say \\"hi\\" \\\\ bye"');
  assert.equal(stringLiteral('a\nb'), '"a\\nb"');
  assert.equal(attrName('http.status_code'), 'http.status_code');
  assert.equal(attrName('a-b/c'), 'a-b/c');
  assert.equal(attrName('foo bar'), '"foo bar"');
  assert.equal(attrName('x=y'), '"x=y"');
  assert.equal(attrName(''), '""');
});

test('the form writes one spanset filter', () => {
  const b = f => buildQuery(f, parseDuration);
  assert.equal(b({}), '{}');
  assert.equal(b({ service: ' checkout ' }), '{ resource.service.name = "checkout" }');
  assert.equal(b({ service: 'checkout', operation: 'GET /a "b"', status: 'error' }),
    '{ resource.service.name = "checkout" && name = "GET /a \\"b\\"" && status = error }');
  assert.equal(b({ tags: 'http.status_code=500 error=true order.id=ord-1 ratio=0.5 ok=false code="500" "x y"=1' }),
    '{ .http.status_code = 500 && status = error && .order.id = "ord-1" && .ratio = 0.5 && .ok = false && .code = "500" }');
  assert.equal(b({ tags: 'note="a b"' }), '{ .note = "a b" }');
  assert.equal(b({ minDuration: '1s', maxDuration: '1.5s' }), '{ traceDuration >= 1s && traceDuration <= 1.5s }');
  assert.equal(b({ minDuration: '.5s', durationOf: 'span' }), '{ duration >= 0.5s }');
  assert.equal(b({ minDuration: 'soon', maxDuration: '2m' }), '{ traceDuration <= 2m }', 'an invalid duration is left out');
});

test('logfmt tags keep whether a value was quoted', () => {
  assert.deepEqual(parseTags('a=1 b="1" c="x \\" y"').pairs, [['a', '1', false], ['b', '1', true], ['c', 'x " y', true]]);
  assert.match(parseTags('a=1 nonsense').error ?? '', /not key=value/);
  assert.match(parseTags('a=').error ?? '', /no value/);
});

test('match-all queries are recognised', () => {
  for (const q of ['', '{}', ' { } ', '{ true }']) assert.equal(matchesAll(q), true, q);
  for (const q of ['{ status = error }', '{} | count() > 1', '{} >> {}']) assert.equal(matchesAll(q), false, q);
});

test('server errors point at a line and a column, counted in characters', () => {
  assert.deepEqual(errorPosition('invalid TraceQL query: parse error at line 1, col 12: unexpected \'}\''),
    { line: 1, col: 12, detail: 'unexpected \'}\'' });
  assert.deepEqual(errorPosition('invalid TraceQL query: unsupported at line 2, col 5: rate() is not supported'),
    { line: 2, col: 5, detail: 'rate() is not supported' });
  assert.equal(errorPosition('limit=0 is out of range'), null);
  assert.equal(offsetOf('{ a }', 1, 1), 0);
  assert.equal(offsetOf('{ a }', 1, 3), 2);
  assert.equal(offsetOf('{\n  .x = }', 2, 8), 9);
  assert.equal(offsetOf('{ .x = "😀" && }', 1, 10), 10, 'an astral character is one column but two UTF-16 units');
  assert.equal(offsetOf('{ .x = "😀" && }', 1, 12), 12);
  assert.equal(offsetOf('{}', 1, 99), 2, 'clamped to the line');
  assert.equal(offsetOf('{}', 5, 1), 2, 'clamped to the text');
});

test('the scan is tolerant and knows attributes, intrinsics and strings', () => {
  const toks = scan('{ resource.service.name = "chec');
  assert.deepEqual(toks.map(t => t.type), ['punct', 'attr', 'op', 'str']);
  assert.equal(toks[1].scope, 'resource');
  assert.equal(toks[1].name, 'service.name');
  assert.equal(toks[3].open, true);
  assert.equal(toks[3].value, 'chec');
  assert.deepEqual(scan('span."a b" =~ `x` && span:id != 1.5s // c').map(t => t.type), ['attr', 'op', 'str', 'op', 'scoped', 'op', 'num']);
  assert.equal(scan('span."a \\" b"')[0].name, 'a " b');
  assert.equal(tagOf(scan('span."a b"')[0]), 'span."a b"');
  assert.equal(tagOf(scan('.x')[0]), '.x');
  assert.equal(tagOf(scan('name')[0]), 'name');
  assert.equal(tagOf(scan('foo')[0]), null);
});

test('autocomplete: scopes and intrinsics start a condition', () => {
  assert.deepEqual(at('{‸'), { kind: 'start', from: 1, to: 1, prefix: '' });
  assert.deepEqual(at('{ ‸'), { kind: 'start', from: 2, to: 2, prefix: '' });
  assert.deepEqual(at('{ na‸'), { kind: 'start', from: 2, to: 4, prefix: 'na' });
  assert.deepEqual(at('{ na‸me = "x" }'), { kind: 'start', from: 2, to: 6, prefix: 'na' });
  assert.equal(at('{ name = "x" && ‸')?.kind, 'start');
  assert.equal(at('{ name = "x" ||‸')?.kind, 'start');
  assert.equal(at('{ (‸')?.kind, 'start');
  assert.equal(at('‸'), null, 'outside a filter');
  assert.equal(at('{ name = "x" } ‸'), null);
  assert.equal(at('{ name = "x" } | count() > ‸'), null);
});

test('autocomplete: attribute names after a scope', () => {
  assert.deepEqual(at('{ span.‸'), { kind: 'attribute', from: 2, to: 7, prefix: '', scope: 'span' });
  assert.deepEqual(at('{ resource.serv‸'), { kind: 'attribute', from: 2, to: 15, prefix: 'serv', scope: 'resource' });
  assert.deepEqual(at('{ .ht‸tp.route = 1 }'), { kind: 'attribute', from: 2, to: 13, prefix: 'ht', scope: '' });
  assert.deepEqual(at('{ span."a ‸'), { kind: 'attribute', from: 2, to: 10, prefix: 'a ', scope: 'span' });
});

test('autocomplete: operators after a tag, values after an operator', () => {
  assert.deepEqual(at('{ resource.service.name ‸'), { kind: 'operator', from: 24, to: 24, prefix: '', tag: 'resource.service.name' });
  assert.deepEqual(at('{ status ‸'), { kind: 'operator', from: 9, to: 9, prefix: '', tag: 'status' });
  assert.equal(at('{ foo ‸'), null, 'not a tag');
  assert.deepEqual(at('{ resource.service.name = ‸'),
    { kind: 'value', from: 26, to: 26, prefix: '', tag: 'resource.service.name', op: '=', quoted: false });
  assert.deepEqual(at('{ resource.service.name =‸'),
    { kind: 'value', from: 25, to: 25, prefix: '', tag: 'resource.service.name', op: '=', quoted: false });
  assert.deepEqual(at('{ name =~ "GE‸'), { kind: 'value', from: 10, to: 13, prefix: 'GE', tag: 'name', op: '=~', quoted: true });
  assert.deepEqual(at('{ name = "GE‸T /x" }'), { kind: 'value', from: 9, to: 17, prefix: 'GE', tag: 'name', op: '=', quoted: true });
  assert.deepEqual(at('{ status = er‸'), { kind: 'value', from: 11, to: 13, prefix: 'er', tag: 'status', op: '=', quoted: false });
  assert.deepEqual(at('{ span."a b" != ‸')?.tag, 'span."a b"');
  assert.equal(at('{ duration > ‸'), null, 'no listed values for comparisons');
  assert.deepEqual(at('{ .x = 5‸'), { kind: 'value', from: 7, to: 8, prefix: '5', tag: '.x', op: '=', quoted: false });
  assert.deepEqual(at('{ resource.service.name = mythical-req‸ }'),
    { kind: 'value', from: 26, to: 38, prefix: 'mythical-req', tag: 'resource.service.name', op: '=', quoted: false });
  assert.deepEqual(at('{ name = a‸b && status = error }'), { kind: 'value', from: 9, to: 11, prefix: 'a', tag: 'name', op: '=', quoted: false });
  assert.equal(at('{ name = "x" ‸'), null);
});

test('value suggestions are narrowed by the other complete conditions of the filter', () => {
  const n = text => narrowingQuery(text.replace('‸', ''), text.indexOf('‸'));
  assert.equal(n('{ resource.service.name = "checkout" && span.http.route = ‸'), '{ resource.service.name = "checkout" }');
  assert.equal(n('{ span.http.route = ‸ && resource.service.name = "checkout" && status = error && duration > 1s }'),
    '{ resource.service.name = "checkout" && status = error && duration > 1s }');
  assert.equal(n('{ resource.service.name = "che‸ckout" && name = "x" }'), '{ name = "x" }', 'not the condition being edited');
  assert.equal(n('{ .a = 1 || .b = 2 && name = ‸'), '{}', 'an or at the top is not narrowed');
  assert.equal(n('{ (.a = 1) && name = ‸'), '{}', 'only plain conditions');
  assert.equal(n('{ .a = 1 } >> { name = ‸'), '{}', 'only the filter around the cursor');
  assert.equal(n('{ name = ‸'), '{}');
  assert.equal(n('‸'), '{}');
});

test('values are inserted as literals of their type', () => {
  assert.equal(valueLiteral({ type: 'string', value: 'GET /a' }, '='), '"GET /a"');
  assert.equal(valueLiteral({ type: 'string', value: 'a.b(c)' }, '=~'), '"a\\\\.b\\\\(c\\\\)"');
  assert.equal(valueLiteral({ type: 'int', value: '500' }, '='), '500');
  assert.equal(valueLiteral({ type: 'keyword', value: 'error' }, '='), 'error');
  assert.equal(valueLiteral({ type: 'bool', value: 'true' }, '!='), 'true');
});
