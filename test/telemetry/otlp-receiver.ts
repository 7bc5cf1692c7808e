import * as grpc from '@grpc/grpc-js';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import protobuf from 'protobufjs';

/**
 * An in-process OTLP trace receiver for tests: OTLP/HTTP (protobuf and JSON) on one HTTP port and
 * OTLP/gRPC on another. Protobuf is decoded with protobufjs from the OTLP schema below (the fields of
 * opentelemetry-proto's trace.proto, common.proto, resource.proto and trace_service.proto that the
 * tests read; unknown fields are skipped by the decoder) — independent of the exporter's own encoder.
 */
const OTLP_PROTO = `
syntax = "proto3";
package opentelemetry.proto;
message AnyValue {
  oneof value {
    string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4;
    ArrayValue array_value = 5; KeyValueList kvlist_value = 6; bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
message KeyValue { string key = 1; AnyValue value = 2; }
message InstrumentationScope { string name = 1; string version = 2; repeated KeyValue attributes = 3; uint32 dropped_attributes_count = 4; }
message Resource { repeated KeyValue attributes = 1; uint32 dropped_attributes_count = 2; }
message Status { string message = 2; int32 code = 3; }
message Span {
  bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; bytes parent_span_id = 4; fixed32 flags = 16;
  string name = 5; int32 kind = 6; fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8;
  repeated KeyValue attributes = 9; uint32 dropped_attributes_count = 10; Status status = 15;
}
message ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; string schema_url = 3; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; string schema_url = 3; }
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
`;

const root = protobuf.parse(OTLP_PROTO, { keepCase: true }).root;
const ExportRequest = root.lookupType('opentelemetry.proto.ExportTraceServiceRequest');

export interface ReceivedSpan {
  name: string;
  /** OTLP SpanKind: 1 INTERNAL, 2 SERVER. */
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string;
  attributes: Record<string, string | number | boolean>;
  resource: Record<string, string | number | boolean>;
  via: 'http/protobuf' | 'http/json' | 'grpc';
}

interface RawKeyValue {
  key: string;
  value?: Record<string, unknown>;
}

function hex(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v.toLowerCase(); // OTLP/JSON carries ids as hex strings
  return Buffer.from(v as Uint8Array).toString('hex');
}

function attrs(list: readonly RawKeyValue[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of list ?? []) {
    const v = kv.value ?? {};
    const s = v.string_value ?? v.stringValue;
    const b = v.bool_value ?? v.boolValue;
    const i = v.int_value ?? v.intValue;
    const d = v.double_value ?? v.doubleValue;
    if (s !== undefined) out[kv.key] = String(s);
    else if (b !== undefined) out[kv.key] = Boolean(b);
    else if (i !== undefined) out[kv.key] = Number(i);
    else if (d !== undefined) out[kv.key] = Number(d);
  }
  return out;
}

/** Accepts both the protobufjs object (snake_case, keepCase) and OTLP/JSON (lowerCamelCase). */
function flatten(req: Record<string, unknown>, via: ReceivedSpan['via']): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  const rss = (req.resource_spans ?? req.resourceSpans ?? []) as Array<Record<string, unknown>>;
  for (const rs of rss) {
    const resource = attrs((rs.resource as { attributes?: RawKeyValue[] } | undefined)?.attributes);
    for (const ss of (rs.scope_spans ?? rs.scopeSpans ?? []) as Array<Record<string, unknown>>) {
      for (const s of (ss.spans ?? []) as Array<Record<string, unknown>>) {
        out.push({
          name: String(s.name),
          kind: Number(s.kind ?? 0),
          traceId: hex(s.trace_id ?? s.traceId),
          spanId: hex(s.span_id ?? s.spanId),
          parentSpanId: hex(s.parent_span_id ?? s.parentSpanId),
          traceState: String(s.trace_state ?? s.traceState ?? ''),
          attributes: attrs(s.attributes as RawKeyValue[] | undefined),
          resource,
          via,
        });
      }
    }
  }
  return out;
}

function decodeProtobuf(buf: Uint8Array, via: ReceivedSpan['via']): ReceivedSpan[] {
  const msg = ExportRequest.decode(buf);
  return flatten(ExportRequest.toObject(msg, { longs: String, defaults: false }) as Record<string, unknown>, via);
}

export interface OtlpReceiver {
  httpUrl: string;
  grpcUrl: string;
  spans: ReceivedSpan[];
  /** Request headers of every OTLP/HTTP export, to check OTEL_EXPORTER_OTLP_HEADERS. */
  httpHeaders: Array<IncomingMessage['headers']>;
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const httpHeaders: Array<IncomingMessage['headers']> = [];

  const http: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      httpHeaders.push(req.headers);
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      const type = req.headers['content-type'] ?? '';
      try {
        if (type.startsWith('application/x-protobuf')) {
          spans.push(...decodeProtobuf(body, 'http/protobuf'));
          res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
        } else if (type.startsWith('application/json')) {
          spans.push(...flatten(JSON.parse(body.toString('utf8')) as Record<string, unknown>, 'http/json'));
          res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        } else {
          res.writeHead(415).end();
        }
      } catch {
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));

  const grpcServer = new grpc.Server();
  grpcServer.addService(
    {
      Export: {
        path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
        requestStream: false,
        responseStream: false,
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => b,
        // An empty ExportTraceServiceResponse encodes to zero bytes.
        responseSerialize: () => Buffer.alloc(0),
        responseDeserialize: (b: Buffer) => b,
      },
    },
    {
      Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        spans.push(...decodeProtobuf(call.request, 'grpc'));
        cb(null, Buffer.alloc(0));
      },
    },
  );
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );

  return {
    httpUrl: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    grpcUrl: `http://127.0.0.1:${grpcPort}`,
    spans,
    httpHeaders,
    close: async () => {
      const closed = new Promise<void>((resolve) => http.close(() => resolve()));
      http.closeAllConnections();
      await closed;
      await new Promise<void>((resolve) => grpcServer.tryShutdown(() => resolve()));
    },
  };
}
