// Browser tests of Skein's web UI, run by tests/ui_browser.rs against a running `skein` with
// known data (described by the JSON file in SKEIN_UI_DATA). Drives Debian's Chromium through
// playwright-core (SKEIN_TEST_CHROMIUM, SKEIN_TEST_NODE_MODULES). Every console error fails.
//
//   SKEIN_UI_DATA=... SKEIN_TEST_CHROMIUM=/usr/bin/chromium \
//   SKEIN_TEST_NODE_MODULES=ui/node_modules node tests/ui/ui.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const data = JSON.parse(readFileSync(process.env.SKEIN_UI_DATA ?? '', 'utf8'));
const require = createRequire(path.join(process.env.SKEIN_TEST_NODE_MODULES ?? '', 'x.js'));
const { chromium } = require('playwright-core');
const T = data.traces;
const base = data.url;

/** @type {import('playwright-core').BrowserContext} */
let context;
/** @type {import('playwright-core').Page} */
let page;
/** Console errors and uncaught exceptions, with the page URL they happened on. */
const problems = [];
/** Failed loads the tests cause on purpose (a missing trace is a 404). */
const expected404 = [T.missing, T.checkout];

before(async () => {
  // A fresh profile directory per run (playwright takes it as launchPersistentContext's
  // first argument rather than as --user-data-dir).
  const profile = process.env.SKEIN_UI_PROFILE || mkdtempSync(path.join(tmpdir(), 'skein-ui-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.SKEIN_TEST_CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport: { width: 1440, height: 900 },
    acceptDownloads: true,
  });
  page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on('console', msg => {
    if (msg.type() !== 'error') return;
    const where = msg.location().url || '';
    const isExpected404 = msg.text().includes('404') && expected404.some(id => where.includes(id));
    // The syntax error test sends two invalid queries on purpose: the browser logs their 400s.
    const isExpected400 = msg.text().includes('400') && where.includes('/api/search?') && ['%40', '%22abc+%7D'].some(q => where.includes(q));
    if (!isExpected404 && !isExpected400) problems.push(`console error on ${page.url()}: ${msg.text()} (${where})`);
  });
  page.on('pageerror', err => problems.push(`uncaught exception on ${page.url()}: ${err.message}`));
});

after(async () => {
  await context?.close();
});

const shot = name => page.screenshot({ path: path.join(data.screenshots, `${name}.png`), fullPage: false });
const texts = loc => loc.allInnerTexts();
const resultIds = async () => page.locator('#result-list a.result').evaluateAll(els => els.map(e => e.getAttribute('data-trace-id')));

const serviceSuggestions = () => page.locator('#service-list option').evaluateAll(els => els.map(e => /** @type {HTMLOptionElement} */ (e).value));

async function openSearch(query = '') {
  await page.goto(`${base}/search${query}`);
  await page.locator('#service[data-loaded="true"]').waitFor();
  await page.locator('#result-list, .notice-empty, .notice-error').first().waitFor();
}

async function submitSearch() {
  await page.click('#search-button');
  await page.locator('#result-list, .notice-empty, .notice-error').first().waitFor();
  await page.waitForFunction(() => !document.querySelector('.results .notice-loading'));
}

test('search page lists services and recent traces with summaries', async () => {
  await openSearch();
  const services = await serviceSuggestions();
  for (const s of ['frontend', 'checkout', 'payments', 'inventory', 'big-svc-0']) {
    assert.ok(services.includes(s), `service list ${services} lacks ${s}`);
  }
  assert.ok(!services.includes('billing-b'), 'another tenant\'s service is listed');
  const ids = await resultIds();
  assert.ok(ids.includes(T.checkout), `recent traces ${ids} lack the checkout trace`);
  const dots = await page.locator('#scatter circle.dot').count();
  assert.equal(dots, ids.length, 'one scatter dot per trace');
  assert.ok(await page.locator(`#scatter circle.dot-error[data-trace-id="${T.checkout}"]`).count() === 1, 'the failing trace is an error dot');

  const row = page.locator(`a.result[data-trace-id="${T.checkout}"]`);
  assert.equal(await row.locator('.root-service').innerText(), 'frontend');
  assert.equal(await row.locator('.root-name').innerText(), 'GET /checkout');
  assert.equal(await row.locator('.span-count').innerText(), '8 spans');
  assert.equal(await row.locator('.error-count').innerText(), '1 error');
  assert.match(await row.locator('.result-duration').innerText(), /^1\.2s$/);
  assert.match(await row.innerText(), /minutes? ago/);
  const pills = await texts(row.locator('.pill'));
  assert.deepEqual(pills.map(p => p.replace(/\s+/g, ' ').trim()).sort(), ['checkout 3', 'frontend 3', 'payments 2']);
  await shot('search');

  assert.equal(await page.locator('#operation').isDisabled(), true, 'operations wait for a service');

  await page.locator(`#scatter circle[data-trace-id="${T.checkout}"]`).click();
  await page.waitForURL(`**/trace/${T.checkout}`);
  await page.locator('#trace-title').waitFor();
  await page.goBack();
  await page.locator('#result-list').waitFor();

  await page.selectOption('#sort', 'spans');
  await page.waitForURL(/sort=spans/);
  await page.locator('#result-list').waitFor();
  assert.equal((await resultIds())[0], T.big, 'most spans first puts the 10,000-span trace on top');
  await page.selectOption('#sort', 'errors');
  await page.waitForURL(/sort=errors/);
  await page.locator('#result-list').waitFor();
  assert.equal((await resultIds())[0], T.big, 'the big trace has the most errors');
});

