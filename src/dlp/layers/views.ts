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

const BACKSLASH = /\\(?:u[0-9A-Fa-f]{4}|[nrtbf"\\/])/;

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
