import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { startServer, type RunningServer } from '../../src/server/start.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { createTracing } from '../../src/telemetry/tracing.js';
import { EnvoyPeer } from '../support/envoy-peer.js';
import { boundMetadata, MemoryStore, put } from '../support/extproc-server.js';
import { createMeshFixture, type MeshFixture } from '../support/mesh-fixture.js';
import { startOtlpReceiver, type OtlpReceiver } from './otlp-receiver.js';

let rx: OtlpReceiver;
let fx: MeshFixture;
let server: RunningServer;

before(async () => {
  rx = await startOtlpReceiver();
  fx = await createMeshFixture();
  const tracing = createTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: rx.grpcUrl, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_SERVICE_NAME: 'mesh-pep' });
  server = await startServer({ configFile: fx.policyFile, grpcAddress: '127.0.0.1:0', adminAddress: '127.0.0.1:0', log: createLogger('silent'), tracing });
});
after(async () => {
  await server.close();
  await rx.close();
  await fx.cleanup();
});

test('an ext_proc stream is one SERVER span in Envoy\'s trace with an INTERNAL child per phase', async () => {
  const traceId = randomBytes(16).toString('hex');
  const parent = randomBytes(8).toString('hex');
  const peer = new EnvoyPeer({
    address: `127.0.0.1:${server.grpcPort}`,
    mode: { requestBody: 'BUFFERED', responseBody: 'BUFFERED' },
    allowEnvoy: true,
    callMetadata: { traceparent: `00-${traceId}-${parent}-01` },
    authzMetadata: boundMetadata({ domain: 'agent_memory', tier: 'RETRIEVAL', role: 'RETRIEVER', decision_id: 'dec-trace-1', agent_pseudonym: 'ap_t' }, { key: server.runtime.pseudonyms.bindingKey() }),
  });
  const store = new MemoryStore();
  const res = await peer.exchange(put('/v1/memory/t1', Buffer.from('{"note":"x"}'), 'application/json'), store.handle);
  peer.close();
  assert.equal(res.kind, 'upstream');
  await server.runtime.tracing.forceFlush();
  const spans = rx.spans.filter((s) => s.traceId === traceId);
  const streamSpan = spans.find((s) => s.name === 'mesh.extproc.stream');
  assert.ok(streamSpan, `stream span in ${spans.map((s) => s.name).join(', ')}`);
  assert.equal(streamSpan.kind, 2);
  assert.equal(streamSpan.parentSpanId, parent);
  assert.equal(streamSpan.attributes['mesh.domain'], 'agent_memory');
  assert.equal(streamSpan.attributes['mesh.tier'], 'RETRIEVAL');
  const phases = spans.filter((s) => s.parentSpanId === streamSpan.spanId).map((s) => s.name).sort();
  // The store answers 204 without a body, so Envoy sends no response_body message.
  assert.deepEqual(phases, ['mesh.extproc.request_body', 'mesh.extproc.request_headers', 'mesh.extproc.response_headers']);
  for (const s of spans.filter((x) => x.parentSpanId === streamSpan.spanId)) assert.equal(s.kind, 1, `${s.name} INTERNAL`);
  const body = spans.find((s) => s.name === 'mesh.extproc.request_body')!;
  assert.equal(body.attributes['mesh.decision'], 'transform');
  const audit = (await readFile(fx.policy.audit.file, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  const rec = audit.find((r) => r.event === 'extproc.request_body' && r.decision_id === 'dec-trace-1');
  assert.ok(rec, 'payload transformation audited');
  assert.equal(rec.trace_id, traceId);
  assert.match(rec.payload_sha256, /^[0-9a-f]{64}$/);
});