test('search by service, then operation', async () => {
  await openSearch();
  await page.fill('#service', 'inventory');
  await page.locator('#operation option', { hasText: 'reserve items' }).waitFor({ state: 'attached' });
  await submitSearch();
  assert.match(page.url(), /service=inventory/);
  assert.deepEqual(await resultIds(), [T.linked]);
  await page.selectOption('#operation', 'UPDATE stock');
  await submitSearch();
  assert.match(page.url(), /operation=UPDATE\+stock/);
  assert.deepEqual(await resultIds(), [T.linked]);
});

test('search by duration keeps only traces within the bounds', async () => {
  await openSearch();
  await page.fill('#min-duration', '1s');
  await page.fill('#max-duration', '1.5s');
  await submitSearch();
  assert.deepEqual(await resultIds(), [T.checkout]);
  await page.fill('#max-duration', 'soon');
  await page.click('#search-button');
  assert.match(await page.locator('.form-error').innerText(), /not a duration/);
});

test('search in a custom time range', async () => {
  await openSearch();
  await page.selectOption('#range', 'custom');
  const local = ms => {
    const d = new Date(ms);
    const p = n => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
  };
  // The inputs are in the browser's time zone, which is this process's, and have minute
  // precision: 200 s before loading (then cut to the minute) lies between the inventory trace
  // (300 s before) and the checkout trace (120 s before).
  await page.fill('#from', local(data.loadedAtMs - 200_000));
  await page.fill('#to', local(Date.now() + 120_000));
  await submitSearch();
  assert.match(page.url(), /range=custom&start=\d+&end=\d+/);
  const ids = await resultIds();
  assert.ok(ids.includes(T.checkout), `the range holds the checkout trace: ${ids}`);
  assert.ok(!ids.includes(T.linked), 'the inventory trace (5 minutes old) is outside the range');
  await page.fill('#from', local(Date.now()));
  await page.fill('#to', local(Date.now() - 3_600_000));
  await page.click('#search-button');
  assert.match(await page.locator('.form-error').innerText(), /start before the end/);
});

test('search by tag, with autocomplete of keys and values', async () => {
  await openSearch();
  await page.fill('#tags', 'order.');
  await page.waitForFunction(() => [...document.querySelectorAll('#tag-suggestions option')].some(o => /** @type {HTMLOptionElement} */ (o).value === 'order.id='));
  await page.fill('#tags', 'order.id=');
  await page.waitForFunction(() => [...document.querySelectorAll('#tag-suggestions option')].some(o => /** @type {HTMLOptionElement} */ (o).value === 'order.id=ord-4242'));
  await page.fill('#tags', 'order.id=ord-4242');
  await submitSearch();
  assert.deepEqual(await resultIds(), [T.checkout]);
  await page.fill('#tags', 'order.id=nope-0000');
  await submitSearch();
  assert.match(await page.locator('.notice-empty').innerText(), /No traces match/);
  await page.goBack();
  await page.locator('#result-list').waitFor();
  assert.deepEqual(await resultIds(), [T.checkout], 'back returns to the previous search');
});

const boxValue = () => page.inputValue('#traceql');
const suggestionsShown = () => page.locator('#traceql-suggest:not([hidden]) li').evaluateAll(els => els.map(e => e.getAttribute('data-value')));
/** Waits until the autocomplete list shows `value` (and returns what it shows). */
async function waitForSuggestion(value) {
  await page.waitForFunction(v => [...document.querySelectorAll('#traceql-suggest:not([hidden]) li')].some(li => li.getAttribute('data-value') === v), value);
  return suggestionsShown();
}
async function runQuery(text) {
  await page.fill('#traceql', text);
  await page.press('#traceql', 'Control+Enter');
  await page.waitForURL(url => new URL(url).searchParams.get('q') === text);
  await page.locator('#result-list, .notice-empty, .notice-error').first().waitFor();
  await page.waitForFunction(() => !document.querySelector('.results .notice-loading'));
}

