import * as grpc from '@grpc/grpc-js';
import type { ServerContext } from '../../server/context.js';
import { metadataCarrier, rpcSpanAttributes, type SpanHandle, type Tracing } from '../../telemetry/tracing.js';
import { loadServices } from '../protos.js';
import { ProtocolViolation } from './messages.js';
import { ExtProcStream, type StreamDeps } from './stream.js';
import { decodeRequest, encodeResponse, type DecodedOrNot } from './wire.js';
import { withSafeDeserializers } from '../safe-deserialize.js';

export interface ExtProcOptions extends Omit<StreamDeps, 'ctx'> {
  /** A `mesh.extproc.stream` span per stream with a `mesh.extproc.<phase>` child per message; defaults to the server context's tracing. */
  tracing?: Tracing;
}

/**
 * The ExternalProcessor service definition with a deserializer that never throws: a message that is
 * not valid protobuf reaches the handler as `UNDECODABLE` and the stream ends with INVALID_ARGUMENT
 * (grpc-js would otherwise answer INTERNAL before the handler sees anything). Register this one.
 */
export function extProcServiceDefinition(): grpc.ServiceDefinition {
  return withSafeDeserializers(loadServices().ExternalProcessor.service);
}

/**
 * `envoy.service.ext_proc.v3.ExternalProcessor/Process`: one stream per HTTP exchange. Messages are
 * handled strictly one after another (STREAMED chunks may arrive before earlier answers were
 * written), each answered exactly once and in order.
 */
export function createExtProcService(ctx: ServerContext, opts: ExtProcOptions = {}): grpc.UntypedServiceImplementation {
  return {
    Process: (call: grpc.ServerDuplexStream<DecodedOrNot, object>) => runStream(call, { ctx, ...opts }, opts.tracing ?? ctx.tracing),
  };
}

function runStream(call: grpc.ServerDuplexStream<DecodedOrNot, object>, deps: StreamDeps, tracing: Tracing | undefined): void {
  const stream = new ExtProcStream(deps);
  const { log } = deps.ctx;
  let open = true;
  let queue: Promise<void> = Promise.resolve();
  // One SERVER span for the exchange, parented by the trace Envoy propagates in the call's metadata
  // (else by the request's own headers); each message is an INTERNAL child of it.
  let streamSpan: SpanHandle | undefined;
  const endSpan = (span: SpanHandle | undefined) => {
    const n = stream.note;
    // Without an exporter the handles are no-ops: building their attributes would be wasted per message.
    if (span && n && tracing?.enabled) {
      span.setAttributes({
        ...(n.domain ? { 'mesh.domain': n.domain } : {}),
        ...(n.tier ? { 'mesh.tier': n.tier } : {}),
        ...(n.role ? { 'mesh.agent.role': n.role } : {}),
        'mesh.decision': n.outcome,
        'mesh.reason': n.reason,
        ...(n.rpc?.summary ? rpcSpanAttributes(n.rpc.summary, n.rpc.protocol) : {}),
        ...(n.dlpFindings ? { 'mesh.dlp.findings': n.dlpFindings.join(',') } : {}),
      });
    }
    span?.end();
  };
  const endStreamSpan = () => {
    endSpan(streamSpan);
    streamSpan = undefined;
  };

  const close = (status?: { code: grpc.status; details: string }) => {
    if (!open) return;
    open = false;
    endStreamSpan();
    stream.abort();
    if (status) call.emit('error', status);
    else call.end();
  };

  const step = async (raw: DecodedOrNot) => {
    if (!open) return;
    try {
      const msg = decodeRequest(raw);
      // Also when no exporter is configured: the span handle still reads the incoming trace id.
      if (tracing && !streamSpan) {
        streamSpan = tracing.startServerSpan('mesh.extproc.stream', {
          grpcMetadata: metadataCarrier(call.metadata),
          ...(msg.message.type === 'headers' && msg.message.phase === 'request_headers'
            ? { requestHeaders: msg.message.headers }
            : stream.requestHeaders
              ? { requestHeaders: stream.requestHeaders }
              : {}),
        });
        if (streamSpan.traceId) stream.traceId ??= streamSpan.traceId;
      }
      const span = streamSpan?.child(`mesh.extproc.${msg.message.phase}`);
      let out;
      try {
        out = await stream.handle(msg);
      } finally {
        endSpan(span);
      }
      if (!open || out === undefined) return;
      call.write(encodeResponse(out));
      // After an immediate response Envoy is done with this exchange; ending the stream frees it.
      if (out.type === 'immediate') close();
    } catch (e) {
      if (e instanceof ProtocolViolation) {
        log.warn({ violation: e.message }, 'ext_proc protocol violation');
        close({ code: grpc.status.INVALID_ARGUMENT, details: e.message });
      } else {
        log.error({ err: { message: (e as Error).message } }, 'ext_proc stream failed');
        close({ code: grpc.status.INTERNAL, details: 'internal error' });
      }
    }
  };

  call.on('data', (raw: DecodedOrNot) => {
    queue = queue.then(() => step(raw));
  });
  // Half-close: Envoy has nothing more to send; answer what is queued, then finish with OK.
  call.on('end', () => {
    queue = queue.then(() => close());
  });
  // Cancel (Envoy reset the HTTP stream or timed out): drop buffered plaintext, write nothing more.
  call.on('cancelled', () => {
    open = false;
    endStreamSpan();
    stream.abort();
  });
  call.on('error', () => {
    open = false;
    endStreamSpan();
    stream.abort();
  });
}
