import type * as grpc from '@grpc/grpc-js';
import { loadServices } from '../protos.js';
import { withSafeDeserializers } from '../safe-deserialize.js';
import { unclassifiedDeny, type Decision } from '../../policy/decision.js';
import type { Runtime } from '../../server/runtime.js';
import { authorizeWithLimits } from '../../server/overload.js';
import { decodeCheckRequest, encodeCheckResponse, preloadCheckCodec } from './codec.js';
import { checkRequestToAttributes } from './request.js';
import { decisionToCheckResponse } from './response.js';
import { metadataCarrier, rpcSpanAttributes, type SpanHandle } from '../../telemetry/tracing.js';

/**
 * `envoy.service.auth.v3.Authorization/Check`. Translation only: the decision is made by
 * `server/authorize.ts`. Whatever fails in here becomes a deny response, never a gRPC error, because
 * Envoy's `failure_mode_allow` would turn an error into an allow.
 */
/**
 * The Authorization service definition with Check's own codec (`codec.ts`: no toObject/fromObject
 * copies); undecodable bytes reach Check as a garbled request and are denied.
 */
export function checkServiceDefinition(): grpc.ServiceDefinition {
  const base = loadServices().Authorization.service;
  preloadCheckCodec();
  const check = base.Check!;
  return withSafeDeserializers({
    ...base,
    Check: { ...check, requestDeserialize: decodeCheckRequest, responseSerialize: encodeCheckResponse },
  });
}

export function createCheckService(rt: Runtime): grpc.UntypedServiceImplementation {
  const check: grpc.handleUnaryCall<unknown, unknown> = (call, callback) => {
    let decided: Promise<Decision>;
    let span: SpanHandle | undefined;
    try {
      const attrs = checkRequestToAttributes(call.request);
      // Envoy puts its trace context in the gRPC call's metadata; the checked request's own headers
      // are the fallback (a client calling without a traced proxy).
      span = rt.tracing.startServerSpan('mesh.authz.check', { grpcMetadata: metadataCarrier(call.metadata), requestHeaders: attrs.headers });
      attrs.traceId = span.traceId;
      decided = authorizeWithLimits(rt, attrs, call.getDeadline());
    } catch (e) {
      decided = Promise.reject(e);
    }
    const respond = (d: Decision) => {
      if (span) {
        span.setAttributes({ 'mesh.domain': d.domain, 'mesh.tier': d.tier, 'mesh.decision': d.kind, 'mesh.reason': d.reason, 'mesh.agent.role': d.role });
        if (d.rpc?.summary) span.setAttributes(rpcSpanAttributes(d.rpc.summary, d.rpc.protocol));
        span.end();
      }
      callback(null, decisionToCheckResponse(d));
    };
    // One `then` with both handlers rather than `.catch().then()`: one promise and one hop fewer per Check.
    decided.then(respond, (e: unknown) => {
      rt.log.error({ err: { message: (e as Error)?.message } }, 'check failed; denying');
      rt.metrics.decisions.inc({ domain: '', decision: 'deny', reason: 'internal_error' });
      respond(unclassifiedDeny('internal_error', 'none'));
    });
  };
  return { Check: check };
}
