import {
  AGENT_CARD_PATHS,
  filterResponse,
  inspectRequest,
  maskAgentCardBody,
  RpcRejected,
  summarizeCalls,
  type ResponseFilter,
  type RpcCall,
  type RpcSummary,
} from '../../protocols/index.js';
import type { ReasonCode } from '../../policy/reasons.js';
import type { Metrics } from '../../telemetry/metrics.js';
import type { Flow } from './flow.js';

/**
 * The ext_proc side of the agent-protocol rules (`protocols/`): a request body is decided before DLP
 * and the tier see it; its answer is filtered after they opened it. Kept apart from `stream.ts` so the
 * state machine only asks "refuse, or go on".
 */
export interface RpcExchange {
  protocol: 'mcp' | 'a2a';
  summary: RpcSummary | undefined;
  filter: ResponseFilter | undefined;
}

export type RpcRequestStep =
  | { kind: 'pass'; exchange: RpcExchange }
  /** `rpc`: the JSON-RPC error body to answer with HTTP 200; undefined → the usual JSON deny body. */
  | { kind: 'refuse'; reason: ReasonCode; rpc: string | undefined; exchange: RpcExchange };

function count(metrics: Metrics | undefined, domain: string, calls: readonly RpcCall[]): void {
  if (!metrics) return;
  for (const c of calls) metrics.rpcCalls.inc({ domain, method: c.methodLabel, tool: c.toolLabel, decision: c.decision });
}

export function rpcRequestStep(flow: Flow, body: Uint8Array, metrics?: Metrics): RpcRequestStep {
  const policy = flow.domain.protocol;
  if (!policy || body.length === 0) return { kind: 'pass', exchange: { protocol: policy?.protocol ?? 'mcp', summary: undefined, filter: undefined } };
  const r = inspectRequest(policy, flow.role, body, flow.domain.metadataMasking);
  count(metrics, flow.domain.name, r.calls);
  const exchange: RpcExchange = { protocol: policy.protocol, summary: summarizeCalls(r.calls, r.batch), filter: r.kind === 'allow' ? r.filter : undefined };
  switch (r.kind) {
    case 'allow':
      return { kind: 'pass', exchange };
    case 'deny':
      return { kind: 'refuse', reason: r.reason, rpc: r.reply, exchange };
    case 'reject':
      return { kind: 'refuse', reason: r.reason, rpc: undefined, exchange };
  }
}

export type RpcResponseStep = { kind: 'keep' } | { kind: 'replace'; body: Buffer } | { kind: 'refuse' };

function pathOf(headers: ReadonlyMap<string, string> | undefined): string {
  const p = headers?.get(':path') ?? '';
  const q = p.indexOf('?');
  return q < 0 ? p : p.slice(0, q);
}

/** The origin the caller addressed: the callee's external name as far as the caller knows it. */
function requestOrigin(headers: ReadonlyMap<string, string> | undefined): string {
  const scheme = headers?.get(':scheme') === 'https' ? 'https' : 'http';
  const authority = headers?.get(':authority') ?? headers?.get('host') ?? 'localhost';
  return `${scheme}://${authority}`;
}

export function rpcResponseStep(
  flow: Flow,
  exchange: RpcExchange | undefined,
  requestHeaders: ReadonlyMap<string, string> | undefined,
  body: Uint8Array,
  contentType: string | undefined,
  responseStatus: string | undefined,
): RpcResponseStep {
  const policy = flow.domain.protocol;
  if (!policy) return { kind: 'keep' };
  try {
    // The agent card: a GET, not JSON-RPC. Masking domains hide internal origins in it.
    if (policy.protocol === 'a2a' && flow.domain.metadataMasking && requestHeaders?.get(':method') === 'GET' && AGENT_CARD_PATHS.has(pathOf(requestHeaders))) {
      const out = maskAgentCardBody(body, policy.a2a.externalOrigin ?? requestOrigin(requestHeaders));
      return out ? { kind: 'replace', body: out } : { kind: 'keep' };
    }
    if (!exchange?.filter) return { kind: 'keep' };
    // An error answer (4xx/5xx) carries no list to filter, whatever its type.
    if (responseStatus !== undefined && !/^2\d\d$/.test(responseStatus)) return { kind: 'keep' };
    const out = filterResponse(exchange.filter, body, contentType, requestOrigin(requestHeaders));
    return out.kind === 'replace' ? { kind: 'replace', body: out.body } : out;
  } catch (e) {
    if (e instanceof RpcRejected) return { kind: 'refuse' };
    throw e;
  }
}
