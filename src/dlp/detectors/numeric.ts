import { abaValid, cardIssuerPlausible, luhnValid, nhsValid, sinValid, ssnValid } from '../checksums.js';
import type { DlpEntity } from '../entities.js';
import { hasContext, isWordChar, type DetectContext, type Detector, type Match } from '../detector.js';

/**
 * Cards, SSNs, ABA routing numbers, phones and IPv4 addresses share one hand-written tokenizer: a
 * token is a run of digit groups joined by single separators (space, `-`, `.`), optionally led by `+`
 * and with parenthesised groups. Each token is read once (linear), then classified as a whole or, when
 * numbers sit side by side separated by spaces, in windows of at most six groups.
 */

const ABA_CONTEXT = /rout|\baba\b|aba[_ -]?(?:no|num)|\brtn\b|transit/i;
const SSN_CONTEXT = /ssn|social[_ -]?sec|soc[_ -]?sec|taxpayer|\bitin\b/i;
/** Words before a dotted quad that make it a version or an object identifier, not an address. */
const VERSION_CONTEXT = /(?:\bv|version|\bver|release|build|firmware|\bsdk|\boid|urn:oid:|\bos)[\s:=#"'/]*$/i;
const NHS_CONTEXT = /\bnhs|health[_ -]?(?:service|care)?[_ -]?(?:no|num)|patient[_ -]?(?:id|no|num)/i;
const SIN_CONTEXT = /\bsin\b|social[_ -]?insurance|\bnas\b|assurance[_ -]?sociale/i;
const PHONE_CONTEXT = /phone|\btel|mobile|\bcell|\bfax\b|\bsms\b|whatsapp|\bcall\b|contact/i;

const MAX_WINDOW_GROUPS = 6;
const MAX_WINDOW_CHARS = 32;

interface Token {
  start: number;
  end: number;
  plus: boolean;
  groups: string[];
  /** Start offset of each group (including a leading parenthesis). */
  starts: number[];
  ends: number[];
  parens: boolean[];
  /** seps[k] separates groups k and k+1: ' ', '-', '.', or ')' variants normalised to their char. */
  seps: string[];
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** A separator or closing parenthesis followed by more of the token. */
function continues(text: string, e: number): boolean {
  const c = text.charCodeAt(e);
  if (c === 41 /* ) */) return true;
  return (c === 32 || c === 45 || c === 46) && (isDigit(text.charCodeAt(e + 1)) || text.charCodeAt(e + 1) === 40);
}

/** `+` or `(` right before the first digit. */
function isPrefix(text: string, i: number): boolean {
  const c = text.charCodeAt(i);
  return c === 43 || c === 40;
}

/** Characters that join an identifier across a dash or dot (`ORD-2024-1234`, `v1.2.3`). */
function glued(text: string, i: number): boolean {
  const c = text.charCodeAt(i);
  return (c === 45 || c === 46 || c === 95) && isWordChar(text, i - 1);
}

function readToken(text: string, digitAt: number): Token {
  let start = digitAt;
  let plus = false;
  const token: Token = { start, end: start, plus, groups: [], starts: [], ends: [], parens: [], seps: [] };
  if (text[digitAt - 1] === '(') start = digitAt - 1;
  else if (text[digitAt - 1] === '+') {
    start = digitAt - 1;
    plus = true;
  }
  token.start = start;
  token.plus = plus;
  let i = digitAt;
  let groupStart = start;
  let paren = start < digitAt && text[start] === '(';
  for (;;) {
    const gStart = i;
    while (i < text.length && isDigit(text.charCodeAt(i))) i++;
    token.groups.push(text.slice(gStart, i));
    token.starts.push(groupStart);
    if (paren) {
      if (text[i] === ')') i++;
      else paren = false; // unbalanced: treat as plain group
    }
    token.parens.push(paren);
    token.ends.push(i);
    // Separator: one of ' ', '-', '.', and after ')' an optional space.
    let j = i;
    let sep = '';
    const c = text[j];
    if (c === ' ' || c === '-' || c === '.') {
      sep = c;
      j++;
    } else if (token.parens[token.parens.length - 1] && text[i - 1] === ')') {
      sep = ' '; // "(415)555-0132"
    }
    if (sep === '' && !(text[i - 1] === ')')) break;
    let nextParen = false;
    if (text[j] === '(' && isDigit(text.charCodeAt(j + 1))) {
      nextParen = true;
      groupStart = j;
      j++;
    } else groupStart = j;
    if (!isDigit(text.charCodeAt(j))) break;
    token.seps.push(sep === '' ? ' ' : sep);
    paren = nextParen;
    i = j;
  }
  token.end = token.ends[token.ends.length - 1];
  return token;
}

function sameSeps(seps: string[], from: number, to: number, allowed: string): string | undefined {
  if (to <= from) return '';
  const first = seps[from];
  if (!allowed.includes(first)) return undefined;
  for (let k = from + 1; k < to; k++) if (seps[k] !== first) return undefined;
  return first;
}

function classify(t: Token, i: number, j: number, text: string, ctx: DetectContext): DlpEntity | undefined {
  const n = j - i + 1;
  const groups = t.groups.slice(i, j + 1);
  const digits = groups.join('');
  const len = digits.length;
  const plus = t.plus && i === 0;
  const anyParen = t.parens.slice(i, j + 1).some(Boolean);
  const seps = t.seps.slice(i, j);
  const start = t.starts[i];

  // IPv4: four dotted octets, no leading zeros; 0.x and 255.x are masks and wildcards, not hosts. The
  // four groups must be the whole token (`1.3.6.1.4.1.311` is an OID), and a version or OID named just
  // before (`version 10.2.0.1`, `oid 2.5.4.3`) is not an address.
  if (n === 4 && !plus && !anyParen && seps.every((s) => s === '.')) {
    const ok = groups.every((g) => g.length <= 3 && (g.length === 1 || g[0] !== '0') && Number(g) <= 255);
    if (!ok) {
      if (!groups.every((g) => g.length === 4)) return undefined; // 4111.1111.1111.1111 may still be a card
    } else {
      const whole = i === 0 && j === t.groups.length - 1;
      if (whole && groups[0] !== '0' && groups[0] !== '255' && !hasContext(text, start, ctx, VERSION_CONTEXT, 24)) return 'IP_ADDRESS';
      return undefined;
    }
  }

  if (!plus && !anyParen) {
    const sep = sameSeps(t.seps, i, j, ' -.');
    if (sep !== undefined && len >= 13 && len <= 19) {
      // Grouped as printed (4-4-4-4, 4-6-5) or with one separator lost (`4111⁠1111 1111 1111` after a
      // zero-width character is removed): groups of 1-8 digits led by at least four.
      const shapeOk = n === 1 || (groups[0].length >= 4 && groups.every((g) => g.length >= 1 && g.length <= 8) && (sep !== '.' || groups.every((g) => g.length === 4) || (n === 3 && groups[1].length === 6 && groups[2].length === 5)));
      if (shapeOk && luhnValid(digits) && cardIssuerPlausible(digits)) return 'CREDIT_CARD';
    }
    if (n === 3 && sep !== undefined && sep !== '' && groups[0].length === 3 && groups[1].length === 2 && groups[2].length === 4) {
      return ssnValid(digits) ? 'US_SSN' : undefined;
    }
    // UK NHS number (3-3-4 or ten digits), named by its context: printed, it is also a NANP phone shape.
    if (len === 10 && (n === 1 || (n === 3 && sep !== undefined && sep !== '' && groups[0].length === 3 && groups[1].length === 3))) {
      // Named as an NHS number, a wrong check digit is a typo or a test value, not a phone number.
      if (hasContext(text, start, ctx, NHS_CONTEXT)) return nhsValid(digits) ? 'UK_NHS' : undefined;
    }
    // Canadian SIN, printed 3-3-3 (Luhn), or nine digits next to its name.
    if (n === 3 && sep !== undefined && sep !== '' && sep !== '.' && len === 9 && groups.every((g) => g.length === 3)) {
      return sinValid(digits) ? 'CA_SIN' : undefined;
    }
    if (n === 1 && len === 9) {
      if (abaValid(digits) && hasContext(text, start, ctx, ABA_CONTEXT)) return 'ABA_ROUTING';
      if (ssnValid(digits) && hasContext(text, start, ctx, SSN_CONTEXT)) return 'US_SSN';
      if (sinValid(digits) && hasContext(text, start, ctx, SIN_CONTEXT)) return 'CA_SIN';
      return undefined;
    }
  }
  return phone(groups, seps, plus, t.parens.slice(i, j + 1), len, n === 1 && !plus ? () => hasContext(text, start, ctx, PHONE_CONTEXT) : undefined);
}

function phone(groups: string[], seps: string[], plus: boolean, parens: boolean[], len: number, bareContext: (() => boolean) | undefined): DlpEntity | undefined {
  // Dots only in the dotted national styles (415.555.0132, 01.23.45.67.89); otherwise they are decimals.
  const dotted = seps.includes('.');
  if (plus) {
    if (dotted && !seps.every((s) => s === '.')) return undefined;
    return len >= 8 && len <= 15 && groups[0][0] !== '0' ? 'PHONE' : undefined;
  }
  // International prefix written as 00 (0044 20 7946 0958).
  if (groups[0].startsWith('00') && groups.length >= 3 && !dotted) {
    const rest = len - 2;
    return rest >= 8 && rest <= 15 && groups[0][2] !== '0' ? 'PHONE' : undefined;
  }
  // NANP: [1] NXX NXX XXXX, area code possibly in parentheses.
  let g = groups;
  let p = parens;
  if (g.length === 4 && g[0] === '1' && !p[0]) {
    g = g.slice(1);
    p = p.slice(1);
  }
  if (g.length === 3 && g[0].length === 3 && g[1].length === 3 && g[2].length === 4 && !p[1] && !p[2]) {
    const nanp = g[0][0] >= '2' && g[1][0] >= '2';
    if (nanp && (!dotted || seps.every((s) => s === '.'))) return 'PHONE';
    return undefined;
  }
  // National numbers with a trunk 0: 020 7946 0958, 07700 900123, 030 12345678, 01 23 45 67 89.
  if (groups.length >= 2 && groups[0][0] === '0' && groups[0][1] !== '0' && groups[0].length >= 2 && groups[0].length <= 5) {
    if (dotted && !(seps.every((s) => s === '.') && groups.length === 5 && groups.every((x) => x.length === 2))) return undefined;
    if (len >= 10 && len <= 11 && groups.every((x) => x.length >= 2)) return 'PHONE';
    return undefined;
  }
  // A bare run of digits is a phone only when the field or the words before say so.
  if (groups.length === 1 && bareContext) {
    const d = groups[0];
    const nanp10 = d.length === 10 && d[0] >= '2' && d[3] >= '2';
    const nanp11 = d.length === 11 && d[0] === '1' && d[1] >= '2' && d[4] >= '2';
    const trunk = (d.length === 10 || d.length === 11) && d[0] === '0' && d[1] !== '0';
    if ((nanp10 || nanp11 || trunk) && bareContext()) return 'PHONE';
  }
  return undefined;
}

const DIGIT = /[0-9]/g;

export const numericDetector: Detector = {
  name: 'numeric',
  entities: ['CREDIT_CARD', 'US_SSN', 'ABA_ROUTING', 'PHONE', 'IP_ADDRESS', 'UK_NHS', 'CA_SIN'],
  find(text: string, ctx: DetectContext, enabled: ReadonlySet<DlpEntity>, out: Match[]): void {
    const n = text.length;
    let i = 0;
    while (i < n) {
      // test() with a global regex jumps to the next digit natively without allocating a match array.
      DIGIT.lastIndex = i;
      if (!DIGIT.test(text)) return;
      i = DIGIT.lastIndex - 1;
      // Fast path for the common case, a short lone number ("order 42", "3 items"): no token object.
      let e = i;
      while (e < n && isDigit(text.charCodeAt(e))) e++;
      if (e - i < 7 && !continues(text, e) && !isPrefix(text, i - 1)) {
        i = e;
        continue;
      }
      const t = readToken(text, i);
      i = Math.max(t.end, i + 1);
      // Part of a word or identifier on either side: not a standalone number.
      const before = t.start - 1;
      if (isWordChar(text, before) || glued(text, before) || isWordChar(text, t.end) || (glued(text, t.end) && isWordChar(text, t.end + 1))) continue;
      if (t.groups.length === 1 && t.groups[0].length < 7) continue; // short lone numbers: nothing to classify
      scanWindows(t, text, ctx, enabled, out);
    }
  },
};

function scanWindows(t: Token, text: string, ctx: DetectContext, enabled: ReadonlySet<DlpEntity>, out: Match[]): void {
  const g = t.groups.length;
  let i = 0;
  while (i < g) {
    let matched = false;
    if (i === 0 || t.seps[i - 1] === ' ') {
      for (let j = Math.min(g - 1, i + MAX_WINDOW_GROUPS - 1); j >= i; j--) {
        if (j < g - 1 && t.seps[j] !== ' ') continue;
        if (t.ends[j] - t.starts[i] > MAX_WINDOW_CHARS) continue;
        if (j - i !== 3 && digitCount(t, i, j) < 7) continue; // cheap reject: nothing shorter than an IPv4 or 7 digits
        if ((i > 0 || j < g - 1) && !unambiguousWindow(t, i, j)) continue;
        const entity = classify(t, i, j, text, ctx);
        if (entity !== undefined && enabled.has(entity)) {
          out.push({ start: i === 0 ? t.start : t.starts[i], end: t.ends[j], entity });
          i = j + 1;
          matched = true;
          break;
        }
      }
    }
    if (!matched) i++;
  }
}

function digitCount(t: Token, i: number, j: number): number {
  let n = 0;
  for (let k = i; k <= j; k++) n += t.groups[k].length;
  return n;
}

/**
 * A window cut out of a longer space-joined run (`card 4251 0090 8152 5925`) could be read in many
 * ways; it is classified only when its own separators are not spaces (`415-555-0132`, `(415) 555-0132`)
 * or it is a single group, so the pieces of one number are never re-read as another.
 */
function unambiguousWindow(t: Token, i: number, j: number): boolean {
  for (let k = i; k < j; k++) if (t.seps[k] === ' ' && !t.parens[k]) return false;
  return true;
}
