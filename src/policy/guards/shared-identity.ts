import type { DomainPolicy, SharedIdentitySettings } from '../../config/types.js';
import { evictSecondChance } from '../../second-chance.js';
import type { DecisionGuard, GuardResult } from '../decide.js';
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
  /** Principal → when this process last told the cluster about it (cluster workers only). */
  readonly reported: Map<string, number>;
  /** Set when the agent is seen again, cleared when eviction passes it over once (second chance). */
  used: boolean;
}

/** What one observation did to the tracked principals of an agent. */
export interface Observation {
  /** The principal was not among the agent's principals within the window. */
  isNew: boolean;
  /** Distinct principals within the window, this one included. */
  count: number;
}

/**
 * Agent id → the SPIFFE principals it was presented from within the window, bounded: at most
 * `maxTrackedAgents` agents (an agent not seen since eviction last passed it over goes first), each
 * with a few principals (the least recently seen goes). Used by the guard in every process and by the
 * cluster primary, which holds the one view across workers (`shared-identity-ipc.ts`).
 *
 * The common call (a known agent from its known principal) changes no Map's size: agents are evicted
 * by second chance (`second-chance.ts`), principals by their last-seen time.
 */
export class PrincipalTracker {
  private readonly tracked = new Map<string, Tracked>();

  get size(): number {
    return this.tracked.size;
  }

  entry(agentId: string, maxTrackedAgents: number): Tracked {
    let agent = this.tracked.get(agentId);
    if (agent) {
      agent.used = true;
    } else {
      agent = { principals: new Map(), reported: new Map(), used: false };
      this.tracked.set(agentId, agent);
      evictSecondChance(this.tracked, maxTrackedAgents, agentId);
    }
    return agent;
  }

  peek(agentId: string): Tracked | undefined {
    return this.tracked.get(agentId);
  }

  observe(agentId: string, principal: string, at: number, settings: SharedIdentitySettings): Observation {
    const principals = this.entry(agentId, settings.maxTrackedAgents).principals;
    expire(principals, at, settings.windowMs);
    const isNew = !principals.has(principal);
    principals.set(principal, Math.max(at, principals.get(principal) ?? 0));
    if (isNew && principals.size > MAX_PRINCIPALS_PER_AGENT) principals.delete(leastRecent(principals));
    return { isNew, count: principals.size };
  }

  /** Adds what another process saw (the cluster's view); keeps the later time of each principal. */
  merge(agentId: string, seen: readonly (readonly [string, number])[], now: number, settings: SharedIdentitySettings): void {
    const principals = this.entry(agentId, settings.maxTrackedAgents).principals;
    for (const [p, at] of seen) {
      if (typeof p !== 'string' || typeof at !== 'number' || now - at > settings.windowMs) continue;
      principals.set(p, Math.max(at, principals.get(p) ?? 0));
      if (principals.size > MAX_PRINCIPALS_PER_AGENT) principals.delete(leastRecent(principals));
    }
  }

  principalsOf(agentId: string): Array<[string, number]> {
    return [...(this.tracked.get(agentId)?.principals ?? [])];
  }
}

/**
 * How a cluster worker shares what it sees with the other workers: the primary keeps the one view.
 * `observe` resolves with every principal the cluster saw for the agent within the window and whether
 * this principal was new to the cluster; it rejects when the primary cannot be asked.
 */
export interface SharedIdentityPeer {
  observe(agentId: string, principal: string, at: number, settings: SharedIdentitySettings): Promise<{ principals: Array<[string, number]>; isNew: boolean }>;
  /** Registers the handler for principals the primary pushes when another worker found sharing. */
  onShared(handler: (agentId: string, principals: Array<[string, number]>) => void): void;
}

/**
 * Shared service accounts: one agent id presented from two different SPIFFE principals within the
 * window. Every such presentation is flagged once per newly seen principal; domains with
 * `deny_shared_identity` deny while the sharing lasts (`identity_mismatch`), for both workloads, since
 * the PEP cannot tell which one is the legitimate holder.
 *
 * With `--workers N` each worker sees only the connections it was handed, so the state must be global
 * (issue 17, finding 3): given a `peer`, a pair (agent, principal) that this worker has not reported
 * yet is sent to the primary before the decision, and the decision uses the cluster's principals for
 * that agent. Known pairs stay synchronous (the cached Check path does not wait on IPC); they are
 * re-reported in the background every quarter window so the primary's view does not expire, and when
 * the primary sees a new principal for an agent with others it pushes the list to every worker, so the
 * first workload's next call is denied too, as in one process. If the primary cannot be asked, the
 * worker decides on what it has seen itself and asks again on the next call.
 */
export class SharedIdentityGuard implements DecisionGuard {
  readonly phase = 'identify' as const;
  private readonly tracker = new PrincipalTracker();

  constructor(
    private readonly settings: () => SharedIdentitySettings,
    private readonly onFlag: (flag: SharedIdentityFlag) => void,
    private readonly peer?: SharedIdentityPeer,
  ) {
    peer?.onShared((agentId, principals) => {
      // Only agents this worker tracks: an unknown agent's first call here asks the primary anyway.
      if (this.tracker.peek(agentId)) this.tracker.merge(agentId, principals, Date.now(), this.settings());
    });
  }

  get trackedAgents(): number {
    return this.tracker.size;
  }

  check(input: Parameters<DecisionGuard['check']>[0]): GuardResult {
    const principal = input.request.sourcePrincipal;
    if (principal === undefined || principal === '') return undefined;
    const settings = this.settings();
    const agentId = input.credential.agentId;
    const now = input.now;
    const local = this.tracker.observe(agentId, principal, now, settings);
    if (!this.peer) return this.decide(input, local.count, local.isNew);

    const reported = this.tracker.entry(agentId, settings.maxTrackedAgents).reported;
    const last = reported.get(principal);
    if (last !== undefined && now - last <= settings.windowMs / 4) return this.decide(input, local.count, false);
    reported.set(principal, now);
    const asked = this.peer.observe(agentId, principal, now, settings).then(
      (cluster) => {
        this.tracker.merge(agentId, cluster.principals, now, settings);
        return { count: this.tracker.observe(agentId, principal, now, settings).count, isNew: cluster.isNew };
      },
      () => {
        // Not reported after all: the next call asks again. Until then this worker's own view decides.
        reported.delete(principal);
        return { count: local.count, isNew: local.isNew };
      },
    );
    if (last !== undefined) {
      // A refresh of a pair the cluster already knows: the decision does not wait for it.
      void asked;
      return this.decide(input, local.count, false);
    }
    return asked.then((r) => this.decide(input, r.count, r.isNew));
  }

  private decide(input: Parameters<DecisionGuard['check']>[0], count: number, isNew: boolean): ReasonCode | undefined {
    if (count < 2) return undefined;
    const denied = input.domain.denySharedIdentity === true;
    if (isNew) this.onFlag({ agentId: input.credential.agentId, domain: input.domain, principals: count, denied, traceId: input.request.traceId });
    return denied ? 'identity_mismatch' : undefined;
  }
}

function expire(principals: Map<string, number>, now: number, windowMs: number): void {
  for (const [p, at] of principals) if (now - at > windowMs) principals.delete(p);
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
