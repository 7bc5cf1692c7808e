/**
 * Placeholders are templates and already-masked values, not data: `${VAR}`, `{{ token }}`, `<password>`,
 * runs of X/x/*, `[REDACTED:…]`, `<redacted>`. A candidate that is (or contains) one is not a finding,
 * which also keeps a second pass over already-redacted output from finding anything.
 */
const MARKUP = /\$\{|\{\{|\}\}|%\(|<[A-Za-z_ -]{1,40}>|\[REDACTED|REDACTED\]|\*{3}|•{3}|x{4}|X{4}|\.\.\./;

/** Words that only appear in secrets as fill-ins (`sk_live_your_key_here`, `ghp_PLACEHOLDER…`). */
const SECRET_WORDS = /redacted|placeholder|your[_-]?(?:api[_-]?|secret[_-]?|access[_-]?)?(?:key|token|secret|password)|insert[_-]?(?:key|token)|dummy|fake[_-]?(?:key|token)/i;

export function isPlaceholder(value: string): boolean {
  return MARKUP.test(value);
}

/** Stricter check for secret-shaped tokens, where template words never occur in a real key. */
export function isSecretPlaceholder(value: string): boolean {
  return MARKUP.test(value) || SECRET_WORDS.test(value) || lowDiversity(value);
}

/** Real keys are random; `sk_live_0000000000000000` or `AKIAAAAAAAAAAAAAAAAA` is a stand-in. */
function lowDiversity(value: string): boolean {
  const seen = new Set<string>();
  for (let i = 0; i < value.length && seen.size < 8; i++) seen.add(value[i]);
  return seen.size < 8;
}