test('the form writes TraceQL into the box until the box is edited', async () => {
  await openSearch();
  assert.equal(await boxValue(), '{}');
  assert.equal(await page.locator('#traceql-mode').innerText(), 'written by the form');
  await page.fill('#service', 'payments');
  await page.selectOption('#status', 'error');
  await page.fill('#min-duration', '1s');
  const built = '{ resource.service.name = "payments" && status = error && traceDuration >= 1s }';
  assert.equal(await boxValue(), built);
  await page.fill('#tags', 'payment.provider=acme-pay');
  assert.equal(await boxValue(), built.replace(' && traceDuration', ' && .payment.provider = "acme-pay" && traceDuration'));
  await page.fill('#tags', '');
  await submitSearch();
  assert.deepEqual(await resultIds(), [T.checkout]);
  assert.equal(new URL(page.url()).searchParams.get('q'), built, 'the URL keeps the query');
  assert.equal(new URL(page.url()).searchParams.get('service'), 'payments', 'and the form');
  const row = page.locator(`a.result[data-trace-id="${T.checkout}"]`);
  assert.equal(await row.locator('.match-count').innerText(), '1 matched span');
  assert.deepEqual(await texts(row.locator('.match-span .match-name')), ['charge card']);
  await page.reload();
  await page.locator('#result-list').waitFor();
  assert.equal(await boxValue(), built, 'a reload restores the query');
  assert.equal(await page.inputValue('#service'), 'payments');
  assert.equal(await page.locator('#traceql-mode').innerText(), 'written by the form');

  // Editing the box by hand: the form stops writing it, until "Reset to the form".
  await page.locator('#traceql').press('End');
  await page.locator('#traceql').pressSequentially(' ');
  await page.keyboard.press('Escape');
  assert.equal(await page.locator('#traceql-mode').innerText(), 'edited by hand');
  assert.equal(await page.locator('#form-detached').isVisible(), true);
  await page.fill('#service', 'checkout');
  assert.equal(await boxValue(), `${built} `, 'the form no longer overwrites the box');
  await page.click('#traceql-reset');
  assert.equal(await boxValue(), '{ resource.service.name = "checkout" && status = error && traceDuration >= 1s }');
  assert.equal(await page.locator('#traceql-mode').innerText(), 'written by the form');
});

test('a TraceQL query typed in the box finds its traces and shows the matched spans', async () => {
  await openSearch();
  await runQuery('{ resource.service.name = "inventory" && name = "UPDATE stock" }');
  assert.deepEqual(await resultIds(), [T.linked]);
  assert.equal(await page.locator('#traceql-mode').innerText(), 'edited by hand');
  assert.equal(new URL(page.url()).searchParams.get('service'), null, 'a hand-written query leaves the form out of the URL');

  // Matched spans with the attributes the query names; a structural query.
  await runQuery('{ span.http.status_code >= 500 }');
  const failing = await resultIds();
  assert.equal(failing.length, 2, `the checkout trace (502) and a fixture (500): ${failing}`);
  assert.equal(failing[0], T.checkout);
  assert.ok(data.fixtures.includes(failing[1]));
  const row = page.locator(`a.result[data-trace-id="${T.checkout}"]`);
  assert.equal(await row.locator('.span-count').innerText(), '8 spans', 'span count from serviceStats');
  assert.equal(await row.locator('.error-count').innerText(), '1 error', 'error count from serviceStats');
  const match = row.locator('.match-span');
  assert.equal(await match.count(), 1);
  assert.equal(await match.locator('.match-name').innerText(), 'call bank');
  assert.equal(await match.locator('.match-duration').innerText(), '890ms');
  assert.equal((await match.locator('.match-attr').innerText()).replace(/\s+/g, ''), 'http.status_code=502');
  await shot('search-matches');
  await runQuery('{ name = "POST /api/checkout" } >> { status = error }');
  assert.deepEqual(await resultIds(), [T.checkout]);
  assert.deepEqual(await texts(row.locator('.match-span .match-name')), ['charge card']);

  // More matches than spans per trace: the count says so, the link carries the shown ones.
  await page.fill('#spss', '1');
  await runQuery('{ resource.service.name = "checkout" }');
  assert.equal(new URL(page.url()).searchParams.get('spss'), '1');
  assert.equal((await row.locator('.match-head').textContent()).trim(), '3 matched spans (1 shown)');
  assert.match(await row.getAttribute('href'), /^\/trace\/c0ffee0+1\?match=a00000000000000\d$/);
  await page.reload();
  await page.locator('#result-list').waitFor();
  assert.equal(await boxValue(), '{ resource.service.name = "checkout" }');
  assert.equal(await page.locator('#traceql-mode').innerText(), 'edited by hand');
});

