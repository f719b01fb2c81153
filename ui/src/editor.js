// The TraceQL box of the search page: a textarea with autocomplete (scopes, intrinsics,
// attribute names and values from the tag APIs) and the server's syntax errors shown at
// their position (an underline in a mirror behind the text, and a caret line below it).

import * as api from './api.js';
import {
  INTRINSICS, KEYWORDS, OPERATORS, SCOPES, attrName, completionAt, errorPosition, narrowingQuery,
  offsetOf, valueLiteral,
} from './traceql.js';
import { debounce, h } from './util.js';

/**
 * One suggestion: what it shows, what it inserts, and whether to suggest again after it
 * (a scope is followed by names, a name by operators, an operator by values).
 * @typedef {{label: string, insert: string, detail: string, reopen: boolean}} Item
 */

/** A window of the tag APIs, with a key naming it for the cache. @typedef {{start: number, end: number, key: string}} TagWindow */

/** Listings already fetched: key → when, and what. Shared by the views, for a minute. */
const cache = /** @type {Map<string, {at: number, value: any}>} */ (new Map());
const TTL_MS = 60_000;

/**
 * @template T
 * @param {string} key
 * @param {(signal: AbortSignal) => Promise<T>} load
 * @param {AbortSignal} signal
 * @returns {Promise<T>}
 */
async function cached(key, load, signal) {
  const hit = cache.get(key);
  if (hit && Date.now() - hit.at < TTL_MS) return hit.value;
  const value = await load(signal);
  cache.set(key, { at: Date.now(), value });
  if (cache.size > 200) cache.delete(/** @type {string} */ (cache.keys().next().value));
  return value;
}

/** Intrinsics whose values the value listing knows. */
const VALUE_INTRINSICS = new Set([
  'name', 'statusMessage', 'rootName', 'rootServiceName', 'span:name', 'span:statusMessage',
  'trace:rootName', 'trace:rootService', 'event:name', 'instrumentation:name', 'instrumentation:version',
]);

const MAX_ITEMS = 50;

export class TraceqlEditor {
  /**
   * @param {{value: string, window: () => TagWindow, signal: AbortSignal,
   *   onRun: () => void, onEdit: () => void}} opts
   */
  constructor(opts) {
    this.opts = opts;
    this.input = h('textarea', {
      id: 'traceql', class: 'tq-input', rows: 1, spellcheck: 'false', autocomplete: 'off',
      autocapitalize: 'off', 'aria-label': 'TraceQL query', 'aria-autocomplete': 'list',
      'aria-controls': 'traceql-suggest', 'aria-expanded': 'false',
      placeholder: '{ resource.service.name = "checkout" && duration > 100ms }',
    });
    this.input.value = opts.value;
    this.mirror = h('div', { class: 'tq-mirror', 'aria-hidden': 'true' });
    this.list = h('ul', { id: 'traceql-suggest', class: 'tq-suggest', role: 'listbox', hidden: true });
    this.errorBox = h('div', { id: 'traceql-error', class: 'tq-error', role: 'alert', hidden: true });
    this.el = h('div', { class: 'tq-editor' },
      h('div', { class: 'tq-box' }, this.mirror, this.input, this.list), this.errorBox);
    /** @type {Item[]} */
    this.items = [];
    this.active = 0;
    /** @type {import('./traceql.js').Completion | null} */
    this.context = null;
    /** @type {AbortController | null} the requests of the last completion run */
    this.run = null;
    this.seq = 0;
    /** @type {number | null} where the error mark is, as a string index */
    this.errorAt = null;

    const later = debounce(() => this.complete(), 120);
    this.input.addEventListener('input', () => {
      this.clearError();
      this.autosize();
      opts.onEdit();
      later();
    });
    this.input.addEventListener('keydown', e => this.onKey(e));
    this.input.addEventListener('click', () => this.close());
    this.input.addEventListener('blur', () => setTimeout(() => {
      if (document.activeElement !== this.input) this.close();
    }, 0));
    this.list.addEventListener('mousedown', e => {
      const li = /** @type {Element} */ (e.target).closest('li[data-index]');
      e.preventDefault();
      if (li) this.accept(this.items[Number(li.getAttribute('data-index'))]);
    });
    opts.signal.addEventListener('abort', () => this.run?.abort());
    window.addEventListener('resize', () => this.autosize(), { signal: opts.signal });
  }

  get value() {
    return this.input.value;
  }

  /** Replaces the text (the form writing its query); clears the error mark. @param {string} text */
  setValue(text) {
    if (this.input.value === text) return;
    this.input.value = text;
    this.clearError();
    this.autosize();
  }

  autosize() {
    this.input.style.height = 'auto';
    this.input.style.height = `${this.input.scrollHeight + 2}px`;
    this.paintMirror();
  }

