/**
 * Name globs for tool (and later prompt/resource) rules: `*` matches any run of characters, every
 * other character itself. Matched without regular expressions, in O(name × pattern) at worst with
 * the classic two-pointer walk (names are at most MAX_NAME_LENGTH), so no pattern can backtrack badly.
 */
export interface NameGlob {
  readonly source: string;
  /** True when the pattern has no `*`: metrics may use the name itself as a label. */
  readonly exact: boolean;
  matches(name: string): boolean;
}

export function compileGlob(source: string): NameGlob {
  if (!source.includes('*')) return { source, exact: true, matches: (name) => name === source };
  return { source, exact: false, matches: (name) => globMatch(source, name) };
}

function globMatch(p: string, s: string): boolean {
  let pi = 0;
  let si = 0;
  let star = -1;
  let mark = 0;
  while (si < s.length) {
    if (pi < p.length && p[pi] !== '*' && p[pi] === s[si]) {
      pi++;
      si++;
    } else if (pi < p.length && p[pi] === '*') {
      star = pi++;
      mark = si;
    } else if (star >= 0) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.length && p[pi] === '*') pi++;
  return pi === p.length;
}
