import { randomUUID } from 'node:crypto';
import type { CompiledPolicy, DomainPolicy } from '../config/types.js';
import { MeshError } from '../errors.js';
import type { VerifiedCredential } from '../identity/verifier.js';
import type { Pseudonymizer } from '../masking/pseudonym.js';
import { isProtectedHeaderName, MESH_HEADER_PREFIXES } from '../masking/topology-headers.js';
import type { AllowDecision, Decision, DecisionStep, DenyDecision } from './decision.js';
import type { ReasonCode } from './reasons.js';
import type { RequestAttributes } from './request.js';
import { selectDomain } from './select-domain.js';
import { isEgressHop } from '../audit/level.js';
import { BINDING_METADATA_FIELD, bindDecision, bindingHost } from './binding.js';

export interface CredentialSource {
  verify(token: string): Promise<VerifiedCredential>;
}

/**
 * A guard's answer: a reason code to deny, or undefined to pass. A promise only where the guard must
 * ask another process first (a cluster worker's shared-identity guard, on a pair it has not reported);
 * the common answer is synchronous, so the cached Check path does not wait a turn for it.
 */
export type GuardResult = ReasonCode | undefined | Promise<ReasonCode | undefined>;

/** Extra checks that later phases plug in (trust zones, revocation, shared identities). */
export interface DecisionGuard {
  readonly phase: DecisionStep['phase'];
  check(input: { request: RequestAttributes; domain: DomainPolicy; credential: VerifiedCredential; now: number }): GuardResult;
}

export interface DecideDeps {
  policy: CompiledPolicy;
  /**
   * The policy in force now. Read again once the credential is verified (which can wait seconds on
   * an issuer JWKS fetch): roles, zones or a domain removed by a reload meanwhile must not allow.
   */
  currentPolicy?: () => CompiledPolicy;
  credentials: CredentialSource;
  pseudonyms: Pseudonymizer;
  guards?: readonly DecisionGuard[];
  now?: () => number;
  /** Collect every step (for Explain); off on the hot path. */
  explain?: boolean;
}

/** Longest bearer token accepted before any parsing; real JWTs are a few hundred bytes. */
const MAX_TOKEN_LENGTH = 16 * 1024;
const BEARER = /^bearer[ \t]+([^\s,]+)[ \t]*$/i;

class Steps {
  readonly list: DecisionStep[] = [];
  constructor(private readonly on: boolean) {}
  add(phase: DecisionStep['phase'], outcome: DecisionStep['outcome'], detail: () => string): void {
    if (this.on) this.list.push({ phase, outcome, detail: detail() });
  }
}

function deny(
  reason: ReasonCode,
  steps: Steps,
  id: string,
  domain: DomainPolicy | undefined,
  extra: Partial<Pick<DenyDecision, 'agentId' | 'agent' | 'role'>> = {},
): DenyDecision {
  return {
    kind: 'deny',
    reason,
    decisionId: id,
    domain: domain?.name,
    tier: domain?.tier,
    auditLevel: domain?.auditLevel,
    masking: domain?.metadataMasking ?? false,
    agentId: extra.agentId,
    agent: extra.agent,
    role: extra.role,
    steps: steps.list,
  };
}

/**
 * The pipeline, in the order it reads: classify (domain) → identify (credential) → bind (SPIFFE) →
 * authorize (role) → attest → guards (zones, revocation) → mask and respond. The first failure
 * denies with its reason code.
 */
