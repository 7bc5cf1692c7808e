/**
 * Decoded views of escaped text (percent-encoding, form encoding, backslash escapes) with an offset
 * map: `map[i]` is the offset in the raw text where decoded character i came from, and
 * `map[decoded.length]` is the raw length. A finding at decoded [s, e) is raw [map[s], map[e]), so
 * redaction edits exactly the escaped bytes and leaves the rest of the layer untouched.
 */
export interface DecodedView {
  decoded: string;
  map: Uint32Array;
}

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

const PERCENT = /%[0-9A-Fa-f]{2}/;

export function hasPercentEscapes(text: string): boolean {
  return text.includes('%') && PERCENT.test(text);
}

/** Percent-decoding (UTF-8), and with `plusAsSpace` the form encoding. Invalid sequences stay as they are. */
export function decodePercent(text: string, plusAsSpace: boolean): DecodedView {
  const parts: string[] = [];
  const map = new Uint32Array(text.length + 1);
  let n = 0;
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 37 /* % */ && i + 2 < text.length && hexVal(text.charCodeAt(i + 1)) >= 0 && hexVal(text.charCodeAt(i + 2)) >= 0) {
      // Collect the run of %XX bytes and decode it as UTF-8, mapping each code point to its first byte.
      const bytes: number[] = [];
      const at: number[] = [];
      while (i + 2 < text.length && text.charCodeAt(i) === 37 && hexVal(text.charCodeAt(i + 1)) >= 0 && hexVal(text.charCodeAt(i + 2)) >= 0) {
        bytes.push(hexVal(text.charCodeAt(i + 1)) * 16 + hexVal(text.charCodeAt(i + 2)));
        at.push(i);
        i += 3;
      }
      let b = 0;
      while (b < bytes.length) {
        const [cp, used] = utf8At(bytes, b);
        const s = String.fromCodePoint(cp);
        for (let k = 0; k < s.length; k++) map[n++] = at[b];
        parts.push(s);
        b += used;
      }
    } else {
      parts.push(plusAsSpace && c === 43 ? ' ' : text[i]);
      map[n++] = i;
      i++;
    }
  }
  map[n] = text.length;
  return { decoded: parts.join(''), map: map.subarray(0, n + 1) };
}

function utf8At(bytes: number[], i: number): [number, number] {
  const b0 = bytes[i];
  if (b0 < 0x80) return [b0, 1];
  const need = b0 >= 0xf0 && b0 < 0xf5 ? 3 : b0 >= 0xe0 ? 2 : b0 >= 0xc2 && b0 < 0xe0 ? 1 : -1;
  if (need < 0 || i + need >= bytes.length) return [0xfffd, 1];
  let cp = b0 & (need === 1 ? 0x1f : need === 2 ? 0x0f : 0x07);
  for (let k = 1; k <= need; k++) {
    const b = bytes[i + k];
    if ((b & 0xc0) !== 0x80) return [0xfffd, 1];
    cp = (cp << 6) | (b & 0x3f);
  }
  if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return [0xfffd, 1];
  return [cp, need + 1];
}

/** Percent-encodes a replacement for a URL layer (`[REDACTED:EMAIL]` → `%5BREDACTED%3AEMAIL%5D`). */
export function encodePercent(text: string, plusAsSpace: boolean): string {
  const enc = encodeURIComponent(text);
  return plusAsSpace ? enc.replace(/%20/g, '+') : enc;
}

const BACKSLASH = /\\(?:u[0-9A-Fa-f]{4}|x[0-9A-Fa-f]{2}|[nrtbf"\\/])/;

export function hasBackslashEscapes(text: string): boolean {
  return text.includes('\\') && BACKSLASH.test(text);
}

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = { n: '\n', r: '\r', t: '\t', b: '\b', f: '\f', '"': '"', '\\': '\\', '/': '/' };

/** JSON/JavaScript-style escapes that survive as text (a JSON document pasted into a log line). */
export function decodeBackslash(text: string): DecodedView {
  const parts: string[] = [];
  const map = new Uint32Array(text.length + 1);
  let n = 0;
  let i = 0;
  while (i < text.length) {
    if (text.charCodeAt(i) === 92 && i + 1 < text.length) {
      const next = text[i + 1];
      if (next === 'u' && i + 5 < text.length && /^[0-9A-Fa-f]{4}$/.test(text.slice(i + 2, i + 6))) {
        parts.push(String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16)));
        map[n++] = i;
        i += 6;
        continue;
      }
      // `\x41`: JavaScript, Python and C strings pasted into a body.
      if (next === 'x' && i + 3 < text.length && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 2, i + 4))) {
        parts.push(String.fromCharCode(parseInt(text.slice(i + 2, i + 4), 16)));
        map[n++] = i;
        i += 4;
        continue;
      }
      const simple = SIMPLE_ESCAPES[next];
      if (simple !== undefined) {
        parts.push(simple);
        map[n++] = i;
        i += 2;
        continue;
      }
    }
    parts.push(text[i]);
    map[n++] = i;
    i++;
  }
  map[n] = text.length;
  return { decoded: parts.join(''), map: map.subarray(0, n + 1) };
}

