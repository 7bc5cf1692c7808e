import { randomUUID } from 'node:crypto';
import type { AuditSink } from '../../audit/record.js';
import type { PolicyStore } from '../../config/store.js';
import type { VerifiedCredential } from '../../identity/verifier.js';
import type { Pseudonymizer } from '../../masking/pseudonym.js';
import type { Logger } from '../../telemetry/logger.js';
import { DEFAULTS } from '../../config/defaults.js';
import type { DecisionGuard } from '../decide.js';
import { RevocationGuard, RevocationRegistry } from './revocation.js';
import { SharedIdentityGuard, type SharedIdentityFlag, type SharedIdentityPeer } from './shared-identity.js';
import { ZoneGuard } from './zones.js';

export interface GuardHost {
  store: PolicyStore;
  audit: AuditSink;
  log: Logger;
  pseudonyms: Pseudonymizer;
  addGuard(g: DecisionGuard): void;
  invalidateCredentials(pred: (c: VerifiedCredential) => boolean): void;
}

export interface SecurityGuards {
  revocation: RevocationRegistry;
  sharedIdentity: SharedIdentityGuard;
  /** Re-reads the revocation file (SIGHUP / Admin reload). */
  refresh(): Promise<void>;
  close(): void;
}

/**
 * Registers the hardening guards in the order they deny: revocation (the strongest statement about a
 * credential), shared identity (tracked before zones so every verified presentation is seen), zones.
 * Throws when the policy names a revocation file that cannot be read: starting without a revocation
 * list that was asked for would let revoked callers in.
 */
export async function installSecurityGuards(host: GuardHost, sharedIdentityPeer?: SharedIdentityPeer): Promise<SecurityGuards> {
  const revocation = new RevocationRegistry({
    invalidate: (pred) => host.invalidateCredentials(pred),
    onError: (message) => host.log.error(message),
    onChange: (counts) => host.log.debug({ revoked: counts }, 'revocation list applied'),
  });
  await revocation.apply(host.store.current.revocation, true);
  host.store.onChange((next) => revocation.apply(next.revocation));

  const sharedIdentity = new SharedIdentityGuard(
    () => host.store.current.sharedIdentity ?? { windowMs: DEFAULTS.sharedIdentityWindowMs, maxTrackedAgents: DEFAULTS.sharedIdentityMaxAgents },
    (flag) => recordSharedIdentity(host, flag),
    sharedIdentityPeer,
  );

  host.addGuard(new RevocationGuard(revocation));
  host.addGuard(sharedIdentity);
  host.addGuard(new ZoneGuard());
  return {
    revocation,
    sharedIdentity,
    refresh: () => revocation.refresh(),
    close: () => revocation.close(),
  };
}

function recordSharedIdentity(host: GuardHost, flag: SharedIdentityFlag): void {
  const d = flag.domain;
  const agent = d.metadataMasking ? host.pseudonyms.pseudonym(d.name, flag.agentId) : flag.agentId;
  host.log.warn({ domain: d.name, agent, principals: flag.principals, denied: flag.denied }, 'agent identity presented from more than one workload');
  // The flag is evidence, not a decision: it is written durably but a failure to write it cannot
  // change the decision (the Check's own record does, via audit-before-allow).
  host.audit
    .record(
      {
        event: 'identity.shared',
        decision_id: randomUUID(),
        domain: d.name,
        tier: d.tier,
        decision: flag.denied ? 'deny' : 'pass',
        reason: 'identity_mismatch',
        agent,
        role: null,
        target: null,
        trace_id: flag.traceId ?? null,
        audit_level: d.auditLevel,
      },
      { durable: true },
    )
    .catch((e: Error) => host.log.error({ err: { message: e.message } }, 'shared-identity audit record failed'));
}
