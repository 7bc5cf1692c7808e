import type { AuditLevel, Tier } from '../config/types.js';
import type { ReasonCode } from './reasons.js';
import type { RpcSummary } from '../protocols/index.js';

/** One step of the pipeline as `Explain` reports it. */
export interface DecisionStep {
  phase: 'classify' | 'identify' | 'authorize' | 'attest' | 'zone' | 'mask' | 'respond';
  outcome: 'pass' | 'fail' | 'skip';
  detail: string;
}

interface DecisionBase {
  decisionId: string;
  domain: string | undefined;
  tier: Tier | undefined;
  auditLevel: AuditLevel | undefined;
  /** Verified agent id (kept for the audit pseudonymisation decision; never sent when masking). */
  agentId: string | undefined;
  /** What the callee and records see: the agent id, or its pseudonym in masking domains. */
  agent: string | undefined;
  role: string | undefined;
  /** Whether this domain masks metadata. */
  masking: boolean;
  steps: DecisionStep[];
  /** The JSON-RPC method(s) and tool(s) Check judged (agent-protocol domains), for audit and spans. */
  rpc?: { summary: RpcSummary | undefined; protocol: 'mcp' | 'a2a' };
}

export interface AllowDecision extends DecisionBase {
  kind: 'allow';
  reason: 'ok';
  /** Request headers to set, each overwriting any client-sent value. */
  setHeaders: ReadonlyArray<readonly [string, string]>;
  /** Request headers to remove (never `:`-prefixed or `host`). */
  removeHeaders: readonly string[];
  /** Dynamic metadata for `envoy.filters.http.ext_authz` (read again by ext_proc). */
  metadata: Readonly<Record<string, string>>;
}

export interface DenyDecision extends DecisionBase {
  kind: 'deny';
  reason: ReasonCode;
  /** A JSON-RPC error body answered with HTTP 200 instead of the usual deny body (denied MCP/A2A calls). */
  rpcReply?: string;
}

export type Decision = AllowDecision | DenyDecision;

/** A deny made before any domain was chosen (shed load, an internal failure): nothing but the reason. */
export function unclassifiedDeny(reason: ReasonCode, decisionId: string, steps: DecisionStep[] = []): DenyDecision {
  return {
    kind: 'deny',
    reason,
    decisionId,
    domain: undefined,
    tier: undefined,
    auditLevel: undefined,
    agentId: undefined,
    agent: undefined,
    role: undefined,
    masking: false,
    steps,
  };
}
