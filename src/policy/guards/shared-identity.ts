import type { DomainPolicy, SharedIdentitySettings } from '../../config/types.js';
import { evictSecondChance } from '../../second-chance.js';
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

interface Tracked {
  /** Principal → when it was last seen (ms). */
  readonly principals: Map<string, number>;
  /** Set when the agent is seen again, cleared when eviction passes it over once (second chance). */
  used: boolean;
}

/**
 * Shared service accounts: one agent id presented from two different SPIFFE principals within the
 * window. Every such presentation is flagged once per newly seen principal; domains with
 * `deny_shared_identity` deny while the sharing lasts (`identity_mismatch`), for both workloads, since
 * the PEP cannot tell which one is the legitimate holder. Memory is bounded: at most
 * `maxTrackedAgents` agents (an agent not seen since eviction last passed it over goes first), each with
 * a few principals.
 *
 * The common call (a known agent from its known principal) changes no Map's size: agents are evicted
 * by second chance (`second-chance.ts`), principals by their last-seen time.
 */
export class SharedIdentityGuard implements DecisionGuard {
  readonly phase = 'identify' as const;
  private readonly tracked = new Map<string, Tracked>();

  constructor(
    private readonly settings: () => SharedIdentitySettings,
    private readonly onFlag: (flag: SharedIdentityFlag) => void,
  ) {}

  get trackedAgents(): number {
    return this.tracked.size;
  }

  check(input: Parameters<DecisionGuard['check']>[0]): ReasonCode | undefined {
    const principal = input.request.sourcePrincipal;
    if (principal === undefined || principal === '') return undefined;
    const { windowMs, maxTrackedAgents } = this.settings();
    const agentId = input.credential.agentId;
    const now = input.now;
    let agent = this.tracked.get(agentId);
    if (agent) {
      agent.used = true;
    } else {
      agent = { principals: new Map(), used: false };
      this.tracked.set(agentId, agent);
      evictSecondChance(this.tracked, maxTrackedAgents, agentId);
    }
    const principals = agent.principals;
    for (const [p, at] of principals) if (now - at > windowMs) principals.delete(p);
    const isNew = !principals.has(principal);
    principals.set(principal, now);
    if (isNew && principals.size > MAX_PRINCIPALS_PER_AGENT) principals.delete(leastRecent(principals));
    if (principals.size < 2) return undefined;
    const denied = input.domain.denySharedIdentity === true;
    if (isNew) this.onFlag({ agentId, domain: input.domain, principals: principals.size, denied, traceId: input.request.traceId });
    return denied ? 'identity_mismatch' : undefined;
  }
}

function leastRecent(principals: Map<string, number>): string {
  let which = '';
  let when = Infinity;
  for (const [p, at] of principals) {
    if (at < when) {
      which = p;
      when = at;
    }
  }
  return which;
}
