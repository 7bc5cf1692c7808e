import { randomUUID } from 'node:crypto';
import { auditTarget } from '../../audit/target.js';
import type { CompiledPolicy, DomainPolicy } from '../../config/types.js';
import type { Pseudonymizer } from '../../masking/pseudonym.js';
import { BINDING_METADATA_FIELD, bindingHost, verifyBinding } from '../../policy/binding.js';

/**
 * Who is calling which domain, as Check decided it. Read from the `envoy.filters.http.ext_authz`
 * dynamic metadata when Envoy forwards it (`metadata_options.forwarding_namespaces`), else from the
 * request headers Check set (`x-mesh-domain`, `x-agent-*`, `x-mesh-decision-id`). Either source counts
 * only with Check's MAC (`policy/binding.ts`; metadata field `binding`, header `x-mesh-binding`) for
 * this very request: its route (`:authority`, `:path`, method) and source principal. A client that
 * reaches ext_proc without Check in front, or replays what Check set for another request, cannot name
 * a domain.
 */
export interface Flow {
  policy: CompiledPolicy;
  domain: DomainPolicy;
  agent: string | null;
  role: string | null;
  decisionId: string;
  traceId: string | null;
  /** Audit target (host + path, the path a keyed hash in masking domains). */
  target: string | null;
  /** `hop: egress` in the metadata: the route leaves the mesh (OUTPUT_ONLY domains audit it). */
  egress: boolean;
}

/**
 * One source for every caller field: the metadata when it names a domain, else the headers. Mixing
 * them could pair one decision's domain with another value a client managed to send.
 */
function callerSource(authz: Readonly<Record<string, string>>, headers: ReadonlyMap<string, string> | undefined): (meta: string, header: string) => string | undefined {
  if (authz['domain']) return (meta) => authz[meta] || undefined;
  return (_meta, header) => headers?.get(header) || undefined;
}

/** W3C `traceparent` (trace id is its second field), else B3. */
function traceIdOf(headers: ReadonlyMap<string, string> | undefined): string | null {
  const tp = headers?.get('traceparent');
  const m = tp ? /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}/.exec(tp.trim()) : null;
  if (m) return m[1]!;
  const b3 = headers?.get('x-b3-traceid') ?? headers?.get('b3')?.split('-')[0];
  return b3 && /^[0-9a-f]{16,32}$/.test(b3) ? b3 : null;
}

/**
 * The flow of one stream, or `undefined` when no domain is named or the name is not in the policy
 * (the caller answers 403 `no_policy`). `requestHeaders` is undefined when Envoy skipped them.
 */
export function resolveFlow(
  policy: CompiledPolicy,
  pseudonyms: Pseudonymizer,
  authz: Readonly<Record<string, string>>,
  requestHeaders: ReadonlyMap<string, string> | undefined,
  attributePrincipal?: string,
): Flow | undefined {
  // Without the request headers the route is unknown, so no binding can be checked: refused. (The
  // filter must send request headers; docs/ext-proc.md.)
  if (!requestHeaders) return undefined;
  const pick = callerSource(authz, requestHeaders);
  const name = pick('domain', 'x-mesh-domain');
  const domain = name === undefined ? undefined : policy.domainsByName.get(name);
  if (!domain) return undefined;
  const agent = pick('agent_pseudonym', 'x-agent-pseudonym') ?? pick('agent_id', 'x-agent-id');
  const fromMetadata = Boolean(authz['domain']);
  // Envoy's own attribute wins. Otherwise, on the metadata path, the principal Check saw (metadata
  // comes from Envoy, not the client); on the header path nothing: a MAC Check made for a caller with
  // a principal then fails, rather than trusting a principal the client could name.
  const principal = attributePrincipal ?? (fromMetadata ? authz['source_principal'] ?? '' : '');
  const bound = {
    decisionId: pick('decision_id', 'x-mesh-decision-id') ?? '',
    domain: domain.name,
    role: pick('role', 'x-agent-role') ?? '',
    agent: agent ?? '',
    host: bindingHost(requestHeaders.get(':authority') ?? requestHeaders.get('host') ?? ''),
    path: requestHeaders.get(':path') ?? '',
    method: requestHeaders.get(':method') ?? '',
    principal,
  };
  const mac = fromMetadata ? authz[BINDING_METADATA_FIELD] : requestHeaders.get('x-mesh-binding');
  if (!verifyBinding(pseudonyms.bindingKey(), mac, bound, Date.now())) return undefined;
  const host = (requestHeaders?.get(':authority') ?? requestHeaders?.get('host'))?.replace(/:\d+$/, '');
  return {
    policy,
    domain,
    agent: agent ?? null,
    role: pick('role', 'x-agent-role') ?? null,
    decisionId: pick('decision_id', 'x-mesh-decision-id') ?? randomUUID(),
    traceId: traceIdOf(requestHeaders),
    target: auditTarget(host, requestHeaders?.get(':path'), domain.metadataMasking ? { key: pseudonyms.keyFor(domain.name) } : undefined),
    egress: authz['hop']?.trim().toLowerCase() === 'egress',
  };
}
