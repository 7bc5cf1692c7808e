import type * as grpc from '@grpc/grpc-js';
import type { Decision } from '../../policy/decision.js';
import type { Runtime } from '../../server/runtime.js';
import { authorize } from '../../server/authorize.js';
import { checkRequestToAttributes } from './request.js';
import { decisionToCheckResponse } from './response.js';

/**
 * `envoy.service.auth.v3.Authorization/Check`. Translation only: the decision is made by
 * `server/authorize.ts`. Whatever fails in here becomes a deny response, never a gRPC error, because
 * Envoy's `failure_mode_allow` would turn an error into an allow.
 */
export function createCheckService(rt: Runtime): grpc.UntypedServiceImplementation {
  const check: grpc.handleUnaryCall<unknown, unknown> = (call, callback) => {
    let decided: Promise<Decision>;
    try {
      decided = authorize(rt, checkRequestToAttributes(call.request));
    } catch (e) {
      decided = Promise.reject(e);
    }
    decided.then(
      (d) => callback(null, decisionToCheckResponse(d)),
      (e: unknown) => {
        rt.log.error({ err: { message: (e as Error)?.message } }, 'check failed; denying');
        rt.metrics.decisions.inc({ domain: '', decision: 'deny', reason: 'internal_error' });
        callback(null, decisionToCheckResponse(internalErrorDecision()));
      },
    );
  };
  return { Check: check };
}

function internalErrorDecision(): Decision {
  return {
    kind: 'deny',
    reason: 'internal_error',
    decisionId: 'none',
    domain: undefined,
    tier: undefined,
    auditLevel: undefined,
    agentId: undefined,
    agent: undefined,
    role: undefined,
    masking: false,
    steps: [],
  };
}
