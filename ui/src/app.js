// The app shell: routing by URL (History API), the header (go to trace, tenant), and the
// views. Every view renders from `location` alone, so links are shareable and back works.

import { knownTenants, setTenant, tenant } from './api.js';
import { renderSearch } from './search.js';
import { renderTrace } from './trace.js';
import { renderMap } from './map.js';
import { cleanTraceId, h } from './util.js';

/**
 * What a view gets: where to draw, and a signal that aborts when the user navigates away.
 * @typedef {{root: HTMLElement, signal: AbortSignal, url: URL}} ViewContext
 */

/** @type {AbortController | null} */
let current = null;

/** Goes to `href` (same origin) and renders it. @param {string} href @param {{replace?: boolean}} [opts] */
export function navigate(href, opts = {}) {
  const url = new URL(href, location.href);
  if (url.href === location.href && !opts.replace) {
    render();
    return;
  }
  if (opts.replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render();
}

/**
 * Updates the URL's query without rendering again (view state that the view already shows,
 * such as the selected span). @param {URLSearchParams} q
 */
export function setQuery(q) {
  const url = new URL(location.href);
  url.search = q.toString();
  if (url.href !== location.href) history.replaceState(null, '', url);
}

function render() {
  if (current) current.abort();
  current = new AbortController();
  const root = /** @type {HTMLElement} */ (document.getElementById('view'));
  root.replaceChildren();
  const url = new URL(location.href);
  const path = url.pathname.replace(/\/+$/, '') || '/';
  const ctx = { root, signal: current.signal, url };
  let tab = 'search';
  if (path.startsWith('/trace/')) {
    tab = '';
    renderTrace(ctx, decodeURIComponent(path.slice('/trace/'.length)));
  } else if (path === '/map') {
    tab = 'map';
    renderMap(ctx);
  } else {
    renderSearch(ctx);
  }
  for (const a of document.querySelectorAll('[data-tab]')) {
    a.classList.toggle('active', a.getAttribute('data-tab') === tab);
  }
}

function setupHeader() {
  const form = /** @type {HTMLFormElement} */ (document.getElementById('goto'));
  const input = /** @type {HTMLInputElement} */ (document.getElementById('goto-id'));
  form.addEventListener('submit', e => {
    e.preventDefault();
    const id = cleanTraceId(input.value);
    if (!id) {
      input.setCustomValidity('A trace ID is 1 to 32 hexadecimal digits');
      input.reportValidity();
      return;
    }
    input.setCustomValidity('');
    input.value = '';
    input.blur();
    navigate(`/trace/${id}`);
  });
  input.addEventListener('input', () => input.setCustomValidity(''));

  const t = /** @type {HTMLInputElement} */ (document.getElementById('tenant'));
  const list = /** @type {HTMLDataListElement} */ (document.getElementById('tenant-list'));
  const fill = () => list.replaceChildren(...knownTenants().map(x => h('option', { value: x })));
  t.value = tenant();
  fill();
  const apply = () => {
    if (t.value.trim() === tenant()) return;
    setTenant(t.value);
    t.value = tenant();
    fill();
    render();
  };
  t.addEventListener('change', apply);
  t.addEventListener('keydown', e => {
    if (e.key === 'Enter') apply();
  });
  // Another tab changed the tenant: follow it, so the two never disagree silently.
  window.addEventListener('storage', e => {
    if (e.key === 'skein.tenant') {
      t.value = tenant();
      render();
    }
  });
}

// Internal links navigate without reloading; modified clicks open tabs as usual.
document.addEventListener('click', e => {
  const target = /** @type {Element | null} */ (e.target instanceof Element ? e.target : null);
  const a = target && target.closest('a[href]');
  if (!(a instanceof HTMLAnchorElement) || e.defaultPrevented) return;
  if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  if (a.target || a.hasAttribute('download') || a.origin !== location.origin) return;
  if (a.pathname.startsWith('/api/') || a.pathname.startsWith('/jaeger/')) return;
  e.preventDefault();
  navigate(a.href);
});

window.addEventListener('popstate', render);
setupHeader();
render();
