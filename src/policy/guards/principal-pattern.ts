/**
 * SPIFFE principal patterns as zones name them: `spiffe://cluster.local/ns/agents/sa/*`. A `*` matches
 * any run of characters within one path segment (never a `/`), so `ns/agents/*` cannot be stretched to
 * cover `ns/agents-evil/...` or deeper paths; everything else matches literally.
 */
export function compilePrincipalPattern(pattern: string): (principal: string) => boolean {
  if (!pattern.includes('*')) return (p) => p === pattern;
  const source = pattern
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('[^/]*');
  const re = new RegExp(`^${source}$`);
  return (p) => re.test(p);
}

export function compilePrincipalPatterns(patterns: readonly string[]): (principal: string) => boolean {
  const fns = patterns.map(compilePrincipalPattern);
  return (p) => fns.some((f) => f(p));
}