test('a TraceQL syntax error is shown at its line and column', async () => {
  await openSearch();
  const bad = '{ name = "x" @ }';
  await runQuery(bad);
  const err = page.locator('#traceql-error');
  await err.waitFor();
  assert.equal(await err.getAttribute('data-line'), '1');
  assert.equal(await err.getAttribute('data-col'), String(bad.indexOf('@') + 1));
  assert.match(await err.innerText(), /Line 1, column 14: unexpected character '@'/);
  const caret = (await err.locator('.tq-caret').innerText()).split('\n');
  assert.equal(caret[0], bad);
  assert.equal(caret[1], `${' '.repeat(13)}^`);
  assert.equal(await page.locator('.tq-mirror .tq-err-mark').textContent(), '@', 'the character is underlined in the box');
  assert.equal(await page.locator('#traceql').getAttribute('aria-invalid'), 'true');
  assert.match(await page.locator('.results .notice-error').innerText(), /not valid TraceQL/);
  await shot('search-traceql-error');

  // A multi-line query: the position is on its line; an unterminated string points at its quote.
  await runQuery('{ name = "x"\n  && name = "abc }');
  await err.waitFor();
  assert.equal(await err.getAttribute('data-line'), '2');
  assert.equal(await err.getAttribute('data-col'), '13');
  assert.equal(await page.locator('.tq-mirror .tq-err-mark').textContent(), '"');

  // Editing clears the mark.
  await page.locator('#traceql').press('End');
  await page.locator('#traceql').pressSequentially('"');
  assert.equal(await err.isHidden(), true);
  assert.equal(await page.locator('.tq-mirror .tq-err-mark').count(), 0);
});

test('autocomplete in the TraceQL box: scopes, names, operators and narrowed values', async () => {
  await openSearch();
  const box = page.locator('#traceql');
  await page.fill('#traceql', '');
  await box.pressSequentially('{ ');
  const start = await waitForSuggestion('resource.');
  for (const s of ['span.', '.', 'event.', 'link.', 'name', 'status', 'duration', 'kind']) assert.ok(start.includes(s), `${start} lacks ${s}`);

  await box.pressSequentially('resource.service.nam');
  const names = await waitForSuggestion('resource.service.name');
  assert.equal(names[0], 'resource.service.name');
  await page.keyboard.press('Enter');
  assert.equal(await boxValue(), '{ resource.service.name ');
  const ops = await waitForSuggestion('=');
  assert.deepEqual(ops.slice(0, 4), ['=', '!=', '=~', '!~']);
  await page.keyboard.press('Tab');
  assert.equal(await boxValue(), '{ resource.service.name = ');
  const values = await waitForSuggestion('mythical-requester');
  for (const s of ['mythical-server', 'mythical-recorder', 'checkout', 'frontend', 'inventory']) assert.ok(values.includes(s), `${values} lacks ${s}`);
  assert.ok(!values.includes('billing-b'), 'another tenant\'s service is not offered');
  await shot('search-autocomplete');
  await box.pressSequentially('mythical-req');
  await page.waitForFunction(() => document.querySelectorAll('#traceql-suggest:not([hidden]) li').length === 1);
  await page.keyboard.press('Enter');
  assert.equal(await boxValue(), '{ resource.service.name = "mythical-requester"');

  // Values of another tag are narrowed by the complete conditions before it.
  await box.pressSequentially(' && name = ');
  const spanNames = await waitForSuggestion('log_to_loki');
  assert.ok(!spanNames.includes('pg.query:INSERT'), `another service's span names are offered: ${spanNames}`);
  assert.ok(!spanNames.includes('GET /checkout'));
  // Arrow keys and the mouse.
  await page.keyboard.press('ArrowDown');
  assert.equal(await page.locator('#traceql-suggest li.active').getAttribute('data-index'), '1');
  await page.keyboard.press('Escape');
  assert.equal(await page.locator('#traceql-suggest').isHidden(), true);
  await page.keyboard.press('Control+Space');
  await waitForSuggestion('log_to_loki');
  await page.locator('#traceql-suggest li[data-value="log_to_loki"]').click();
  assert.equal(await boxValue(), '{ resource.service.name = "mythical-requester" && name = "log_to_loki"');
  await box.pressSequentially(' && status = ');
  assert.deepEqual(await waitForSuggestion('error'), ['error', 'ok', 'unset']);
  await page.keyboard.press('Escape');
  await box.pressSequentially('ok }');
  await page.keyboard.press('Control+Enter');
  await page.waitForURL(/q=/);
  await page.locator('#result-list, .notice-empty').first().waitFor();
  const ids = await resultIds();
  assert.ok(ids.length > 0 && ids.every(id => data.fixtures.includes(id)), `fixture traces expected: ${ids}`);
});

