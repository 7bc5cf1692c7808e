import { RE2JS } from 're2js';

/**
 * Regular expressions from configuration (DLP canaries, argument patterns) run against
 * attacker-controlled text, so they run on RE2 semantics (the pure-JS port `re2js`): matching time is
 * linear in the input whatever the pattern, so `(x|xx)*y` cannot stall the event loop. RE2 has no
 * backreferences or lookaround; a pattern using them is refused at load with a reason, never run on a
 * backtracking engine instead.
 *
 * Accepted forms: a bare pattern, or `/pattern/flags` with flags from `imsu` (`u` is accepted for
 * compatibility: RE2 always matches by code point).
 */
export class LinearRegexError extends Error {
  readonly code = 'invalid_pattern';
}

export interface LinearRegex {
  /** Calls `found(start, end)` for each non-overlapping, non-empty match in text[from, to), in order. */
  forEach(text: string, from: number, to: number, found: (start: number, end: number) => void): void;
  /** True when the pattern matches somewhere in `text`. */
  test(text: string): boolean;
  /** True when the whole of `text` matches (argument constraints). */
  matchesWhole(text: string): boolean;
}

/** Splits `/pattern/flags` into its parts; a bare pattern has no flags. */
export function splitPattern(raw: string): { source: string; flags: string } {
  const slashed = /^\/(.+)\/([a-z]*)$/s.exec(raw);
  return slashed ? { source: slashed[1], flags: slashed[2] } : { source: raw, flags: '' };
}

/**
 * Compiles a pattern for linear-time matching. Throws LinearRegexError with a message that never
 * quotes the pattern (canaries can be secrets themselves).
 */
export function compileLinearRegex(source: string, flags = ''): LinearRegex {
  if (!/^[imsu]*$/.test(flags) || new Set(flags).size !== flags.length) {
    throw new LinearRegexError('unsupported regular expression flags (use any of i, m, s, u)');
  }
  if (source.length === 0) throw new LinearRegexError('empty pattern');
  let bits = 0;
  if (flags.includes('i')) bits |= RE2JS.CASE_INSENSITIVE;
  if (flags.includes('m')) bits |= RE2JS.MULTILINE;
  if (flags.includes('s')) bits |= RE2JS.DOTALL;
  let re: RE2JS;
  try {
    re = RE2JS.compile(source, bits);
  } catch (err) {
    throw new LinearRegexError(`invalid regular expression for the linear-time engine: ${engineMessage(err)}`);
  }
  return {
    forEach(text, from, to, found) {
      const input = from === 0 && to === text.length ? text : text.slice(from, to);
      const m = re.matcher(input);
      let at = 0;
      while (at <= input.length && m.find(at)) {
        const s = m.start();
        const e = m.end();
        if (e > s) found(from + s, from + e);
        at = e > s ? e : e + 1;
      }
    },
    test(text) {
      return re.matcher(text).find();
    },
    matchesWhole(text) {
      return re.matcher(text).matches();
    },
  };
}

function engineMessage(err: unknown): string {
  // RE2's messages quote the offending fragment after ": `"; keep only the cause.
  const msg = err instanceof Error ? err.message : String(err);
  const cut = msg.indexOf(': `');
  return (cut === -1 ? msg : msg.slice(0, cut)).replace(/^error parsing regexp: /, '');
}
