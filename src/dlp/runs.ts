/**
 * Hand-written scans for runs of one character class. A regex such as `[A-Za-z0-9+/]{40}` has to be
 * tried at every position (V8's lookbehind only makes each try shorter); one pass over char codes with a
 * lookup table is several times faster on prose, where such runs are rare.
 */
export type CharClass = Uint8Array;

export function charClass(chars: string): CharClass {
  const t = new Uint8Array(128);
  const add = (from: string, to: string) => {
    for (let c = from.charCodeAt(0); c <= to.charCodeAt(0); c++) t[c] = 1;
  };
  add('A', 'Z');
  add('a', 'z');
  add('0', '9');
  for (const c of chars) t[c.charCodeAt(0)] = 1;
  return t;
}

/** Letters, digits and `+/_-`: both base64 alphabets. */
export const BASE64_CHARS = charClass('+/_-');
/** Letters, digits, `_` and `-`: the alphabet of vendor API keys and base64url. */
export const TOKEN_CHARS = charClass('_-');
/** Letters, digits, `+` and `/`: standard base64 without padding (AWS secret keys). */
export const B64STD_CHARS = charClass('+/');

function inClass(cls: CharClass, c: number): boolean {
  return c < 128 && cls[c] === 1;
}

/** Maximal runs of `cls` with length in [min, max], as [start, end) pairs. */
export function findRuns(text: string, cls: CharClass, min: number, max = Number.MAX_SAFE_INTEGER): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    if (!inClass(cls, text.charCodeAt(i))) {
      i++;
      continue;
    }
    const s = i;
    while (i < n && inClass(cls, text.charCodeAt(i))) i++;
    const len = i - s;
    if (len >= min && len <= max) out.push([s, i]);
  }
  return out;
}

/** True when some maximal run of `cls` is at least `min` long. */
export function hasRun(text: string, cls: CharClass, min: number): boolean {
  let run = 0;
  for (let i = 0; i < text.length; i++) {
    if (inClass(cls, text.charCodeAt(i))) {
      if (++run >= min) return true;
    } else run = 0;
  }
  return false;
}

let memoText: string | undefined;
let memoRuns: Array<[number, number]> = [];

/**
 * Maximal runs of base64 characters (both alphabets) of 20 or more, computed once per text and shared
 * by the secret detectors and the base64 layer (single-entry memo: strings are immutable, and the
 * detectors for one text run back to back).
 */
export function longRuns(text: string): Array<[number, number]> {
  if (memoText !== text) {
    memoRuns = findRuns(text, BASE64_CHARS, 20);
    memoText = text;
  }
  return memoRuns;
}

/** Sub-runs of `cls` with length in [min, max] inside the long base64 runs of `text`. */
export function runsWithin(text: string, cls: CharClass, min: number, max: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const [s, e] of longRuns(text)) {
    if (e - s < min) continue;
    let i = s;
    while (i < e) {
      if (!inClass(cls, text.charCodeAt(i))) {
        i++;
        continue;
      }
      const rs = i;
      while (i < e && inClass(cls, text.charCodeAt(i))) i++;
      if (i - rs >= min && i - rs <= max) out.push([rs, i]);
    }
  }
  return out;
}
