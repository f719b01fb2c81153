// TraceQL text helpers of the search page, without DOM so they are unit-tested under Node:
// quoting, the query the search form builds, the position of a server error, and what the
// autocomplete should offer at the cursor (a tolerant scan of the text before it).

/** Attribute scopes, as typed before an attribute name. */
export const SCOPES = ['span.', 'resource.', '.', 'event.', 'link.', 'instrumentation.'];

/** Intrinsics offered when the server cannot list them. */
export const INTRINSICS = [
  'name', 'status', 'kind', 'duration', 'statusMessage', 'rootName', 'rootServiceName', 'traceDuration',
];

/** Keyword values of the intrinsics that take them. */
export const KEYWORDS = /** @type {Record<string, string[]>} */ ({
  status: ['error', 'ok', 'unset'],
  'span:status': ['error', 'ok', 'unset'],
  kind: ['server', 'client', 'producer', 'consumer', 'internal', 'unspecified'],
  'span:kind': ['server', 'client', 'producer', 'consumer', 'internal', 'unspecified'],
});

/** Comparison operators offered after a tag; the first four take listed values. */
export const OPERATORS = ['=', '!=', '=~', '!~', '>', '>=', '<', '<='];
const VALUE_OPS = ['=', '!=', '=~', '!~'];

/** A TraceQL string literal. @param {string} s */
export function stringLiteral(s) {
  return `"${s.replace(/[\\"]/g, '\\$&').replace(/\n/g, '\\n').replace(/\t/g, '\\t')}"`;
}

