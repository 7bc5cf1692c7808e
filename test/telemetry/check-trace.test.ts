import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { Metadata } from '@grpc/grpc-js';
import { startServer, type RunningServer } from '../../src/server/start.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { createTracing } from '../../src/telemetry/tracing.js';
import { CheckClient, envoyCheckRequest, setHeaders } from '../support/envoy-check.js';
import { createMeshFixture, type MeshFixture } from '../support/mesh-fixture.js';
import { startOtlpReceiver, type OtlpReceiver } from './otlp-receiver.js';

let rx: OtlpReceiver;
let fx: MeshFixture;
let server: RunningServer;
let client: CheckClient;

before(async () => {
  rx = await startOtlpReceiver();
  fx = await createMeshFixture();
  const tracing = createTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: rx.httpUrl, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf', OTEL_SERVICE_NAME: 'mesh-pep' });
  server = await startServer({ configFile: fx.policyFile, grpcAddress: '127.0.0.1:0', adminAddress: '127.0.0.1:0', log: createLogger('silent'), tracing });
  client = new CheckClient(`127.0.0.1:${server.grpcPort}`);
});
after(async () => {
  client.close();
  await server.close();
  await rx.close();
  await fx.cleanup();
});

const hex = (n: number) => randomBytes(n).toString('hex');

test('a Check joins the trace Envoy propagates in the gRPC metadata, and the audit record carries its trace id', async () => {
  const traceId = hex(16);
  const parent = hex(8);
  const md = new Metadata();
  md.set('traceparent', `00-${traceId}-${parent}-01`);
  const token = await fx.token({ agent: 'r', role: 'RETRIEVER' });
  // The checked request's own B3 headers (a different trace) must lose to the call's metadata.
  const res = await client.check(envoyCheckRequest({ domain: 'agent_memory', token }), md);
  assert.equal(res.status.code, 0);
  const denied = await client.check(envoyCheckRequest({ domain: 'coordination', token }), md);
  assert.equal(denied.status.code, 7);
  await server.runtime.tracing.forceFlush();
  const spans = rx.spans.filter((s) => s.traceId === traceId && s.name === 'mesh.authz.check');
  assert.equal(spans.length, 2);
  for (const s of spans) {
    assert.equal(s.parentSpanId, parent);
    assert.equal(s.kind, 2, 'SERVER span');
  }
  const allow = spans.find((s) => s.attributes['mesh.decision'] === 'allow')!;
  assert.deepEqual(
    { d: allow.attributes['mesh.domain'], t: allow.attributes['mesh.tier'], r: allow.attributes['mesh.reason'], role: allow.attributes['mesh.agent.role'] },
    { d: 'agent_memory', t: 'RETRIEVAL', r: 'ok', role: 'RETRIEVER' },
  );
  assert.equal(spans.find((s) => s.attributes['mesh.decision'] === 'deny')!.attributes['mesh.reason'], 'role_not_allowed');
  const id = setHeaders(res).get('x-mesh-decision-id');
  const audit = (await readFile(fx.policy.audit.file, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(audit.find((r) => r.decision_id === id).trace_id, traceId);
});

test('without metadata, the trace context in the checked request headers (B3) is the parent', async () => {
  const token = await fx.token({ agent: 'r', role: 'RETRIEVER' });
  const traceId = hex(16);
  const spanId = hex(8);
  const req = envoyCheckRequest({ domain: 'agent_memory', token, bare: true, headers: { 'x-b3-traceid': traceId, 'x-b3-spanid': spanId, 'x-b3-sampled': '1' } });
  assert.equal((await client.check(req)).status.code, 0);
  await server.runtime.tracing.forceFlush();
  const span = rx.spans.find((s) => s.traceId === traceId);
  assert.ok(span, 'span exported in the request trace');
  assert.equal(span.parentSpanId, spanId);
});

test('an unsampled parent exports nothing but still records its trace id', async () => {
  const traceId = hex(16);
  const md = new Metadata();
  md.set('traceparent', `00-${traceId}-${hex(8)}-00`);
  const token = await fx.token({ agent: 'r', role: 'RETRIEVER' });
  const res = await client.check(envoyCheckRequest({ domain: 'agent_memory', token }), md);
  await server.runtime.tracing.forceFlush();
  assert.equal(rx.spans.filter((s) => s.traceId === traceId).length, 0);
  const id = setHeaders(res).get('x-mesh-decision-id');
  const audit = (await readFile(fx.policy.audit.file, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(audit.find((r) => r.decision_id === id).trace_id, traceId);
});