  /** @param {KeyboardEvent} e */
  onKey(e) {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      this.close();
      this.opts.onRun();
      return;
    }
    if (e.key === ' ' && e.ctrlKey) {
      e.preventDefault();
      this.complete();
      return;
    }
    if (this.list.hidden) return;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      const n = this.items.length;
      this.setActive((this.active + (e.key === 'ArrowDown' ? 1 : n - 1)) % n);
    } else if (e.key === 'Enter' || e.key === 'Tab') {
      e.preventDefault();
      this.accept(this.items[this.active]);
    } else if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      this.close();
    }
  }

  /** Works out what to suggest at the cursor, fetching names or values when needed. */
  async complete() {
    const text = this.input.value;
    const cursor = this.input.selectionStart;
    this.run?.abort();
    const seq = ++this.seq;
    if (document.activeElement !== this.input || cursor !== this.input.selectionEnd) {
      this.close();
      return;
    }
    const ctx = completionAt(text, cursor);
    if (!ctx) {
      this.close();
      return;
    }
    const run = new AbortController();
    this.run = run;
    /** @type {Item[]} */
    let items;
    try {
      items = await this.suggestions(ctx, text, run.signal);
    } catch (e) {
      // Aborted by a newer run, or the listing failed: no suggestions rather than an error.
      if (seq === this.seq) this.close();
      return;
    }
    if (seq !== this.seq || this.input.value !== text) return;
    const shown = rank(items, ctx.prefix).filter(i => i.insert.trim() !== text.slice(ctx.from, ctx.to).trim() || i.reopen);
    if (!shown.length) {
      this.close();
      return;
    }
    this.context = ctx;
    this.show(shown);
  }

  /**
   * @param {import('./traceql.js').Completion} ctx
   * @param {string} text
   * @param {AbortSignal} signal
   * @returns {Promise<Item[]>}
   */
  async suggestions(ctx, text, signal) {
    const w = this.opts.window();
    const who = `${api.tenant()}|${w.key}`;
    /** @param {'span' | 'resource' | 'intrinsic'} scope */
    const names = scope => cached(`names|${who}|${scope}`, s => api.tagNamesV2(scope, '', w, s).then(r => r[scope] || []), signal);
    if (ctx.kind === 'start') {
      const intrinsics = await names('intrinsic').catch(() => INTRINSICS);
      const plain = intrinsics.filter(n => !n.includes(':'));
      const scoped = intrinsics.filter(n => n.includes(':'));
      return [
        ...SCOPES.map(s => ({ label: s, insert: s, detail: s === '.' ? 'span or resource attribute' : `${s.slice(0, -1)} attribute`, reopen: true })),
        ...[...plain, ...scoped].map(n => ({ label: n, insert: `${n} `, detail: 'intrinsic', reopen: true })),
      ];
    }
    if (ctx.kind === 'attribute') {
      const scope = ctx.scope || '';
      /** @type {string[]} */
      let list;
      if (scope === 'resource') list = await names('resource');
      else if (scope === '') list = [...new Set([...(await names('span')), ...(await names('resource'))])].sort();
      else list = await names('span');
      const prefix = scope ? `${scope}.` : '.';
      return list.map(n => ({ label: `${prefix}${n}`, insert: `${prefix}${attrName(n)} `, detail: scope || 'span or resource', reopen: true }));
    }
    if (ctx.kind === 'operator') {
      const ops = KEYWORDS[ctx.tag || ''] ? ['=', '!='] : OPERATORS;
      return ops.map(op => ({ label: op, insert: `${op} `, detail: 'operator', reopen: true }));
    }
    const tag = ctx.tag || '';
    const op = ctx.op || '=';
    const keywords = KEYWORDS[tag];
    if (keywords) return keywords.map(k => ({ label: k, insert: k, detail: 'keyword', reopen: false }));
    if (!tag.includes('.') && !VALUE_INTRINSICS.has(tag)) return [];
    const q = narrowingQuery(text, ctx.from);
    const load = (/** @type {string} */ narrow) => cached(`values|${who}|${tag}|${narrow}`, s => api.tagValuesV2(tag, narrow, w, s), signal);
    // A narrowing query the server refuses (an odd corner of the text) falls back to none.
    const values = await load(q).catch(e => {
      if (signal.aborted || q === '{}' || !(e instanceof api.ApiError) || e.status !== 400) throw e;
      return load('{}');
    });
    return values.map(v => ({ label: v.value, insert: valueLiteral(v, op), detail: v.type, reopen: false }));
  }

  /** @param {Item[]} items */
  show(items) {
    this.items = items;
    this.list.replaceChildren(...items.map((it, i) => h('li', {
      role: 'option', 'data-index': i, 'data-value': it.label, id: `tq-option-${i}`,
    }, h('span', { class: 'tq-label' }, it.label), h('span', { class: 'tq-detail' }, it.detail))));
    this.list.hidden = false;
    this.input.setAttribute('aria-expanded', 'true');
    this.setActive(0);
    this.place();
  }

  /** @param {number} i */
  setActive(i) {
    this.active = i;
    for (const [j, li] of [...this.list.children].entries()) {
      li.classList.toggle('active', j === i);
      li.setAttribute('aria-selected', String(j === i));
    }
    const li = this.list.children[i];
    if (li) {
      li.scrollIntoView({ block: 'nearest' });
      this.input.setAttribute('aria-activedescendant', li.id);
    }
  }

  close() {
    if (this.list.hidden) return;
    this.list.hidden = true;
    this.items = [];
    this.context = null;
    this.input.setAttribute('aria-expanded', 'false');
    this.input.removeAttribute('aria-activedescendant');
  }

  /** @param {Item | undefined} item */
  accept(item) {
    const ctx = this.context;
    if (!item || !ctx) return;
    const text = this.input.value;
    this.input.value = text.slice(0, ctx.from) + item.insert + text.slice(ctx.to);
    const at = ctx.from + item.insert.length;
    this.input.setSelectionRange(at, at);
    this.input.focus();
    this.close();
    this.clearError();
    this.autosize();
    this.opts.onEdit();
    if (item.reopen) this.complete();
  }

  /** Puts the list under the cursor, measured in the mirror. */
  place() {
    const at = this.input.selectionStart;
    const marker = h('span', {}, '\u200b');
    this.mirror.replaceChildren(this.input.value.slice(0, at), marker);
    const top = marker.offsetTop + marker.offsetHeight - this.input.scrollTop;
    const left = Math.min(marker.offsetLeft, Math.max(0, this.input.clientWidth - 320));
    this.paintMirror();
    this.list.style.top = `${top + 4}px`;
    this.list.style.left = `${left}px`;
  }

  /** The mirror behind the text: the text, with the error position marked. */
  paintMirror() {
    const text = this.input.value;
    const at = this.errorAt;
    if (at === null) {
      this.mirror.replaceChildren(text);
      return;
    }
    // The mark covers the character at the position (a space past the end of a line).
    const ch = at < text.length && text[at] !== '\n' ? String.fromCodePoint(text.codePointAt(at) || 32) : ' ';
    const end = at + (at < text.length && text[at] !== '\n' ? ch.length : 0);
    this.mirror.replaceChildren(text.slice(0, at), h('mark', { class: 'tq-err-mark' }, ch), text.slice(end));
    this.mirror.scrollTop = this.input.scrollTop;
  }

  /**
   * Shows a server error about the query: at its line and column when the message has them.
   * @param {string} message
   */
  showError(message) {
    const text = this.input.value;
    const pos = errorPosition(message);
    this.errorBox.hidden = false;
    this.input.setAttribute('aria-invalid', 'true');
    if (!pos) {
      this.errorAt = null;
      this.errorBox.replaceChildren(h('div', { class: 'tq-error-msg' }, message));
      this.paintMirror();
      return;
    }
    this.errorAt = offsetOf(text, pos.line, pos.col);
    const line = text.split('\n')[pos.line - 1] ?? '';
    this.errorBox.dataset.line = String(pos.line);
    this.errorBox.dataset.col = String(pos.col);
    this.errorBox.replaceChildren(
      h('pre', { class: 'tq-caret' }, `${line}\n${' '.repeat(Math.max(0, pos.col - 1))}^`),
      h('div', { class: 'tq-error-msg' },
        h('strong', {}, `Line ${pos.line}, column ${pos.col}: `), pos.detail));
    this.paintMirror();
    this.input.focus();
    this.input.setSelectionRange(this.errorAt, this.errorAt);
  }

  clearError() {
    if (this.errorBox.hidden && this.errorAt === null) return;
    this.errorAt = null;
    this.errorBox.hidden = true;
    this.errorBox.replaceChildren();
    delete this.errorBox.dataset.line;
    delete this.errorBox.dataset.col;
    this.input.removeAttribute('aria-invalid');
    this.paintMirror();
  }
}

/**
 * The items that fit what is typed: those starting with it first, then those containing it
 * (case-insensitive), at most 50.
 * @param {Item[]} items
 * @param {string} prefix
 */
function rank(items, prefix) {
  const p = prefix.toLowerCase();
  if (!p) return items.slice(0, MAX_ITEMS);
  const key = (/** @type {Item} */ i) => i.label.toLowerCase();
  const starts = items.filter(i => key(i).startsWith(p) || key(i).replace(/^[a-z]*\./, '').startsWith(p));
  const contains = items.filter(i => !starts.includes(i) && key(i).includes(p));
  return [...starts, ...contains].slice(0, MAX_ITEMS);
}
