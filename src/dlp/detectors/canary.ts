import v8 from 'node:v8';
import type { DlpEntity } from '../entities.js';
import type { DetectContext, Detector, Match } from '../detector.js';

/**
 * Operator canaries: regular expressions from the policy (`dlp.canaries`), written as a bare pattern
 * (`CANARY-[0-9a-f]{16}`) or as `/pattern/flags` with flags from `imsu`.
 *
 * Canaries are operator input run against attacker-controlled bodies, so their cost is bounded:
 *  - a pattern V8's linear-time engine accepts (the `l` flag, enabled at load through
 *    `--enable-experimental-regexp-engine`) runs there: time linear in the text, whatever the pattern;
 *  - otherwise (that engine rejects the i and u flags, counted repetition above ~16, backreferences,
 *    lookaround) patterns with nested quantifiers or backreferences are refused at load, and the rest
 *    run on the backtracking engine over windows of CANARY_WINDOW characters (overlapping by
 *    CANARY_MAX_MATCH, the longest match a canary can report across a window edge), with the scan's
 *    time budget checked between windows.
 */
export const CANARY_WINDOW = 4096;
export const CANARY_MAX_MATCH = 256;

let linear: boolean | undefined;

function linearEngineAvailable(): boolean {
  if (linear !== undefined) return linear;
  try {
    new RegExp('a', 'l');
    linear = true;
  } catch {
    try {
      v8.setFlagsFromString('--enable-experimental-regexp-engine');
      new RegExp('a', 'l');
      linear = true;
    } catch {
      linear = false;
    }
  }
  return linear;
}

/** A compiled canary; `linear` says whether the linear-time engine runs it. */
export interface CompiledCanary {
  re: RegExp;
  linear: boolean;
  /** A literal every match starts with (3+ chars, case-sensitive patterns only): texts without it are skipped. */
  prefix: string;
}

/**
 * The literal a pattern starts with, up to the first metacharacter (`CANARY-[0-9a-f]{16}` → `CANARY-`).
 * Most canaries are literal-prefixed tokens, so an indexOf gate keeps their cost off ordinary traffic
 * (the linear engine is correct but several times slower than a literal search).
 */
function literalPrefix(source: string, flags: string): string {
  if (flags.includes('i')) return '';
  let out = '';
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if ('\\^$.|?*+()[]{}'.includes(c)) {
      // A quantifier applies to the previous literal character, which is then optional or repeated.
      if ('?*{'.includes(c) && out.length > 0) out = out.slice(0, -1);
      break;
    }
    out += c;
  }
  return out.length >= 3 ? out : '';
}

function engineMessage(err: unknown): string {
  // V8 quotes the pattern in its message; canary patterns can be secrets themselves, so keep only the cause.
  const msg = err instanceof Error ? err.message : String(err);
  const i = msg.lastIndexOf(': ');
  return i === -1 ? msg : msg.slice(i + 2);
}

/** Star height > 1 (a quantified group containing a quantifier) and backreferences can backtrack exponentially. */
function unsafeForBacktracking(source: string): boolean {
  if (/\\[1-9]|\\k</.test(source)) return true;
  const stack: boolean[] = [];
  let quantified = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '[') {
      while (i < source.length && source[i] !== ']') i += source[i] === '\\' ? 2 : 1;
      continue;
    }
    if (c === '(') {
      stack.push(quantified);
      quantified = false;
    } else if (c === ')') {
      const inner: boolean = quantified;
      quantified = stack.pop() ?? false;
      const q = source[i + 1];
      if (inner && (q === '*' || q === '+' || q === '{' || q === '?')) return true;
      quantified = quantified || inner;
    } else if (c === '*' || c === '+' || c === '{') {
      quantified = true;
    }
  }
  return false;
}

/** Compiles `dlp.canaries`; throws an Error naming the canary's position (never its text) on a bad one. */
export function compileCanaries(patterns: readonly string[]): CompiledCanary[] {
  return patterns.map((raw, index) => {
    const label = `dlp.canaries[${index}]`;
    let source = raw;
    let flags = '';
    const slashed = /^\/(.+)\/([a-z]*)$/s.exec(raw);
    if (slashed) {
      source = slashed[1];
      flags = slashed[2];
      if (!/^[imsu]*$/.test(flags) || new Set(flags).size !== flags.length) {
        throw new Error(`${label}: unsupported regular expression flags (use any of i, m, s, u)`);
      }
    }
    if (source.length === 0) throw new Error(`${label}: empty pattern`);
    let plain: RegExp;
    try {
      plain = new RegExp(source, `${flags}g`);
    } catch (err) {
      throw new Error(`${label}: invalid regular expression: ${engineMessage(err)}`);
    }
    if (plain.test('')) throw new Error(`${label}: pattern matches the empty string`);
    plain.lastIndex = 0;
    if (linearEngineAvailable()) {
      try {
        return { re: new RegExp(source, `${flags}gl`), linear: true, prefix: literalPrefix(source, flags) };
      } catch {
        // The linear engine lacks some features (the i and u flags, large counted repetition): fall back.
      }
    }
    if (unsafeForBacktracking(source)) {
      throw new Error(`${label}: nested quantifiers and backreferences are not allowed in canaries (catastrophic backtracking)`);
    }
    return { re: plain, linear: false, prefix: literalPrefix(source, flags) };
  });
}

/** Runs every canary over the text; `overBudget` is polled between windows of the fallback engine. */
export function canaryDetector(canaries: readonly CompiledCanary[], overBudget: () => boolean): Detector {
  return {
    name: 'canary',
    entities: ['CANARY'],
    find(text: string, _ctx: DetectContext, _enabled: ReadonlySet<DlpEntity>, out: Match[]): void {
      for (const c of canaries) {
        if (c.prefix !== '' && !text.includes(c.prefix)) continue;
        if (c.linear) collect(c.re, text, 0, text.length, out);
        else {
          for (let w = 0; w < text.length; w += CANARY_WINDOW - CANARY_MAX_MATCH) {
            if (overBudget()) return;
            collect(c.re, text, w, Math.min(text.length, w + CANARY_WINDOW), out);
            if (w + CANARY_WINDOW >= text.length) break;
          }
        }
      }
    },
  };
}

function collect(re: RegExp, text: string, from: number, to: number, out: Match[]): void {
  const slice = from === 0 && to === text.length ? text : text.slice(from, to);
  re.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(slice)) !== null) {
    if (m[0].length === 0) {
      re.lastIndex++;
      continue;
    }
    out.push({ start: from + m.index, end: from + m.index + m[0].length, entity: 'CANARY' });
  }
}
