import type { CompiledPolicy, DomainPolicy } from '../config/types.js';
import { normalizeHost, normalizePath } from './normalize.js';

export type DomainChoice =
  | { domain: DomainPolicy; why: string }
  | { domain: undefined; why: string };

function hostMatches(patterns: readonly string[], host: string): boolean {
  if (patterns.length === 0) return true;
  for (const p of patterns) {
    if (p === host) return true;
    // `*.agents.svc` matches any single-or-deeper subdomain, never the bare suffix itself.
    if (p.startsWith('*.') && host.endsWith(p.slice(1))) return true;
  }
  return false;
}

function pathMatches(prefixes: readonly string[], path: string): boolean {
  if (prefixes.length === 0) return true;
  for (const p of prefixes) {
    if (path === p || (path.startsWith(p) && (p.endsWith('/') || path[p.length] === '/' || path[p.length] === '?'))) return true;
  }
  return false;
}

/**
 * The operator's per-route `context_extensions.domain` wins; else the first domain whose `match` fits
 * host and path. A client header never picks the domain. A named but unknown domain is not matched by
 * host instead: the operator said which policy applies, and it is missing.
 *
 * Host and path are matched in their normalised form (`normalize.ts`), so spellings the callee reads
 * as the same resource cannot slip from a narrow domain into a broader one; a request target that
 * has no single normalised form matches no domain (`no_policy`).
 *
 * `candidates` (`context_extensions.domains`, comma-separated) is set for a workload that serves several
 * domains: only those are matched, so a caller that sends another workload's host or path cannot steer
 * the request into a domain this workload does not serve. A candidate the policy lacks matches nothing.
 */
export function selectDomain(
  policy: CompiledPolicy,
  host: string,
  path: string,
  contextDomain: string | undefined,
  candidates?: string,
): DomainChoice {
  if (contextDomain !== undefined && contextDomain !== '') {
    const d = policy.domainsByName.get(contextDomain);
    return d
      ? { domain: d, why: `context_extensions.domain = "${contextDomain}"` }
      : { domain: undefined, why: `context_extensions.domain "${contextDomain}" is not defined in the policy` };
  }
  const allowed = candidates === undefined || candidates === '' ? undefined : new Set(candidates.split(',').map((c) => c.trim()));
  const h = normalizeHost(host);
  if (!h.ok) return { domain: undefined, why: `no context_extensions.domain and the host cannot be normalised: ${h.why}` };
  const p = normalizePath(path);
  if (!p.ok) return { domain: undefined, why: `no context_extensions.domain and the path cannot be normalised: ${p.why}` };
  const nHost = h.value;
  const nPath = p.value;
  for (const d of policy.domains) {
    if (!d.match) continue;
    if (allowed !== undefined && !allowed.has(d.name)) continue;
    if (hostMatches(d.match.hosts, nHost) && pathMatches(d.match.pathPrefixes, nPath)) {
      return { domain: d, why: `match of domain "${d.name}" fits host "${nHost}" and path "${nPath}" (normalised)` };
    }
  }
  const among = allowed === undefined ? '' : ` among context_extensions.domains "${candidates ?? ''}"`;
  return { domain: undefined, why: `no context_extensions.domain and no domain match${among} fits host "${nHost}" and path "${nPath}" (normalised)` };
}
