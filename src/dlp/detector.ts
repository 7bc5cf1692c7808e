import type { DlpEntity } from './entities.js';

/** One finding in a text: the half-open span [start, end) and what it is. Never carries the value. */
export interface Match {
  start: number;
  end: number;
  entity: DlpEntity;
}

/** Where a text came from: `key` is the JSON property name or form field name, when there is one. */
export interface DetectContext {
  readonly key: string | undefined;
}

/**
 * A detector finds one family of entities in a text. Implementations must run in time linear in
 * `text.length` (hand-written scans or regexes with bounded, non-nested repetition) because bodies are
 * attacker-controlled. `entities` is what it can emit; the scanner drops matches for disabled entities.
 */
export interface Detector {
  readonly name: string;
  readonly entities: readonly DlpEntity[];
  find(text: string, ctx: DetectContext, enabled: ReadonlySet<DlpEntity>, out: Match[]): void;
}

const WORD = /[A-Za-z0-9_]/;

/** True when the character at `i` is a letter, digit or underscore (out of range counts as not). */
export function isWordChar(text: string, i: number): boolean {
  if (i < 0 || i >= text.length) return false;
  const c = text.charCodeAt(i);
  if (c < 128) return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
  return WORD.test(text[i]);
}

/**
 * True when `re` matches the property name or the `window` characters before `start`. Used for
 * entities that are only findings in context (ABA routing numbers, bare SSNs, AWS secrets).
 */
export function hasContext(text: string, start: number, ctx: DetectContext, re: RegExp, window = 48): boolean {
  if (ctx.key !== undefined && re.test(ctx.key)) return true;
  return re.test(text.slice(Math.max(0, start - window), start));
}
