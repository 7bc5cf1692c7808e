import type { DomainPolicy, SharedIdentitySettings } from '../../config/types.js';
import type { DecisionGuard } from '../decide.js';
import type { ReasonCode } from '../reasons.js';

/** Principals remembered per agent id; more than two already proves sharing, a few more aid the audit. */
const MAX_PRINCIPALS_PER_AGENT = 4;

export interface SharedIdentityFlag {
  agentId: string;
  domain: DomainPolicy;
  /** Distinct principals seen for this agent id within the window (the principals are not reported). */
  principals: number;
  denied: boolean;
  traceId: string | undefined;
}

/**
 * Shared service accounts: one agent id presented from two different SPIFFE principals within the
 * window. Every such presentation is flagged once per newly seen principal; domains with
 * `deny_shared_identity` deny while the sharing lasts (`identity_mismatch`), for both workloads, since
 * the PEP cannot tell which one is the legitimate holder. Memory is bounded: at most
 * `maxTrackedAgents` agents (least recently seen evicted first), each with a few principals.
 */
export class SharedIdentityGuard implements DecisionGuard {
  readonly phase = 'identify' as const;
  private readonly seen = new Map<string, Map<string, number>>();

  constructor(
    private readonly settings: () => SharedIdentitySettings,
    private readonly onFlag: (flag: SharedIdentityFlag) => void,
  ) {}

  get trackedAgents(): number {
    return this.seen.size;
  }

  check(input: Parameters<DecisionGuard['check']>[0]): ReasonCode | undefined {
    const principal = input.request.sourcePrincipal;
    if (principal === undefined || principal === '') return undefined;
    const { windowMs, maxTrackedAgents } = this.settings();
    const agentId = input.credential.agentId;
    const now = input.now;
    let entry = this.seen.get(agentId);
    if (entry) this.seen.delete(agentId); // re-insert below: Map order doubles as LRU order
    else entry = new Map();
    for (const [p, at] of entry) if (now - at > windowMs) entry.delete(p);
    const isNew = !entry.has(principal);
    entry.delete(principal);
    entry.set(principal, now);
    while (entry.size > MAX_PRINCIPALS_PER_AGENT) entry.delete(entry.keys().next().value as string);
    this.seen.set(agentId, entry);
    while (this.seen.size > maxTrackedAgents) this.seen.delete(this.seen.keys().next().value as string);
    if (entry.size < 2) return undefined;
    const denied = input.domain.denySharedIdentity === true;
    if (isNew) this.onFlag({ agentId, domain: input.domain, principals: entry.size, denied, traceId: input.request.traceId });
    return denied ? 'identity_mismatch' : undefined;
  }
}