/** Escapes a replacement for a backslash-escaped layer. */
export function encodeBackslash(text: string): string {
  return JSON.stringify(text).slice(1, -1);
}

/**
 * Characters that change what a text looks like to a scanner without changing what a reader sees:
 * format characters (Unicode Cf: zero-width space and joiners, BOM, soft hyphen, bidi controls),
 * variation selectors and the combining grapheme joiner. Unicode spaces, line separators and dashes
 * read as ASCII space and hyphen; compatibility forms (fullwidth `４１１１`, mathematical digits,
 * circled numbers) fold with NFKC.
 */
const NEEDS_NORMALIZING = /[^\x00-\x7f]/;
const INVISIBLE = /^[\p{Cf}\u034f\ufe00-\ufe0f]$/u;
const SPACE = /^[\p{Zs}\u2028\u2029]$/u;
const DASH = /^[\p{Pd}\u2212\u2043\ufe63\uff0d]$/u;

export function needsNormalizing(text: string): boolean {
  return NEEDS_NORMALIZING.test(text);
}

/** Per-character fold cache: texts in one language repeat the same few hundred characters. */
const folded = new Map<string, string>();

function fold(ch: string): string {
  let f = folded.get(ch);
  if (f === undefined) {
    if (INVISIBLE.test(ch)) f = '';
    else if (SPACE.test(ch)) f = ' ';
    else if (DASH.test(ch)) f = '-';
    else {
      f = ch.normalize('NFKC');
      // NFKC can yield a space or dash of its own (U+2007 figure space → U+0020, U+FE58 → U+2014).
      if (f.length === 1 && DASH.test(f)) f = '-';
    }
    if (folded.size < 65536) folded.set(ch, f);
  }
  return f;
}

/**
 * The normalization view: format characters removed, Unicode spaces and dashes mapped to ASCII, NFKC
 * applied per character, with `map` pointing each view character back to the raw character it came
 * from. A finding spanning a removed character covers it in the raw text, so redaction replaces the
 * whole original span, invisible characters included.
 */
export function normalizeView(text: string): DecodedView {
  const parts: string[] = [];
  const map: number[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c < 128) {
      parts.push(text[i]);
      map.push(i);
      i++;
      continue;
    }
    const width = c >= 0xd800 && c <= 0xdbff && i + 1 < text.length ? 2 : 1;
    const f = fold(text.slice(i, i + width));
    parts.push(f);
    for (let k = 0; k < f.length; k++) map.push(i);
    i += width;
  }
  map.push(text.length);
  return { decoded: parts.join(''), map: Uint32Array.from(map) };
}

/** Named references agents and templating engines emit; numeric ones (`&#64;`, `&#x40;`) cover the rest. */
const NAMED_REFS: Readonly<Record<string, string>> = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0', commat: '@', period: '.', hyphen: '-',
  dash: '\u2010', ndash: '\u2013', mdash: '\u2014', colon: ':', sol: '/', bsol: '\\', lowbar: '_', plus: '+',
  equals: '=', num: '#', dollar: '$', percnt: '%', excl: '!', quest: '?', comma: ',', semi: ';', lpar: '(',
  rpar: ')', lsqb: '[', rsqb: ']', lcub: '{', rcub: '}', verbar: '|', ast: '*', tilde: '~', grave: '`',
  Hat: '^', NewLine: '\n', Tab: '\t', shy: '\u00ad', zwj: '\u200d', zwnj: '\u200c',
};

const HTML_REF = /&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});?/;

export function hasHtmlRefs(text: string): boolean {
  return text.includes('&') && HTML_REF.test(text);
}

/**
 * HTML character references (`&#64;`, `&#x40;`, `&commat;`), as templating engines and HTML-escaping
 * tools emit them; the terminating `;` is optional, as browsers accept. Unknown names stay as they are.
 */
export function decodeHtmlRefs(text: string): DecodedView {
  const parts: string[] = [];
  const map: number[] = [];
  const re = /&(?:#([0-9]{1,7})|#[xX]([0-9A-Fa-f]{1,6})|([A-Za-z][A-Za-z0-9]{1,31}));?/g;
  let at = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    let ch: string | undefined;
    if (m[1] !== undefined || m[2] !== undefined) {
      const cp = m[1] !== undefined ? Number(m[1]) : parseInt(m[2], 16);
      if (cp > 0 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff)) ch = String.fromCodePoint(cp);
    } else ch = NAMED_REFS[m[3]];
    if (ch === undefined) continue;
    for (let k = at; k < m.index; k++) {
      parts.push(text[k]);
      map.push(k);
    }
    parts.push(ch);
    for (let k = 0; k < ch.length; k++) map.push(m.index);
    at = m.index + m[0].length;
  }
  for (let k = at; k < text.length; k++) {
    parts.push(text[k]);
    map.push(k);
  }
  map.push(text.length);
  return { decoded: parts.join(''), map: Uint32Array.from(map) };
}
