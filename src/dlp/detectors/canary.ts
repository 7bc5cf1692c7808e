import type { DlpEntity } from '../entities.js';
import type { DetectContext, Detector, Match } from '../detector.js';
import { compileLinearRegex, LinearRegexError, splitPattern, type LinearRegex } from '../linear-regex.js';

/**
 * Operator canaries: regular expressions from the policy (`dlp.canaries`), written as a bare pattern
 * (`CANARY-[0-9a-f]{16}`) or as `/pattern/flags` with flags from `imsu`.
 *
 * Canaries are operator input run against attacker-controlled bodies. They run on RE2 semantics
 * (`linear-regex.ts`): time linear in the text whatever the pattern, so `(x|xx)*y` with `i` cannot
 * stall a worker. Patterns RE2 cannot run (backreferences, lookaround) are refused at load. Matching
 * runs over windows of CANARY_WINDOW characters (overlapping by CANARY_MAX_MATCH, the longest match a
 * canary can report across a window edge) and the scan's time budget is polled between windows, so
 * the budget can stop a scan in the middle of a long text.
 */
export const CANARY_WINDOW = 4096;
export const CANARY_MAX_MATCH = 256;

/** A compiled canary. */
export interface CompiledCanary {
  re: LinearRegex;
  /** A literal every match starts with (3+ chars, case-sensitive patterns only): texts without it are skipped. */
  prefix: string;
}

/**
 * The literal a pattern starts with, up to the first metacharacter (`CANARY-[0-9a-f]{16}` → `CANARY-`).
 * Most canaries are literal-prefixed tokens, so an indexOf gate keeps their cost off ordinary traffic
 * (re2js is linear but far slower than a literal search).
 */
function literalPrefix(source: string, flags: string): string {
  // With `i`, or an alternation anywhere (`ab|cd`), not every match starts with the same literal.
  if (flags.includes('i') || source.includes('|')) return '';
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

/** Compiles `dlp.canaries`; throws an Error naming the canary's position (never its text) on a bad one. */
export function compileCanaries(patterns: readonly string[]): CompiledCanary[] {
  return patterns.map((raw, index) => {
    const label = `dlp.canaries[${index}]`;
    const { source, flags } = splitPattern(raw);
    let re: LinearRegex;
    try {
      re = compileLinearRegex(source, flags);
    } catch (err) {
      if (err instanceof LinearRegexError) throw new Error(`${label}: ${err.message}`);
      throw err;
    }
    if (re.matchesWhole('')) throw new Error(`${label}: pattern matches the empty string`);
    return { re, prefix: literalPrefix(source, flags) };
  });
}

/** Runs every canary over the text; `overBudget` is polled between windows. */
export function canaryDetector(canaries: readonly CompiledCanary[], overBudget: () => boolean): Detector {
  return {
    name: 'canary',
    entities: ['CANARY'],
    find(text: string, _ctx: DetectContext, _enabled: ReadonlySet<DlpEntity>, out: Match[]): void {
      for (const c of canaries) {
        if (c.prefix !== '' && !text.includes(c.prefix)) continue;
        for (let w = 0; w < text.length; w += CANARY_WINDOW - CANARY_MAX_MATCH) {
          if (overBudget()) return;
          const to = Math.min(text.length, w + CANARY_WINDOW);
          // A window's edges look like the text's edges to `^`, `$` and `\b`: a match touching an inner
          // edge is dropped, and the neighbouring window (overlapping by CANARY_MAX_MATCH) sees it whole.
          c.re.forEach(text, w, to, (start, end) => {
            if ((start === w && w > 0) || (end === to && to < text.length)) return;
            out.push({ start, end, entity: 'CANARY' });
          });
          if (to >= text.length) break;
        }
      }
    },
  };
}
