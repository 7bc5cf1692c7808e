import { applyEdits, totalCounts, type Edit } from '../edits.js';
import { detect, scanText } from './text.js';
import type { ScanState } from './state.js';

/**
 * The JSON layer. Walks a JSON document lexically (no object tree is built), so that redaction
 * splices re-serialised string literals into the original text: whitespace, key order, number
 * spelling and every untouched byte stay exactly as they were. Each string value is scanned with its
 * property name as context (`"routing_number": "…"`); property names are scanned too (maps keyed by
 * email are common). Integer literals long enough to be a card, SSN or phone are scanned as well; a
 * finding there becomes the string `"[REDACTED:…]"`, the one place a value's JSON type changes.
 * Returns undefined when the text is not JSON at the token level (anything outside strings other than
 * numbers, literals, punctuation and whitespace, unbalanced brackets, an unterminated string): the
 * caller then scans it as text. Grammar errors that leave every token valid (a missing comma) are
 * tolerated — every string and number is still seen.
 */
export function scanJsonText(state: ScanState, text: string, depth: number, outerKey: string | undefined): Edit[] | undefined {
  const edits: Edit[] = [];
  const keys: (string | undefined)[] = [];
  let key = outerKey;
  let i = 0;
  const n = text.length;
  let nextBackslash = text.indexOf('\\');
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 34 /* " */) {
      const end = stringEnd(text, i);
      if (end === -1) return undefined;
      if (nextBackslash !== -1 && nextBackslash < i) nextBackslash = text.indexOf('\\', i);
      let value: string;
      if (nextBackslash !== -1 && nextBackslash < end) {
        try {
          value = JSON.parse(text.slice(i, end + 1)) as string;
        } catch {
          return undefined;
        }
      } else value = text.slice(i + 1, end);
      let p = end + 1;
      while (p < n && text.charCodeAt(p) <= 32) p++;
      const isKey = text.charCodeAt(p) === 58; /* : */
      const inner = scanText(state, value, { key: isKey ? undefined : key }, depth);
      if (inner.length > 0) {
        edits.push({ start: i, end: end + 1, text: JSON.stringify(applyEdits(value, inner)), counts: totalCounts(inner) });
      }
      if (isKey) key = value;
      i = end + 1;
    } else if (c === 45 /* - */ || (c >= 48 && c <= 57)) {
      let j = i + 1;
      while (j < n && isNumberChar(text.charCodeAt(j))) j++;
      if (j - i >= 9) {
        const literal = text.slice(i, j);
        if (/^[0-9]+$/.test(literal)) {
          const found = detect(state, literal, { key });
          const whole = found.find((e) => e.start === 0 && e.end === literal.length);
          if (whole) edits.push({ start: i, end: j, text: JSON.stringify(whole.text), counts: whole.counts });
        }
      }
      i = j;
    } else if (c === 123 /* { */) {
      keys.push(key);
      key = undefined;
      i++;
    } else if (c === 91 /* [ */) {
      keys.push(key);
      i++;
    } else if (c === 125 /* } */ || c === 93 /* ] */) {
      if (keys.length === 0) return undefined;
      key = keys.pop();
      i++;
    } else if (c === 44 || c === 58 || c === 32 || c === 10 || c === 13 || c === 9) {
      i++; // , : and JSON whitespace
    } else if (text.startsWith('true', i)) i += 4;
    else if (text.startsWith('null', i)) i += 4;
    else if (text.startsWith('false', i)) i += 5;
    else return undefined; // anything else outside a string: this is prose that happens to start with { or [
  }
  return keys.length === 0 ? edits : undefined;
}

/** Index of the closing quote of the string literal opening at `open`, or -1 when unterminated. */
function stringEnd(text: string, open: number): number {
  let j = open + 1;
  for (;;) {
    const q = text.indexOf('"', j);
    if (q === -1) return -1;
    let bs = 0;
    for (let k = q - 1; k > open && text.charCodeAt(k) === 92; k--) bs++;
    if (bs % 2 === 0) return q;
    j = q + 1;
  }
}

function isNumberChar(c: number): boolean {
  return (c >= 48 && c <= 57) || c === 46 || c === 101 || c === 69 || c === 43 || c === 45;
}
