import type { Decision } from '../../policy/decision.js';
import { denyBody, REASONS } from '../../policy/reasons.js';
import type { CheckResponseObject, HeaderOptionObject } from './response-encoder.js';

/**
 * Decision → CheckResponse. A deny is always a normal response with a non-zero status (a gRPC error
 * would become an allow under `failure_mode_allow`). Header mutations carry `append: false` so they
 * overwrite client-sent values. Struct values use protobufjs' camelCase well-known-type names
 * (`stringValue`), which is what reaches the wire even with keepCase.
 */
function headerOption(key: string, value: string): HeaderOptionObject {
  return { header: { key, value }, append: { value: false } };
}

export function toStruct(values: Readonly<Record<string, string>>) {
  const fields: Record<string, { stringValue: string }> = {};
  for (const [k, v] of Object.entries(values)) fields[k] = { stringValue: v };
  return { fields };
}

const DENY_CACHE = new Map<string, object>();

// Typed as CheckResponseObject so a field the fast encoder (response-encoder.ts) does not know is a
// compile error here, not a field silently left off the wire.
function denyResponse(reason: keyof typeof REASONS, decisionId: string): CheckResponseObject {
  const r = REASONS[reason];
  // The parts that do not depend on the request are built once per reason.
  let fixed = DENY_CACHE.get(reason) as { body: string; status: { code: number } } | undefined;
  if (!fixed) {
    fixed = { body: denyBody(reason), status: { code: r.http } };
    DENY_CACHE.set(reason, fixed);
  }
  return {
    status: { code: r.grpc, message: reason },
    denied_response: {
      status: fixed.status,
      headers: [
        headerOption('x-mesh-reason', reason),
        headerOption('x-mesh-decision-id', decisionId),
        headerOption('content-type', 'application/json'),
        ...(r.grpc === 16 ? [headerOption('www-authenticate', 'Bearer realm="mesh-pep"')] : []),
      ],
      body: fixed.body,
    },
  };
}

/** A denied JSON-RPC call: HTTP 200 with the JSON-RPC error, so agents read a denial they understand. */
function rpcDenyResponse(reason: keyof typeof REASONS, decisionId: string, body: string): CheckResponseObject {
  return {
    status: { code: REASONS[reason].grpc, message: reason },
    denied_response: {
      status: { code: 200 },
      headers: [headerOption('x-mesh-reason', reason), headerOption('x-mesh-decision-id', decisionId), headerOption('content-type', 'application/json')],
      body,
    },
  };
}

export function decisionToCheckResponse(d: Decision): CheckResponseObject {
  if (d.kind === 'deny') return d.rpcReply !== undefined ? rpcDenyResponse(d.reason, d.decisionId, d.rpcReply) : denyResponse(d.reason, d.decisionId);
  return {
    status: { code: 0, message: '' },
    ok_response: {
      headers: d.setHeaders.map(([k, v]) => headerOption(k, v)),
      headers_to_remove: [...d.removeHeaders],
    },
    dynamic_metadata: toStruct(d.metadata),
  };
}