export async function decide(req: RequestAttributes, deps: DecideDeps): Promise<Decision> {
  const steps = new Steps(deps.explain ?? false);
  const id = randomUUID();
  const now = deps.now?.() ?? Date.now();

  // classify
  let policy = deps.policy;
  const choice = selectDomain(policy, req.host, req.path, req.contextExtensions.domain, req.contextExtensions.domains);
  if (!choice.domain) {
    steps.add('classify', 'fail', () => choice.why);
    return deny('no_policy', steps, id, undefined);
  }
  let domain = choice.domain;
  steps.add('classify', 'pass', () => `${choice.why}; tier ${domain.tier}`);

  // identify
  const auth = req.headers.get('authorization');
  const m = auth ? BEARER.exec(auth) : null;
  if (!m) {
    steps.add('identify', 'fail', () => (auth ? 'authorization header is not a single Bearer credential' : 'no authorization header'));
    return deny('missing_credential', steps, id, domain);
  }
  const token = m[1]!;
  let cred: VerifiedCredential;
  try {
    if (token.length > MAX_TOKEN_LENGTH) throw new MeshError('invalid_credential', 'bearer token too long');
    cred = await deps.credentials.verify(token);
  } catch (e) {
    const code: ReasonCode = e instanceof MeshError ? e.code : 'invalid_credential';
    steps.add('identify', 'fail', () => `credential rejected: ${e instanceof Error ? e.message : 'unknown error'}`);
    return deny(code, steps, id, domain);
  }
  // The verification may have waited on the issuer's JWKS while a reload swapped the policy: decide
  // on the policy current now, classifying again, so no allow mixes an old policy with new state.
  const latest = deps.currentPolicy?.();
  if (latest !== undefined && latest !== policy) {
    policy = latest;
    const again = selectDomain(policy, req.host, req.path, req.contextExtensions.domain);
    if (!again.domain) {
      steps.add('classify', 'fail', () => `policy reloaded during verification: ${again.why}`);
      return deny('no_policy', steps, id, undefined);
    }
    domain = again.domain;
    steps.add('classify', 'pass', () => `policy reloaded during verification; ${again.why}; tier ${domain.tier}`);
  }
  const skew = policy.identity.clockSkewMs;
  if (cred.issuedAtMs > now + skew) {
    steps.add('identify', 'fail', () => 'credential issued in the future');
    return deny('invalid_credential', steps, id, domain);
  }
  if (now - cred.issuedAtMs > domain.maxTokenAgeMs + skew) {
    steps.add('identify', 'fail', () => `credential issued ${Math.round((now - cred.issuedAtMs) / 1000)} s ago; domain allows ${domain.maxTokenAgeMs / 1000} s`);
    return deny('credential_too_old', steps, id, domain, { agentId: cred.agentId });
  }
  steps.add('identify', 'pass', () => `signature, issuer, audience and lifetime valid for agent "${cred.agentId}"`);

  const agent = domain.metadataMasking ? deps.pseudonyms.pseudonym(domain.name, cred.agentId) : cred.agentId;
  const who = { agentId: cred.agentId, agent, role: cred.role };

  // bind: a credential that names its workload is only good from that workload
  if (cred.spiffeId !== undefined) {
    if (cred.spiffeId !== req.sourcePrincipal) {
      steps.add('identify', 'fail', () => `credential bound to "${cred.spiffeId}" but presented by "${req.sourcePrincipal ?? '(no principal)'}"`);
      return deny('identity_mismatch', steps, id, domain, who);
    }
    steps.add('identify', 'pass', () => `SPIFFE binding matches source principal "${req.sourcePrincipal}"`);
  } else {
    steps.add('identify', 'skip', () => 'credential carries no SPIFFE claim; no workload binding checked');
  }

  // authorize
  if (cred.role === undefined || !domain.allowedRoles.has(cred.role)) {
    steps.add('authorize', 'fail', () => `role ${cred.role === undefined ? '(none)' : `"${cred.role}"`} not in [${[...domain.allowedRoles].join(', ')}]`);
    return deny('role_not_allowed', steps, id, domain, who);
  }
  steps.add('authorize', 'pass', () => `role "${cred.role}" allowed in domain "${domain.name}"`);

  // attest
  if (domain.attestationRequired) {
    if (cred.attestation === undefined || !policy.trustedMeasurements.has(cred.attestation)) {
      steps.add('attest', 'fail', () => (cred.attestation === undefined ? 'no attestation claim' : 'attestation measurement is not trusted'));
      return deny('attestation_failed', steps, id, domain, who);
    }
    steps.add('attest', 'pass', () => 'attestation measurement is trusted');
  } else {
    steps.add('attest', 'skip', () => 'domain does not require attestation');
  }

  for (const guard of deps.guards ?? []) {
    const answer = guard.check({ request: req, domain, credential: cred, now });
    const reason = typeof answer === 'object' ? await answer : answer;
    if (reason) {
      steps.add(guard.phase, 'fail', () => `denied: ${reason}`);
      return deny(reason, steps, id, domain, who);
    }
  }

  // Explain shows what Check would answer, but never a binding: a caller of the admin API could
  // otherwise obtain a MAC for a request it then sends through ext_proc without Check.
  return allow(req, domain, cred, agent, id, steps, deps.explain ? undefined : deps.pseudonyms.bindingKey(), now);
}