test('matched spans are highlighted on the trace page, with next-match navigation', async () => {
  await openSearch();
  await runQuery('{ resource.service.name = "checkout" }');
  const row = page.locator(`a.result[data-trace-id="${T.checkout}"]`);
  assert.equal(await row.locator('.match-count').innerText(), '3 matched spans');
  await row.click();
  await page.waitForURL(/\/trace\/c0ffee0+1\?match=/);
  const ids = new URL(page.url()).searchParams.get('match').split(',').sort();
  assert.deepEqual(ids, ['a000000000000003', 'a000000000000004', 'a000000000000008']);
  await page.locator('#waterfall-rows .row').first().waitFor();
  const matched = page.locator('#waterfall-rows .row.qmatch');
  assert.equal(await matched.count(), 3);
  assert.equal(await page.locator('#waterfall-rows .row.qmatch .qmatch-mark').count(), 3);
  assert.equal(await page.locator('#match-count').innerText(), '3 spans matched the search');
  await page.mouse.move(0, 0);
  const bg = await matched.first().evaluate(el => getComputedStyle(el).backgroundColor);
  const plain = await page.locator('#waterfall-rows .row:not(.qmatch)').first().evaluate(el => getComputedStyle(el).backgroundColor);
  assert.notEqual(bg, plain, 'matched rows have their own background');
  await shot('trace-matches');

  await page.click('#match-next');
  assert.equal(await page.locator('#details-name').innerText(), 'POST /api/checkout');
  assert.equal(await page.locator('#match-count').innerText(), 'Match 1 of 3');
  assert.match(page.url(), /span=a000000000000003/);
  await page.click('#match-next');
  assert.equal(await page.locator('#details-name').innerText(), 'SELECT orders');
  await page.locator('#waterfall-scroll').focus();
  await page.keyboard.press('n');
  assert.equal(await page.locator('#details-name').innerText(), 'load cart');
  assert.equal(await page.locator('#match-count').innerText(), 'Match 3 of 3');
  await page.keyboard.press('n');
  assert.equal(await page.locator('#match-count').innerText(), 'Match 1 of 3', 'next wraps around');
  await page.click('#match-prev');
  assert.equal(await page.locator('#details-name').innerText(), 'load cart');

  // "Only matches" without find text keeps the matched spans and their ancestors.
  await page.check('#only-matches');
  assert.equal(await page.locator('#waterfall-rows .row').count(), 5);
  await page.uncheck('#only-matches');
  assert.equal(await page.locator('#waterfall-rows .row').count(), 8);

  // IDs of spans that are not in the trace are counted, not fatal.
  await page.goto(`${base}/trace/${T.checkout}?match=a000000000000006,ffffffffffffffff`);
  await page.locator('#waterfall-rows .row.qmatch').first().waitFor();
  assert.equal(await page.locator('#match-count').innerText(), '1 span matched the search (1 not in this trace)');
});

test('a result opens the trace: header, critical path, expand and collapse', async () => {
  await openSearch('?tags=order.id%3Dord-4242');
  assert.equal(await page.inputValue('#traceql'), '{ .order.id = "ord-4242" }', 'an old tags link runs as TraceQL');
  await page.click(`a.result[data-trace-id="${T.checkout}"]`);
  await page.waitForURL(`**/trace/${T.checkout}?match=a000000000000003`);
  await page.locator('#waterfall-rows .row').first().waitFor();
  assert.deepEqual(await texts(page.locator('#waterfall-rows .row.qmatch .span-name')), ['POST /api/checkout'], 'the matched span is highlighted');
  assert.equal(await page.locator('#trace-title').innerText(), 'frontend: GET /checkout');
  assert.equal(await page.locator('#stat-spans').innerText(), '8');
  assert.equal(await page.locator('#stat-services').innerText(), '3');
  assert.equal(await page.locator('#stat-depth').innerText(), '5');
  assert.equal(await page.locator('#stat-errors').innerText(), '1');
  assert.equal(await page.locator('#stat-duration').innerText(), '1.2s');
  assert.equal(await page.locator('#warnings').count(), 0, 'a well-formed trace has no warnings');

  const rows = page.locator('#waterfall-rows .row');
  assert.equal(await rows.count(), 8);
  const critical = await texts(page.locator('#waterfall-rows .row.critical .span-name'));
  for (const name of ['GET /checkout', 'charge card', 'call bank', 'render page']) {
    assert.ok(critical.includes(name), `critical path ${critical} lacks ${name}`);
  }
  assert.ok(!critical.includes('load cart'), 'a span that ran in the shadow of another is not critical');
  assert.equal(await page.locator('#waterfall-rows .row.error .span-name').innerText(), 'charge card');
  assert.ok((await page.locator('#waterfall-rows .row .kind-client').count()) >= 2, 'span kinds shown');

  // Dragging across the minimap zooms the time axis; the reset button undoes it.
  const box = await page.locator('#minimap canvas').boundingBox();
  await page.mouse.move(box.x + box.width * 0.5, box.y + 20);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.75, box.y + 25, { steps: 4 });
  await page.mouse.up();
  await page.locator('#zoom-reset').waitFor();
  assert.match(await page.locator('.wf-axis .tick').first().innerText(), /^(5\d\d|6\d\d)ms$/, 'the axis starts about half-way');
  await page.click('#zoom-reset');
  assert.equal(await page.locator('.wf-axis .tick').first().innerText(), '0ns');
  assert.equal(await page.locator('#zoom-reset').isHidden(), true);

  await page.locator('#waterfall-rows .row').first().locator('.toggle').click();
  assert.equal(await rows.count(), 1, 'collapsing the root hides its subtree');
  await page.click('#expand-all');
  assert.equal(await rows.count(), 8);
  await page.click('#collapse-all');
  assert.equal(await rows.count(), 1);
  await page.click('#expand-all');
  assert.equal(await rows.count(), 8);
});

