// Unit tests of the formatting and parsing helpers in ui/src/util.js (no browser needed).
//
//   node --test tests/ui/util.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanTraceId, fmtAgo, fmtDuration, parseDuration, serviceColour, windowOf } from '../../ui/src/util.js';

test('durations parse like the API takes them', () => {
  assert.equal(parseDuration('1.2s'), 1.2e9);
  assert.equal(parseDuration('300ms'), 300e6);
  assert.equal(parseDuration(' 1m30s '), 90e9);
  assert.equal(parseDuration('250us'), 250e3);
  assert.equal(parseDuration('250µs'), 250e3);
  assert.equal(parseDuration('2h'), 7200e9);
  for (const bad of ['', 'soon', '1.5', 's', '10 ms', '-1s', '1s2']) assert.equal(parseDuration(bad), null, bad);
});

test('durations print with three significant digits and a fitting unit', () => {
  assert.equal(fmtDuration(997), '997ns');
  assert.equal(fmtDuration(850e3), '850µs');
  assert.equal(fmtDuration(12.34e6), '12.3ms');
  assert.equal(fmtDuration(1.2e9), '1.2s');
  assert.equal(fmtDuration(1.245e9), '1.25s');
  assert.equal(fmtDuration(60e9), '1m');
  assert.equal(fmtDuration(125e9), '2m 5s');
  assert.equal(fmtDuration(2 * 3600e9 + 5 * 60e9), '2h 5m');
  assert.equal(fmtDuration(0), '0ns');
});

test('relative times', () => {
  const now = 1_700_000_000_000;
  assert.equal(fmtAgo(now - 10_000, now), 'just now');
  assert.equal(fmtAgo(now - 120_000, now), '2 minutes ago');
  assert.equal(fmtAgo(now - 3 * 3600_000, now), '3 hours ago');
  assert.equal(fmtAgo(now - 86400_000, now), '1 day ago');
});

test('trace IDs typed by a person', () => {
  assert.equal(cleanTraceId(' 0xABCDEF '), 'abcdef');
  assert.equal(cleanTraceId('c0ffee00000000000000000000000001'), 'c0ffee00000000000000000000000001');
  assert.equal(cleanTraceId('c0ffee000000000000000000000000011'), null, '33 digits');
  assert.equal(cleanTraceId('not-hex'), null);
  assert.equal(cleanTraceId(''), null);
});

test('a service keeps its colour', () => {
  assert.equal(serviceColour('checkout'), serviceColour('checkout'));
  assert.notEqual(serviceColour('checkout'), serviceColour('payments'));
});

test('time windows: presets end now, custom ranges are kept', () => {
  const now = Math.floor(Date.now() / 1000);
  const w = windowOf(new URLSearchParams('range=15m'));
  assert.equal(w.key, '15m');
  assert.ok(Math.abs(w.end - now) <= 1 && w.end - w.start === 900);
  assert.equal(windowOf(new URLSearchParams('range=nonsense')).key, '1h');
  const c = windowOf(new URLSearchParams('range=custom&start=200&end=100'));
  assert.deepEqual([c.start, c.end, c.custom], [100, 200, true]);
});