/** A plain loop rather than `MESH_HEADER_PREFIXES.some(...)`: no closure per request header. */
function hasMeshPrefix(name: string): boolean {
  for (const p of MESH_HEADER_PREFIXES) if (name.startsWith(p)) return true;
  return false;
}

function allow(
  req: RequestAttributes,
  domain: DomainPolicy,
  cred: VerifiedCredential,
  agent: string,
  id: string,
  steps: Steps,
  bindingKey: Uint8Array | undefined,
  now: number,
): AllowDecision {
  const role = cred.role!;
  const agentHeader = domain.metadataMasking ? 'x-agent-pseudonym' : 'x-agent-id';
  const principal = req.sourcePrincipal ?? '';
  // The route as Envoy sent it, so ext_proc recomputes the same MAC from its own request headers.
  const authority = req.headers.get(':authority') ?? req.host;
  const binding = bindingKey
    ? bindDecision(bindingKey, { decisionId: id, domain: domain.name, role, agent, host: bindingHost(authority), path: req.path, method: req.method, principal }, now)
    : undefined;
  const setHeaders: Array<readonly [string, string]> = [
    ['x-agent-role', role],
    ['x-mesh-domain', domain.name],
    ['x-mesh-tier', domain.tier],
    ['x-mesh-decision-id', id],
    [agentHeader, agent],
  ];
  if (binding) setHeaders.push(['x-mesh-binding', binding]);
  // Credentials never reach the callee; topology headers go in masking domains; client-sent
  // x-agent-* / x-mesh-* that Check does not overwrite are removed so none survives.
  const remove = new Set<string>(['authorization']);
  for (const h of domain.maskRequestHeaders) if (req.headers.has(h)) remove.add(h);
  // Prefix first: most requests carry no x-agent-*/x-mesh-* header, so the set-header lookup rarely runs.
  for (const name of req.headers.keys()) {
    if (hasMeshPrefix(name) && !setHeaders.some(([n]) => n === name)) remove.add(name);
  }
  const removeHeaders = [...remove].filter((h) => !isProtectedHeaderName(h));
  steps.add('mask', domain.metadataMasking ? 'pass' : 'skip', () =>
    domain.metadataMasking
      ? `agent id replaced by pseudonym; removed: ${removeHeaders.join(', ')}`
      : `no metadata masking; removed: ${removeHeaders.join(', ')}`,
  );
  steps.add('respond', 'pass', () => 'allow');
  const metadata: Record<string, string> = {
    domain: domain.name,
    tier: domain.tier,
    role,
    decision_id: id,
    [domain.metadataMasking ? 'agent_pseudonym' : 'agent_id']: agent,
  };
  // ext_proc checks the same MAC on the metadata path, against the route it sees.
  if (binding) metadata[BINDING_METADATA_FIELD] = binding;
  if (principal) metadata['source_principal'] = principal;
  // OUTPUT_ONLY domains audit egress payloads: ext_proc only knows the hop from here.
  if (isEgressHop(req.contextExtensions)) metadata['hop'] = 'egress';
  return {
    kind: 'allow',
    reason: 'ok',
    decisionId: id,
    domain: domain.name,
    tier: domain.tier,
    auditLevel: domain.auditLevel,
    masking: domain.metadataMasking,
    agentId: cred.agentId,
    agent,
    role,
    setHeaders,
    removeHeaders,
    metadata,
    steps: steps.list,
  };
}