test('span details show attributes, events, exceptions and links; a link is followed', async () => {
  await page.goto(`${base}/trace/${T.checkout}`);
  await page.locator('#waterfall-rows .row').first().waitFor();
  await page.locator('#waterfall-rows .row', { hasText: 'charge card' }).click();
  const details = page.locator('#span-details');
  await details.waitFor();
  assert.equal(await page.locator('#details-name').innerText(), 'charge card');
  assert.match(await page.locator('#details-status').innerText(), /error: card declined/);
  assert.equal(await details.locator('.exc-type').innerText(), 'PaymentDeclined');
  assert.equal(await details.locator('.exc-message').innerText(), 'card declined by issuer');
  assert.match(await details.locator('.stacktrace').innerText(), /payments\/charge\.js:42:11/);
  const events = await texts(details.locator('.event'));
  assert.ok(events.some(e => /\+350ms\s+retry/.test(e) && /retry\.attempt\s+2/.test(e)), `events: ${events}`);
  assert.ok(events.some(e => /\+750ms\s+exception/.test(e)), `events: ${events}`);
  assert.match(page.url(), /span=a000000000000005/, 'the selected span is in the URL');
  const chargeRow = page.locator('#waterfall-rows .row', { hasText: 'charge card' });
  assert.equal(await chargeRow.locator('.event-tick').count(), 2, 'events are ticks on the bar');
  assert.equal(await chargeRow.locator('.event-tick.event-tick-exception').count(), 1);
  await shot('trace');
  await page.keyboard.press('ArrowDown');
  assert.equal(await page.locator('#details-name').innerText(), 'call bank', 'arrow down selects the next row');
  await page.keyboard.press('ArrowUp');
  assert.equal(await page.locator('#details-name').innerText(), 'charge card');

  await page.locator('#waterfall-rows .row', { hasText: 'checkout' }).filter({ hasText: 'POST /api/checkout' }).filter({ has: page.locator('.kind-server') }).click();
  assert.equal(await page.locator('#details-name').innerText(), 'POST /api/checkout');
  const spanAttrs = await details.locator('#attrs-span').innerText();
  assert.match(spanAttrs, /order\.id\s+ord-4242/);
  assert.match(spanAttrs, /cart\.items\s+3/);
  assert.match(await details.locator('#attrs-resource').innerText(), /host\.name\s+checkout-7f9c/);
  assert.equal(await details.locator('#attrs-scope .scope-name').innerText(), 'checkout-instrumentation 1.2.0');
  const link = details.locator('#details-links a.span-link');
  assert.equal(await link.innerText(), `${T.linked} / ${data.linkedSpan}`);
  assert.match(await details.locator('#details-links').innerText(), /link\.reason\s+reserved-by/);

  await link.click();
  await page.waitForURL(`**/trace/${T.linked}?span=${data.linkedSpan}`);
  await page.locator('#span-details').waitFor();
  assert.equal(await page.locator('#trace-title').innerText(), 'inventory: reserve items');
  assert.equal(await page.locator('#details-name').innerText(), 'reserve items', 'the linked span is selected');
  assert.equal(await page.locator('#waterfall-rows .row.selected .span-name').innerText(), 'reserve items');

  await page.goBack();
  await page.waitForURL(`**/trace/${T.checkout}**`);
  await page.locator('#trace-title').waitFor();
  assert.equal(await page.locator('#trace-title').innerText(), 'frontend: GET /checkout');
});

