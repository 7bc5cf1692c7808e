import * as grpc from '@grpc/grpc-js';
import type { ServerContext } from '../../server/context.js';
import type { SpanHandle, Tracing } from '../../telemetry/tracing.js';
import { loadServices } from '../protos.js';
import { ProtocolViolation } from './messages.js';
import { ExtProcStream, type StreamDeps } from './stream.js';
import { decodeRequest, encodeResponse, UNDECODABLE, type DecodedOrNot } from './wire.js';

export interface ExtProcOptions extends Omit<StreamDeps, 'ctx'> {
  /** One `mesh.extproc.<phase>` span per message; defaults to the server context's tracing. */
  tracing?: Tracing;
}

/**
 * The ExternalProcessor service definition with a deserializer that never throws: a message that is
 * not valid protobuf reaches the handler as `UNDECODABLE` and the stream ends with INVALID_ARGUMENT
 * (grpc-js would otherwise answer INTERNAL before the handler sees anything). Register this one.
 */
export function extProcServiceDefinition(): grpc.ServiceDefinition {
  const base = loadServices().ExternalProcessor.service;
  const process = base.Process!;
  const decode = process.requestDeserialize;
  return {
    ...base,
    Process: {
      ...process,
      requestDeserialize: (buf: Buffer): DecodedOrNot => {
        try {
          return decode(buf) as DecodedOrNot;
        } catch {
          return UNDECODABLE;
        }
      },
    },
  };
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

function metadataCarrier(call: grpc.ServerDuplexStream<DecodedOrNot, object>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(call.metadata.getMap())) if (typeof v === 'string') out[k] = v;
  return out;
}

function runStream(call: grpc.ServerDuplexStream<DecodedOrNot, object>, deps: StreamDeps, tracing: Tracing | undefined): void {
  const stream = new ExtProcStream(deps);
  const { log } = deps.ctx;
  let open = true;
  let queue: Promise<void> = Promise.resolve();
  let first: SpanHandle | undefined;

  const close = (status?: { code: grpc.status; details: string }) => {
    if (!open) return;
    open = false;
    stream.abort();
    if (status) call.emit('error', status);
    else call.end();
  };

  const step = async (raw: DecodedOrNot) => {
    if (!open) return;
    try {
      const msg = decodeRequest(raw);
      // Also when no exporter is configured: the span handle still reads the incoming trace id.
      const span = tracing
        ? tracing.startServerSpan(`mesh.extproc.${msg.message.phase}`, {
            grpcMetadata: metadataCarrier(call),
            ...(msg.message.type === 'headers' && msg.message.phase === 'request_headers'
              ? { requestHeaders: msg.message.headers }
              : stream.requestHeaders
                ? { requestHeaders: stream.requestHeaders }
                : {}),
          }, first)
        : undefined;
      // Later phases of the exchange join the first phase's trace even when nothing was propagated.
      first ??= span;
      if (span?.traceId) stream.traceId ??= span.traceId;
      let out;
      try {
        out = await stream.handle(msg);
      } finally {
        const n = stream.note;
        if (span && n) {
          span.setAttributes({
            ...(n.domain ? { 'mesh.domain': n.domain } : {}),
            ...(n.tier ? { 'mesh.tier': n.tier } : {}),
            ...(n.role ? { 'mesh.agent.role': n.role } : {}),
            'mesh.decision': n.outcome,
            'mesh.reason': n.reason,
          });
        }
        span?.end();
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
    stream.abort();
  });
  call.on('error', () => {
    open = false;
    stream.abort();
  });
}
