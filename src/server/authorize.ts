import { performance } from 'node:perf_hooks';
import { isEgressHop, shouldAudit } from '../audit/level.js';
import type { AuditEvent } from '../audit/record.js';
import { auditTarget } from '../audit/target.js';
import type { CompiledPolicy } from '../config/types.js';
import type { AllowDecision, Decision, DenyDecision } from '../policy/decision.js';
import { inspectMetadata, inspectRequest, summarizeCalls } from '../protocols/index.js';
import { decide } from '../policy/decide.js';
import type { RequestAttributes } from '../policy/request.js';
import type { Runtime } from './runtime.js';

/**
 * One Check, without protobuf: decide, then record, then count. For a FULL_MESH domain an allow is
 * only returned once its audit record is durable; if the record cannot be written the allow becomes a
 * deny with `audit_unavailable` (fail closed).
 */
export async function authorize(rt: Runtime, req: RequestAttributes): Promise<Decision> {
  const started = performance.now();
  const policy = rt.policy();
  let decision = await decide(req, { policy, currentPolicy: () => rt.policy(), credentials: rt.credentials(), pseudonyms: rt.pseudonyms, guards: rt.guards() });
  if (decision.kind === 'allow' && (req.body !== undefined || req.mcpFilter !== undefined)) decision = agentProtocolStep(rt, rt.policy(), req, decision);
  const level = decision.auditLevel ?? rt.policy().global.auditScope;
  const choice = shouldAudit(level, { decision: decision.kind, egress: isEgressHop(req.contextExtensions) });
  if (choice.record) {
    try {
      await rt.audit.record(auditEventOf(rt, req, decision), { durable: choice.durable });
    } catch (e) {
      rt.log.error({ err: { message: (e as Error).message }, decision_id: decision.decisionId }, 'audit record failed');
      if (decision.kind === 'allow') decision = auditUnavailable(decision);
    }
  }
  rt.metrics.decisions.inc({ domain: decision.domain ?? '', decision: decision.kind, reason: decision.reason });
  rt.metrics.decisionSeconds.observe((performance.now() - started) / 1000, { decision: decision.kind });
  return decision;
}

/**
 * Agent protocols at Check (contract section 7): when Envoy sends the body (`with_request_body`) or its
 * MCP filter's method and tool, a call the role may not make is denied here, so the callee never sees
 * it. ext_proc decides again on the whole body (arguments included) before DLP and the tier.
 */
function agentProtocolStep(rt: Runtime, policy: CompiledPolicy, req: RequestAttributes, d: AllowDecision): Decision {
  const domain = policy.domainsByName.get(d.domain ?? '');
  const p = domain?.protocol;
  if (!domain || !p) return d;
  const role = d.role ?? null;
  const r = req.body !== undefined ? inspectRequest(p, role, req.body, domain.metadataMasking) : inspectMetadata(p, role, req.mcpFilter!);
  for (const c of r.calls) rt.metrics.rpcCalls.inc({ domain: domain.name, method: c.methodLabel, tool: c.toolLabel, decision: c.decision });
  const rpc = { summary: summarizeCalls(r.calls, r.batch), protocol: p.protocol };
  if (r.kind === 'allow') return { ...d, rpc };
  return denyFrom(d, r.reason, { rpc, ...(r.kind === 'deny' && r.reply !== undefined ? { rpcReply: r.reply } : {}) });
}

/** A deny that keeps everything the earlier decision knew (who, where, its steps): only the reason changes. */
function denyFrom(d: Decision, reason: DenyDecision['reason'], extra: Partial<DenyDecision> = {}): DenyDecision {
  return {
    kind: 'deny',
    reason,
    decisionId: d.decisionId,
    domain: d.domain,
    tier: d.tier,
    auditLevel: d.auditLevel,
    agentId: d.agentId,
    agent: d.agent,
    role: d.role,
    masking: d.masking,
    steps: d.steps,
    ...extra,
  };
}

function auditUnavailable(d: Decision): DenyDecision {
  return denyFrom(d, 'audit_unavailable');
}

function auditEventOf(rt: Runtime, req: RequestAttributes, d: Decision): AuditEvent {
  return {
    event: 'authz.check',
    decision_id: d.decisionId,
    domain: d.domain ?? null,
    tier: d.tier ?? null,
    decision: d.kind,
    reason: d.reason,
    // Masking domains record the pseudonym: the audit file must not become the topology map.
    agent: d.agent ?? null,
    role: d.role ?? null,
    target: auditTarget(req.host, req.path, d.masking && d.domain ? { key: rt.pseudonyms.keyFor(d.domain) } : undefined),
    trace_id: req.traceId ?? null,
    audit_level: d.auditLevel ?? null,
    ...(d.rpc?.summary ?? {}),
  };
}