/** Characters that end an unquoted attribute name (as the server's lexer has them). */
const NOT_ATTR = /[\s{}()=~!<>&|^,"]/;

/** An attribute name as TraceQL writes it after its scope: quoted when it has to be. @param {string} name */
export function attrName(name) {
  return name && !NOT_ATTR.test(name) ? name : stringLiteral(name);
}

/**
 * Splits logfmt `key=value key2="a b"` into pairs (with whether the value was quoted); an
 * error message when malformed (the pairs before it are kept).
 * @param {string} text
 * @returns {{pairs: [string, string, boolean][], error: string | null}}
 */
export function parseTags(text) {
  /** @type {[string, string, boolean][]} */
  const pairs = [];
  const re = /\s*([^\s="]+)=("((?:[^"\\]|\\.)*)"|[^\s"]*)/y;
  let pos = 0;
  const s = text.trim();
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) {
      const rest = s.slice(pos).trim().split(/\s+/)[0];
      return { pairs, error: `"${rest}" is not key=value (quote values with spaces: name="GET /x")` };
    }
    const quoted = m[3] !== undefined;
    const value = quoted ? m[3].replace(/\\(.)/g, '$1') : m[2];
    if (!value) return { pairs, error: `tag "${m[1]}" has no value` };
    pairs.push([m[1], value, quoted]);
    pos = re.lastIndex;
    while (pos < s.length && /\s/.test(s[pos])) pos++;
  }
  return { pairs, error: null };
}

/** logfmt of one pair. @param {string} k @param {string} v */
export function logfmt(k, v) {
  return /[\s"=]/.test(v) || v === '' ? `${k}="${v.replace(/["\\]/g, '\\$&')}"` : `${k}=${v}`;
}

/** A value of the tags field as a TraceQL literal: numbers and booleans typed unless quoted. @param {string} v @param {boolean} quoted */
function tagLiteral(v, quoted) {
  if (!quoted && (/^-?\d{1,18}$/.test(v) || /^-?\d+\.\d+$/.test(v) || v === 'true' || v === 'false')) return v;
  return stringLiteral(v);
}

/** A duration of the form as a TraceQL duration literal (`.5s` needs its leading zero). @param {string} text */
function durationLiteral(text) {
  return text.trim().replace(/(^|[a-zµμ])\./g, '$10.');
}

/**
 * The search form's fields.
 * @typedef {{service?: string, operation?: string, tags?: string, minDuration?: string,
 *   maxDuration?: string, durationOf?: string, status?: string}} FormFields
 */

/**
 * The TraceQL the search form stands for: one spanset filter whose conditions must all hold
 * on one span (as Tempo's tag search). Invalid durations and malformed tags are left out;
 * the form reports them when submitted.
 * @param {FormFields} f
 * @param {(text: string) => number | null} isDuration
 */
export function buildQuery(f, isDuration) {
  const conds = [];
  const service = (f.service || '').trim();
  if (service) conds.push(`resource.service.name = ${stringLiteral(service)}`);
  if (f.operation) conds.push(`name = ${stringLiteral(f.operation)}`);
  if (f.status) conds.push(`status = ${f.status}`);
  for (const [k, v, quoted] of parseTags(f.tags || '').pairs) {
    if (k === 'error' && v === 'true' && !quoted) conds.push('status = error');
    else conds.push(`.${attrName(k)} = ${tagLiteral(v, quoted)}`);
  }
  const field = f.durationOf === 'span' ? 'duration' : 'traceDuration';
  const min = (f.minDuration || '').trim(), max = (f.maxDuration || '').trim();
  if (min && isDuration(min) !== null) conds.push(`${field} >= ${durationLiteral(min)}`);
  if (max && isDuration(max) !== null) conds.push(`${field} <= ${durationLiteral(max)}`);
  return conds.length ? `{ ${conds.join(' && ')} }` : '{}';
}

/** True for a query that matches every span (`{}`, `{ true }`, nothing). @param {string} q */
export function matchesAll(q) {
  return /^\s*(\{\s*(true\s*)?\})?\s*$/.test(q);
}

/**
 * Where a server error points: `… at line N, col M: message`, columns counting characters.
 * @param {string} message
 * @returns {{line: number, col: number, detail: string} | null}
 */
export function errorPosition(message) {
  const m = /\bat line (\d+), col (\d+): ([\s\S]*)$/.exec(message);
  if (!m) return null;
  return { line: Number(m[1]), col: Number(m[2]), detail: m[3] };
}

/**
 * The string index of 1-based `line` and `col` (characters, i.e. code points), clamped to
 * the text.
 * @param {string} text @param {number} line @param {number} col
 */
export function offsetOf(text, line, col) {
  let i = 0;
  for (let l = 1; l < line; l++) {
    const nl = text.indexOf('\n', i);
    if (nl < 0) return text.length;
    i = nl + 1;
  }
  for (let c = 1; c < col && i < text.length && text[i] !== '\n'; c++) {
    i += (text.codePointAt(i) || 0) > 0xffff ? 2 : 1;
  }
  return i;
}

/**
 * A token of the tolerant scan.
 * @typedef {{type: 'str' | 'attr' | 'scoped' | 'word' | 'num' | 'op' | 'punct' | 'other',
 *   text: string, start: number, end: number, open?: boolean, scope?: string, name?: string,
 *   value?: string}} Tok
 */

const OPS = ['!>>', '!<<', '&>>', '&<<', '&&', '||', '=~', '!~', '!=', '>=', '<=', '>>', '<<', '&>', '&<', '&~', '!>', '!<',
  '=', '>', '<', '!', '|', '~', '+', '-', '*', '/', '%', '^'];
const ATTR_SCOPES = ['span', 'resource', 'event', 'link', 'instrumentation'];

/**
 * Scans TraceQL text into tokens, never failing: an unterminated string or quoted attribute
 * name is a token with `open`. Comments are skipped.
 * @param {string} s
 * @returns {Tok[]}
 */
export function scan(s) {
  /** @type {Tok[]} */
  const out = [];
  let i = 0;
  /** Reads a quoted part starting at `i` (on the quote); returns [end, content, closed]. @param {number} i @param {string} q */
  const quoted = (i, q) => {
    let j = i + 1, v = '';
    while (j < s.length) {
      const c = s[j];
      if (c === q) return /** @type {[number, string, boolean]} */ ([j + 1, v, true]);
      if (c === '\\' && q === '"' && j + 1 < s.length) {
        const e = s[j + 1];
        v += e === 'n' ? '\n' : e === 't' ? '\t' : e;
        j += 2;
        continue;
      }
      v += c;
      j++;
    }
    return /** @type {[number, string, boolean]} */ ([j, v, false]);
  };
  /** An attribute name from `i`: unquoted runs and quoted parts. @param {number} i */
  const name = i => {
    let j = i, v = '', open = false;
    while (j < s.length) {
      if (s[j] === '"') {
        const [e, part, closed] = quoted(j, '"');
        v += part;
        j = e;
        if (!closed) { open = true; break; }
      } else if (!NOT_ATTR.test(s[j])) {
        v += s[j++];
      } else break;
    }
    return { end: j, value: v, open };
  };
  while (i < s.length) {
    const c = s[i];
    if (/\s/.test(c)) { i++; continue; }
    if (c === '/' && s[i + 1] === '/') {
      const nl = s.indexOf('\n', i);
      i = nl < 0 ? s.length : nl;
      continue;
    }
    if (c === '/' && s[i + 1] === '*') {
      const e = s.indexOf('*/', i + 2);
      i = e < 0 ? s.length : e + 2;
      continue;
    }
    const start = i;
    if (c === '"' || c === '`') {
      const [e, v, closed] = quoted(i, c);
      out.push({ type: 'str', text: s.slice(start, e), start, end: e, open: !closed, value: v });
      i = e;
    } else if ('{}(),'.includes(c)) {
      out.push({ type: 'punct', text: c, start, end: i + 1 });
      i++;
    } else if (c === '.') {
      const n = name(i + 1);
      out.push({ type: 'attr', text: s.slice(start, n.end), start, end: n.end, scope: '', name: n.value, open: n.open });
      i = n.end;
    } else if (/[0-9]/.test(c)) {
      let j = i;
      while (j < s.length && /[\w.µμ]/.test(s[j])) j++;
      out.push({ type: 'num', text: s.slice(start, j), start, end: j });
      i = j;
    } else if (/[A-Za-z_]/.test(c)) {
      let j = i;
      while (j < s.length && /\w/.test(s[j])) j++;
      const word = s.slice(i, j);
      if (s[j] === '.' && ATTR_SCOPES.includes(word)) {
        const n = name(j + 1);
        out.push({ type: 'attr', text: s.slice(start, n.end), start, end: n.end, scope: word, name: n.value, open: n.open });
        i = n.end;
      } else if (s[j] === ':') {
        let k = j + 1;
        while (k < s.length && /\w/.test(s[k])) k++;
        out.push({ type: 'scoped', text: s.slice(start, k), start, end: k, scope: word, name: s.slice(j + 1, k) });
        i = k;
      } else {
        out.push({ type: 'word', text: word, start, end: j });
        i = j;
      }
    } else {
      const op = OPS.find(o => s.startsWith(o, i));
      if (op) {
        out.push({ type: 'op', text: op, start, end: i + op.length });
        i += op.length;
      } else {
        out.push({ type: 'other', text: c, start, end: i + 1 });
        i++;
      }
    }
  }
  return out;
}

/** Words that name an intrinsic (a tag before an operator). */
const INTRINSIC_WORDS = new Set([...INTRINSICS, 'nestedSetLeft', 'nestedSetRight', 'nestedSetParent']);

/** The tag a token names, as the tag APIs take it (`resource.service.name`, `name`); null if none. @param {Tok | undefined} t */
export function tagOf(t) {
  if (!t) return null;
  if (t.type === 'attr' && !t.open && t.name) return `${t.scope ? `${t.scope}.` : '.'}${attrName(t.name)}`;
  if (t.type === 'scoped') return t.text;
  if (t.type === 'word' && INTRINSIC_WORDS.has(t.text)) return t.text;
  return null;
}

/**
 * What to complete at the cursor:
 * - `start`: a new condition (scopes and intrinsics), after `{`, `&&`, `||`, `(` or `!`;
 * - `attribute`: a name of `scope` (`''` for `.x`);
 * - `operator`: after a tag;
 * - `value`: after `tag op` (`quoted` when a string is open).
 * `from`–`to` is the text a suggestion replaces; `prefix` what is typed of it so far.
 * @typedef {{kind: 'start' | 'attribute' | 'operator' | 'value', from: number, to: number,
 *   prefix: string, scope?: string, tag?: string, op?: string, quoted?: boolean}} Completion
 */

/**
 * @param {string} text
 * @param {number} cursor
 * @returns {Completion | null}
 */
export function completionAt(text, cursor) {
  const before = text.slice(0, cursor);
  const toks = scan(before);
  let depth = 0;
  for (const t of toks) {
    if (t.text === '{' && t.type === 'punct') depth++;
    else if (t.text === '}' && t.type === 'punct') depth = Math.max(0, depth - 1);
  }
  const last = toks[toks.length - 1];
  const atLast = last && last.end === cursor;
  // The rest of the token under the cursor, so that a suggestion replaces it whole.
  const restOf = (/** @type {(c: string) => boolean} */ ok) => {
    let j = cursor;
    while (j < text.length && ok(text[j])) j++;
    return j;
  };
  if (depth === 0) return null;

  if (atLast && last.type === 'str') {
    if (!last.open) return null;
    const [tag, op] = [toks[toks.length - 3], toks[toks.length - 2]];
    const name = tagOf(tag);
    if (!name || !op || op.type !== 'op' || !VALUE_OPS.includes(op.text)) return null;
    // Up to the closing quote, when the cursor is inside an existing string.
    let to = cursor;
    for (let j = cursor; j < text.length && text[j] !== '\n'; j++) {
      if (text[j] === '\\') { j++; continue; }
      if (text[j] === last.text[0]) { to = j + 1; break; }
    }
    return { kind: 'value', from: last.start, to, prefix: last.value || '', tag: name, op: op.text, quoted: true };
  }
  if (atLast && last.type === 'attr') {
    const scope = last.scope || '';
    const to = last.open ? cursor : restOf(c => !NOT_ATTR.test(c));
    return { kind: 'attribute', from: last.start, to, prefix: last.name || '', scope };
  }
  // An unquoted value being typed after `tag op`: everything since the operator, which may
  // hold characters that scan as operators (`mythical-req`).
  for (let i = toks.length - 1; i >= 1 && toks[i].start >= cursor - 200; i--) {
    const t = toks[i];
    if (t.type === 'op' && VALUE_OPS.includes(t.text)) {
      const tag = tagOf(toks[i - 1]);
      const typedValue = before.slice(t.end);
      const m = /^(\s*)([^\s"`&|{}()!=~<>,]*)$/.exec(typedValue);
      if (!tag || !m) break;
      const start = t.end + m[1].length;
      return { kind: 'value', from: start, to: restOf(c => !/[\s"`&|{}()!=~<>,]/.test(c)), prefix: m[2], tag, op: t.text, quoted: false };
    }
    if (t.type === 'str' || t.type === 'punct' || t.type === 'attr' || (t.type === 'op' && ['&&', '||'].includes(t.text))) break;
  }
  const prev = atLast && (last.type === 'word' || last.type === 'scoped') ? toks[toks.length - 2] : last;
  const typed = atLast && (last.type === 'word' || last.type === 'scoped') ? last : null;
  const from = typed ? typed.start : cursor;
  const to = typed ? restOf(c => /[\w:]/.test(c)) : cursor;
  const prefix = typed ? typed.text : '';
  if (atLast && !typed && last.type !== 'punct' && last.type !== 'op') return null;
  if (!prev || (prev.type === 'punct' && (prev.text === '{' || prev.text === '(')) || (prev.type === 'op' && ['&&', '||', '!'].includes(prev.text))) {
    return { kind: 'start', from, to, prefix };
  }
  if (prev.type === 'op' && VALUE_OPS.includes(prev.text)) {
    const name = tagOf(toks[toks.indexOf(prev) - 1]);
    if (name) return { kind: 'value', from, to, prefix, tag: name, op: prev.text, quoted: false };
    return null;
  }
  if (!typed && !atLast && tagOf(prev)) {
    return { kind: 'operator', from, to, prefix: '', tag: /** @type {string} */ (tagOf(prev)) };
  }
  return null;
}

/** Literal tokens that complete a condition. */
const LITERAL_WORDS = new Set(['true', 'false', 'nil', 'error', 'ok', 'unset', 'server', 'client', 'producer', 'consumer', 'internal', 'unspecified']);

/**
 * The other complete conditions of the spanset filter around `cursor`, as a query that
 * narrows value suggestions (`{ resource.service.name = "x" }`), or `{}`: conditions joined
 * by `&&` at the top of the filter, each `tag op literal`, leaving out the one at the cursor.
 * @param {string} text
 * @param {number} cursor
 */
export function narrowingQuery(text, cursor) {
  const toks = scan(text);
  // The innermost filter around the cursor: its `{` and `}` token indexes.
  let open = -1;
  /** @type {number[]} */
  const stack = [];
  for (let i = 0; i < toks.length; i++) {
    const t = toks[i];
    if (t.start >= cursor) break;
    if (t.type === 'punct' && t.text === '{') stack.push(i);
    else if (t.type === 'punct' && t.text === '}') stack.pop();
  }
  if (!stack.length) return '{}';
  open = stack[stack.length - 1];
  let close = toks.length;
  for (let i = open + 1, d = 0; i < toks.length; i++) {
    const t = toks[i];
    if (t.type === 'punct' && t.text === '{') d++;
    else if (t.type === 'punct' && t.text === '}') {
      if (d === 0) { close = i; break; }
      d--;
    }
  }
  /** @type {Tok[][]} */
  const parts = [[]];
  let paren = 0;
  for (let i = open + 1; i < close; i++) {
    const t = toks[i];
    if (t.type === 'punct' && t.text === '(') paren++;
    if (t.type === 'punct' && t.text === ')') paren--;
    if (paren === 0 && t.type === 'op' && t.text === '||') return '{}';
    if (paren === 0 && t.type === 'op' && t.text === '&&') parts.push([]);
    else parts[parts.length - 1].push(t);
  }
  const keep = parts.filter(p => {
    if (p.length !== 3) return false;
    const [tag, op, lit] = p;
    if (lit.end >= cursor && tag.start <= cursor) return false;
    if (!tagOf(tag) || op.type !== 'op' || !OPERATORS.includes(op.text)) return false;
    return (lit.type === 'str' && !lit.open) || lit.type === 'num' || (lit.type === 'word' && LITERAL_WORDS.has(lit.text));
  }).map(p => text.slice(p[0].start, p[2].end));
  return keep.length ? `{ ${keep.join(' && ')} }` : '{}';
}

/** Escapes regular expression syntax, for a value inserted after `=~`. @param {string} s */
export function regexEscape(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The text a value suggestion inserts.
 * @param {{type: string, value: string}} v
 * @param {string} op
 */
export function valueLiteral(v, op) {
  if (v.type === 'string' || v.type === '') return stringLiteral(op === '=~' || op === '!~' ? regexEscape(v.value) : v.value);
  return v.value;
}
