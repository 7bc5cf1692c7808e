import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Metadata } from '@grpc/grpc-js';
import { createTracing, metadataCarrier, type Tracing } from '../../src/telemetry/tracing.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './otlp-receiver.js';

const SERVER = 2;
const INTERNAL = 1;

let rx: OtlpReceiver;
before(async () => {
  rx = await startOtlpReceiver();
});
after(async () => {
  await rx.close();
});

const id = (bytes: number) => randomBytes(bytes).toString('hex');

/** Runs `body` against a tracing instance for `protocol`, shuts it down (flushing), returns what arrived. */
async function exported(
  protocol: 'grpc' | 'http/protobuf' | 'http/json',
  body: (t: Tracing) => void,
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<ReceivedSpan[]> {
  const before = rx.spans.length;
  const tracing = createTracing({
    OTEL_EXPORTER_OTLP_ENDPOINT: protocol === 'grpc' ? rx.grpcUrl : rx.httpUrl,
    OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
    OTEL_SERVICE_NAME: 'mesh-pep-test',
    ...extraEnv,
  });
  assert.equal(tracing.enabled, true);
  body(tracing);
  await tracing.shutdown();
  return rx.spans.slice(before);
}

function one(spans: ReceivedSpan[], name: string): ReceivedSpan {
  const found = spans.filter((s) => s.name === name);
  assert.equal(found.length, 1, `expected one ${name}, got ${spans.map((s) => s.name).join(', ')}`);
  return found[0]!;
}

for (const protocol of ['http/protobuf', 'http/json', 'grpc'] as const) {
  test(`${protocol}: W3C traceparent in gRPC metadata is the parent; attributes and kind are exported`, async () => {
    const traceId = id(16);
    const parentId = id(8);
    let seenTraceId: string | undefined;
    const spans = await exported(protocol, (t) => {
      const span = t.startServerSpan('mesh.authz.check', {
        grpcMetadata: { traceparent: `00-${traceId}-${parentId}-01`, tracestate: 'envoy=1' },
        requestHeaders: new Map([['traceparent', `00-${id(16)}-${id(8)}-01`]]),
      });
      seenTraceId = span.traceId;
      span.setAttributes({
        'mesh.domain': 'RETRIEVAL',
        'mesh.tier': 'RETRIEVAL',
        'mesh.decision': 'allow',
        'mesh.reason': 'ok',
        'mesh.agent.role': 'retriever',
      });
      span.end();
    });
    const s = one(spans, 'mesh.authz.check');
    assert.equal(s.via, protocol);
    assert.equal(s.traceId, traceId);
    assert.equal(seenTraceId, traceId);
    assert.equal(s.parentSpanId, parentId);
    assert.equal(s.kind, SERVER);
    assert.equal(s.traceState, 'envoy=1');
    assert.deepEqual(s.attributes, {
      'mesh.domain': 'RETRIEVAL',
      'mesh.tier': 'RETRIEVAL',
      'mesh.decision': 'allow',
      'mesh.reason': 'ok',
      'mesh.agent.role': 'retriever',
    });
    assert.equal(s.resource['service.name'], 'mesh-pep-test');
  });
}

test('metadataCarrier turns real grpc-js Metadata into a carrier (B3 single in metadata)', async () => {
  const traceId = id(16);
  const parentId = id(8);
  const md = new Metadata();
  md.set('B3', `${traceId}-${parentId}-1`);
  md.set('trace-bin', Buffer.from([1, 2, 3]));
  const carrier = metadataCarrier(md);
  assert.deepEqual(Object.keys(carrier), ['b3']);
  const spans = await exported('http/protobuf', (t) => t.startServerSpan('mesh.authz.check', { grpcMetadata: carrier }).end());
  const s = one(spans, 'mesh.authz.check');
  assert.equal(s.traceId, traceId);
  assert.equal(s.parentSpanId, parentId);
});

test('without trace context in the metadata, the checked request headers give the parent (W3C)', async () => {
  const traceId = id(16);
  const parentId = id(8);
  const spans = await exported('http/protobuf', (t) => {
    t.startServerSpan('mesh.authz.check', {
      grpcMetadata: { 'content-type': 'application/grpc' },
      requestHeaders: new Map([['traceparent', `00-${traceId}-${parentId}-01`]]),
    }).end();
  });
  const s = one(spans, 'mesh.authz.check');
  assert.equal(s.traceId, traceId);
  assert.equal(s.parentSpanId, parentId);
});

test('B3 single header (request headers) is the parent; B3 single unsampled exports nothing', async () => {
  const traceId = id(16);
  const parentId = id(8);
  const unsampledTrace = id(16);
  let unsampledSeen: string | undefined;
  const spans = await exported('http/json', (t) => {
    t.startServerSpan('mesh.authz.check', { grpcMetadata: {}, requestHeaders: new Map([['b3', `${traceId}-${parentId}-1`]]) }).end();
    const u = t.startServerSpan('mesh.extproc.stream', { grpcMetadata: {}, requestHeaders: new Map([['b3', `${unsampledTrace}-${id(8)}-0`]]) });
    unsampledSeen = u.traceId;
    u.child('mesh.extproc.request_body').end();
    u.end();
  });
  const s = one(spans, 'mesh.authz.check');
  assert.equal(s.traceId, traceId);
  assert.equal(s.parentSpanId, parentId);
  assert.equal(spans.length, 1, 'the unsampled stream and its phase are not exported');
  // The trace id is still known, for the audit record.
  assert.equal(unsampledSeen, unsampledTrace);
});

test('B3 multi headers in gRPC metadata are the parent (64-bit ids padded); X-B3-Sampled: 0 exports nothing', async () => {
  const traceId64 = id(8);
  const parentId = id(8);
  const spans = await exported('grpc', (t) => {
    t.startServerSpan('mesh.authz.check', {
      grpcMetadata: new Map([
        ['x-b3-traceid', traceId64],
        ['x-b3-spanid', parentId],
        ['x-b3-sampled', '1'],
      ]),
    }).end();
    t.startServerSpan('mesh.authz.check', {
      grpcMetadata: new Map([
        ['x-b3-traceid', id(16)],
        ['x-b3-spanid', id(8)],
        ['x-b3-sampled', '0'],
      ]),
    }).end();
  });
  const s = one(spans, 'mesh.authz.check');
  assert.equal(s.traceId, '0000000000000000' + traceId64);
  assert.equal(s.parentSpanId, parentId);
});

test('W3C unsampled parent (flags 00) exports nothing; a sampled one in the same run does', async () => {
  const sampledTrace = id(16);
  const spans = await exported('http/protobuf', (t) => {
    t.startServerSpan('mesh.authz.check', { grpcMetadata: { traceparent: `00-${id(16)}-${id(8)}-00` } }).end();
    t.startServerSpan('mesh.authz.check', { grpcMetadata: { traceparent: `00-${sampledTrace}-${id(8)}-01` } }).end();
  });
  assert.equal(spans.length, 1);
  assert.equal(spans[0]!.traceId, sampledTrace);
});

test('an ext_proc stream is a SERVER span with one INTERNAL child per phase', async () => {
  const traceId = id(16);
  const spans = await exported('http/protobuf', (t) => {
    const stream = t.startServerSpan('mesh.extproc.stream', { grpcMetadata: { traceparent: `00-${traceId}-${id(8)}-01` } });
    for (const phase of ['request_headers', 'request_body', 'response_body']) {
      const c = stream.child(`mesh.extproc.${phase}`);
      c.setAttributes({ 'mesh.domain': 'COMPUTATION', 'mesh.tier': 'COMPUTATION', 'mesh.decision': 'transform' });
      c.end();
    }
    stream.end();
  });
  const stream = one(spans, 'mesh.extproc.stream');
  assert.equal(stream.kind, SERVER);
  for (const phase of ['request_headers', 'request_body', 'response_body']) {
    const c = one(spans, `mesh.extproc.${phase}`);
    assert.equal(c.kind, INTERNAL);
    assert.equal(c.traceId, traceId);
    assert.equal(c.parentSpanId, stream.spanId);
    assert.equal(c.attributes['mesh.decision'], 'transform');
  }
});

test('an explicit parent handle wins; a request without any context starts a new sampled root', async () => {
  const spans = await exported('http/protobuf', (t) => {
    const root = t.startServerSpan('mesh.extproc.stream', { grpcMetadata: {} });
    assert.match(root.traceId ?? '', /^[0-9a-f]{32}$/);
    t.startServerSpan('mesh.extproc.nested', { grpcMetadata: { traceparent: `00-${id(16)}-${id(8)}-01` } }, root).end();
    root.end();
  });
  const root = one(spans, 'mesh.extproc.stream');
  assert.equal(root.parentSpanId, '');
  const nested = one(spans, 'mesh.extproc.nested');
  assert.equal(nested.traceId, root.traceId);
  assert.equal(nested.parentSpanId, root.spanId);
});

test('OTEL_EXPORTER_OTLP_HEADERS are sent; OTEL_TRACES_SAMPLER=always_off exports nothing', async () => {
  const seen = rx.httpHeaders.length;
  const spans = await exported(
    'http/protobuf',
    (t) => t.startServerSpan('mesh.authz.check', { grpcMetadata: {} }).end(),
    { OTEL_EXPORTER_OTLP_HEADERS: 'x-collector-tenant=mesh%20a' },
  );
  assert.equal(spans.length, 1);
  assert.ok(rx.httpHeaders.slice(seen).some((h) => h['x-collector-tenant'] === 'mesh a'));
  const none = await exported(
    'http/protobuf',
    (t) => t.startServerSpan('mesh.authz.check', { grpcMetadata: {} }).end(),
    { OTEL_TRACES_SAMPLER: 'always_off' },
  );
  assert.equal(none.length, 0);
});

test('nothing configured is a no-op that still reads the incoming trace id for audit records', async () => {
  for (const env of [{}, { OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: rx.httpUrl }, { OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: rx.httpUrl }]) {
    const before = rx.spans.length;
    const t = createTracing(env);
    assert.equal(t.enabled, false);
    const traceId = id(16);
    const s = t.startServerSpan('mesh.authz.check', { grpcMetadata: {}, requestHeaders: new Map([['traceparent', `00-${traceId}-${id(8)}-01`]]) });
    s.setAttributes({ 'mesh.decision': 'allow' });
    assert.equal(s.traceId, traceId);
    assert.equal(s.child('mesh.extproc.request_body').traceId, traceId);
    s.end();
    assert.equal(t.startServerSpan('mesh.authz.check', { grpcMetadata: {} }).traceId, undefined);
    await t.shutdown();
    assert.equal(rx.spans.length, before);
  }
});

test('invalid OTEL values fail at startup with the variable named', () => {
  assert.throws(() => createTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1', OTEL_EXPORTER_OTLP_PROTOCOL: 'thrift' }), /OTEL_EXPORTER_OTLP_PROTOCOL/);
  assert.throws(() => createTracing({ OTEL_TRACES_EXPORTER: 'zipkin' }), /OTEL_TRACES_EXPORTER/);
  assert.throws(() => createTracing({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_TRACES_SAMPLER: 'sometimes' }), /OTEL_TRACES_SAMPLER/);
  assert.throws(() => createTracing({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' }), /OTEL_TRACES_SAMPLER_ARG/);
});