test('find in trace highlights and filters; download gives OTLP JSON', async () => {
  await page.goto(`${base}/trace/${T.checkout}`);
  await page.locator('#waterfall-rows .row').first().waitFor();
  await page.fill('#find', 'ord-4242');
  assert.equal(await page.locator('#find-count').innerText(), '1 of 8 spans match');
  assert.equal(await page.locator('#waterfall-rows .row.match').count(), 1);
  await page.check('#only-matches');
  // The match and its ancestors.
  assert.equal(await page.locator('#waterfall-rows .row').count(), 3);
  assert.match(page.url(), /find=ord-4242/);
  await page.fill('#find', '');
  await page.uncheck('#only-matches');
  assert.equal(await page.locator('#waterfall-rows .row').count(), 8);

  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  assert.equal(download.suggestedFilename(), `trace-${T.checkout}.json`);
  const file = await download.path();
  const doc = JSON.parse(readFileSync(file, 'utf8'));
  const spans = doc.resourceSpans.flatMap(r => r.scopeSpans.flatMap(s => s.spans));
  assert.equal(spans.length, 8);
  assert.ok(spans.every(s => s.traceId === T.checkout));
});

test('the dark theme follows the system setting', async () => {
  await page.goto(`${base}/trace/${T.checkout}?span=a000000000000005`);
  await page.locator('#span-details').waitFor();
  const bg = () => page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
  const light = await bg();
  await page.emulateMedia({ colorScheme: 'dark' });
  const dark = await bg();
  assert.notEqual(dark, light);
  await shot('trace-dark');
  await page.emulateMedia({ colorScheme: 'light' });
  assert.equal(await bg(), light);
});

test('trace quality warnings explain broken traces', async () => {
  await page.goto(`${base}/trace/${T.broken}`);
  await page.locator('#warnings').waitFor();
  const kinds = await page.locator('#warnings .warning').evaluateAll(els => els.map(e => e.getAttribute('data-kind')));
  assert.deepEqual(kinds, ['orphans', 'roots', 'skew']);
  const text = await page.locator('#warnings').innerText();
  assert.match(text, /parent.*missing/i);
  assert.match(text, /context propagation/i);
  assert.match(text, /2 root spans/);
  assert.match(text, /clock skew/i);
  assert.ok(await page.locator('#waterfall-rows .row .orphan-mark').count() === 1);
});

test('go to trace by ID from the header; a missing trace says so', async () => {
  await page.goto(`${base}/map`);
  await page.fill('#goto-id', ` ${T.checkout.toUpperCase()} `);
  await page.press('#goto-id', 'Enter');
  await page.waitForURL(`**/trace/${T.checkout}`);
  await page.locator('#trace-title').waitFor();

  await page.fill('#goto-id', T.missing);
  await page.press('#goto-id', 'Enter');
  await page.waitForURL(`**/trace/${T.missing}`);
  const msg = page.locator('.notice-error');
  await msg.waitFor();
  assert.match(await msg.innerText(), new RegExp(`Trace ${T.missing} was not found`));
  assert.match(await msg.innerText(), /switch the tenant/);

  await page.fill('#goto-id', 'not-a-trace');
  await page.press('#goto-id', 'Enter');
  assert.equal(await page.locator('#goto-id').evaluate(el => /** @type {HTMLInputElement} */ (el).validity.valid), false);
  assert.match(page.url(), new RegExp(`/trace/${T.missing}$`), 'an invalid ID does not navigate');
});

test('the 10,000-span trace opens in under 2 s and scrolls with few rows in the DOM', async () => {
  await page.goto(`${base}/search`);
  await page.locator('#service[data-loaded="true"]').waitFor();
  // One request first, so the timing below is the UI's with a warm server (the API's own speed
  // is the querier's tests' business; a debug build on a busy machine varies a lot).
  const warm = await page.evaluate(async id => {
    const t = performance.now();
    const r = await fetch(`/api/v2/traces/${id}`);
    await r.arrayBuffer();
    return Math.round(performance.now() - t);
  }, T.big);
  console.log(`# warm-up request of the 10,000-span trace: ${warm} ms`);
  const started = Date.now();
  await page.fill('#goto-id', T.big);
  await page.press('#goto-id', 'Enter');
  await page.locator('#waterfall-rows .row').first().waitFor();
  await page.waitForFunction(() => document.querySelector('#stat-spans')?.textContent === '10000');
  const took = Date.now() - started;
  const fetchMs = await page.evaluate(id => {
    const e = performance.getEntriesByType('resource').filter(r => r.name.includes(`/api/v2/traces/${id}`)).pop();
    return e ? Math.round(e.duration) : -1;
  }, T.big);
  const marks = await page.evaluate(() => Object.fromEntries(performance.getEntriesByType('mark')
    .filter(m => m.name.startsWith('skein:trace-')).map(m => [m.name.slice(12), Math.round(m.startTime)])));
  // Measured inside the page, from the navigation to the drawn waterfall (request, parsing,
  // model, first rows), so the test driver's own round trips on a busy machine do not count.
  const open = marks['drawn'] - marks['requested'];
  console.log(`# 10,000-span trace opened in ${open} ms in the page, ${took} ms as seen by the test driver (the API request ${fetchMs} ms; page marks ${JSON.stringify(marks)})`);
  assert.ok(open < 2000, `the 10,000-span trace took ${open} ms to open`);
  const inDom = await page.locator('#waterfall-rows .row').count();
  assert.ok(inDom > 10 && inDom < 200, `${inDom} rows in the DOM`);

  const scroller = page.locator('#waterfall-scroll');
  const height = await scroller.evaluate(el => el.scrollHeight);
  assert.ok(height >= 10000 * 26, `the scroll area covers every row (${height}px)`);
  const scrollStarted = Date.now();
  for (let i = 1; i <= 20; i++) {
    await scroller.evaluate((el, f) => { el.scrollTop = el.scrollHeight * f; }, i / 20);
    await page.evaluate(() => new Promise(r => requestAnimationFrame(() => r(null))));
  }
  console.log(`# 20 scroll steps in ${Date.now() - scrollStarted} ms`);
  const lastIndex = await page.locator('#waterfall-rows .row').last().getAttribute('data-span-id');
  assert.ok(lastIndex, 'rows are drawn at the bottom');
  assert.ok((await page.locator('#waterfall-rows .row').count()) < 200, 'still only the visible rows in the DOM');
  await page.click('#collapse-all');
  assert.equal(await page.locator('#waterfall-rows .row').count(), 1);
  await page.click('#expand-all');
  await shot('trace-10000-spans');
});

test('service map shows services and calls with counts', async () => {
  await page.goto(`${base}/search`);
  await page.click('a[data-tab="map"]');
  await page.waitForURL('**/map');
  await page.locator('#service-map').waitFor();
  const nodes = await page.locator('#service-map .node').evaluateAll(els => els.map(e => e.getAttribute('data-service')));
  for (const s of ['frontend', 'checkout', 'payments', 'big-svc-0']) assert.ok(nodes.includes(s), `map nodes ${nodes} lack ${s}`);
  assert.ok(!nodes.includes('inventory'), 'a service with no calls to or from others is not drawn');
  const edge = page.locator('#service-map .edge[data-parent="frontend"][data-child="checkout"]');
  assert.equal(await edge.locator('.edge-label').textContent(), '1 call');
  assert.equal(await page.locator('#service-map .edge[data-parent="checkout"][data-child="payments"] .edge-label').textContent(), '1 call');
  await shot('service-map');
  await page.selectOption('#map-range', '7d');
  await page.waitForURL('**/map?range=7d');
  await page.locator('#service-map').waitFor();
  await page.locator('#service-map .node[data-service="payments"]').click();
  await page.waitForURL('**/search?service=payments');
});

test('switching the tenant shows only that tenant\'s data, and is remembered', async () => {
  await page.goto(`${base}/search`);
  await page.locator('#service[data-loaded="true"]').waitFor();
  await page.fill('#tenant', data.tenantB);
  await page.press('#tenant', 'Enter');
  await page.locator('#service[data-loaded="true"]').waitFor();
  await page.locator('#result-list, .notice-empty').first().waitFor();
  assert.deepEqual(await serviceSuggestions(), ['billing-b']);
  assert.deepEqual(await resultIds(), [T.tenantB]);

  await page.reload();
  await page.locator('#service[data-loaded="true"]').waitFor();
  assert.equal(await page.inputValue('#tenant'), data.tenantB, 'the tenant is remembered');
  assert.deepEqual(await serviceSuggestions(), ['billing-b']);

  await page.goto(`${base}/trace/${T.checkout}`);
  await page.locator('.notice-error').waitFor();
  assert.match(await page.locator('.notice-error').innerText(), /was not found/);

  await page.fill('#tenant', '');
  await page.press('#tenant', 'Enter');
  await page.locator('#trace-title').waitFor();
  assert.equal(await page.locator('#trace-title').innerText(), 'frontend: GET /checkout');
});

test('no console errors', () => {
  assert.deepEqual(problems, []);
});
