/**
 * Tracing through a real Envoy 1.40 into a real Jaeger (v1.75.0, in-memory): Envoy's OpenTelemetry
 * tracer (configured in the shipped envoy/envoy.yaml) and mesh-pep (standard OTEL_* variables) both
 * export OTLP to Jaeger, and the test reads the trace back from Jaeger's query API.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { loadPolicyFile } from '../src/config/load.js';
import { mintPolicyToken } from '../src/identity/dev-issuer.js';
import { ensureEnvoy } from '../tools/envoy/binary.js';
import { startTracedStack, type TracedStack } from '../tools/envoy/stack.js';
import { ensureJaeger } from '../tools/jaeger/binary.js';
import { parentOf, serviceOf, tag, type JaegerSpan, type JaegerTrace } from '../tools/jaeger/process.js';

const ENVOY_SERVICE = 'envoy-agents-ingress'; // service_name of the tracer in envoy/envoy.yaml
let stack: TracedStack;
let retrieverToken: string;
let orchestratorToken: string;

before(async () => {
  const [envoy, jaeger] = await Promise.all([ensureEnvoy(), ensureJaeger()]);
  stack = await startTracedStack({ envoyBinary: envoy.path, jaegerBinary: jaeger.path });
  const { policy } = await loadPolicyFile(stack.policyFile);
  retrieverToken = await mintPolicyToken(policy, { agentId: 'retriever-7', role: 'RETRIEVER', ttlMs: 600_000 });
  orchestratorToken = await mintPolicyToken(policy, { agentId: 'orchestrator-1', role: 'ORCHESTRATOR', ttlMs: 600_000 });
});

after(async () => {
  await stack?.stop();
});

/** A client span context of our own, so the test knows the trace id Envoy continues. */
function traceparent(): { traceId: string; header: string } {
  const traceId = randomBytes(16).toString('hex');
  return { traceId, header: `00-${traceId}-${randomBytes(8).toString('hex')}-01` };
}

const named = (t: JaegerTrace, name: string) => t.spans.filter((s) => s.operationName === name);
const one = (t: JaegerTrace, name: string): JaegerSpan => {
  const found = named(t, name);
  assert.equal(found.length, 1, `exactly one ${name} span; the trace holds: ${describe(t)}`);
  return found[0]!;
};
function describe(t: JaegerTrace): string {
  return t.spans.map((s) => `${serviceOf(t, s)}:${s.operationName}(${s.spanID}<-${s.references[0]?.spanID ?? 'root'})`).join(', ');
}

/** Envoy's client span for its gRPC call to mesh-pep: the parent of mesh-pep's SERVER span. */
function envoyParent(t: JaegerTrace, span: JaegerSpan, grpcMethod: string): JaegerSpan {
  const parent = parentOf(t, span);
  assert.ok(parent, `${span.operationName} has a parent span in the trace: ${describe(t)}`);
  assert.equal(serviceOf(t, parent), ENVOY_SERVICE, `${span.operationName}'s parent is Envoy's span: ${describe(t)}`);
  assert.ok(parent.operationName.includes(grpcMethod), `${span.operationName}'s parent is Envoy's ${grpcMethod} call, got "${parent.operationName}"`);
  return parent;
}

test('one Jaeger trace holds Envoy\'s spans and mesh-pep\'s Check and ext_proc spans, each a child of Envoy\'s span for that call', async () => {
  const tp = traceparent();
  const note = JSON.stringify({ note: 'supplier contract renews in March' });
  const res = await fetch(`${stack.url}/memory/items/trace-1`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${retrieverToken}`, 'content-type': 'application/json', traceparent: tp.header },
    body: note,
  });
  assert.equal(res.status, 201, await res.text());
  const phases = ['request_headers', 'request_body', 'response_headers', 'response_body'].map((p) => `mesh.extproc.${p}`);
  const t = await stack.jaeger.waitForTrace(tp.traceId, (x) =>
    named(x, 'mesh.authz.check').length > 0 &&
    phases.every((p) => named(x, p).length > 0) &&
    x.spans.some((s) => serviceOf(x, s) === ENVOY_SERVICE && s.operationName === 'agent_memory') &&
    x.spans.some((s) => s.operationName.includes('Authorization.Check')) &&
    x.spans.some((s) => s.operationName.includes('ExternalProcessor.Process')),
  );

  // Envoy's own spans: the ingress span named by the route's decorator, continuing the client's trace.
  const ingress = one(t, 'agent_memory');
  assert.equal(serviceOf(t, ingress), ENVOY_SERVICE);
  assert.equal(ingress.traceID, tp.traceId);

  // Check: a SERVER span of mesh-pep under Envoy's ext_authz gRPC call, itself under the ingress span.
  const check = one(t, 'mesh.authz.check');
  assert.equal(serviceOf(t, check), 'mesh-pep');
  const authzCall = envoyParent(t, check, 'envoy.service.auth.v3.Authorization.Check');
  assert.equal(parentOf(t, authzCall)?.spanID, ingress.spanID, describe(t));
  assert.equal(tag(check, 'span.kind'), 'server');
  assert.equal(tag(check, 'mesh.domain'), 'agent_memory');
  assert.equal(tag(check, 'mesh.tier'), 'RETRIEVAL');
  assert.equal(tag(check, 'mesh.decision'), 'allow');
  assert.equal(tag(check, 'mesh.reason'), 'ok');
  assert.equal(tag(check, 'mesh.agent.role'), 'RETRIEVER');

  // ext_proc: the stream span under Envoy's ext_proc gRPC call, one child per phase Envoy sent.
  const stream = one(t, 'mesh.extproc.stream');
  assert.equal(serviceOf(t, stream), 'mesh-pep');
  const procCall = envoyParent(t, stream, 'envoy.service.ext_proc.v3.ExternalProcessor.Process');
  assert.equal(parentOf(t, procCall)?.spanID, ingress.spanID, describe(t));
  for (const p of phases) {
    const span = one(t, p);
    assert.equal(serviceOf(t, span), 'mesh-pep');
    assert.equal(parentOf(t, span)?.spanID, stream.spanID, `${p} is a child of the stream span: ${describe(t)}`);
    assert.equal(tag(span, 'mesh.domain'), 'agent_memory', p);
    assert.equal(tag(span, 'mesh.tier'), 'RETRIEVAL', p);
  }
  assert.equal(tag(one(t, 'mesh.extproc.request_body'), 'mesh.decision'), 'transform');

  // Nothing secret in any span: not the credential, not the body, not the agent id of a masking domain.
  const everything = JSON.stringify(t);
  assert.ok(!everything.includes(retrieverToken.split('.')[2]!), 'no credential in the trace');
  assert.ok(!everything.includes('supplier contract'), 'no payload in the trace');
  assert.ok(!everything.includes('retriever-7'), 'no agent id of a masking domain in the trace');
});

test('a Check deny is a mesh-pep span with its reason under Envoy\'s ext_authz span; ext_proc sees only the local reply', async () => {
  const tp = traceparent();
  const res = await fetch(`${stack.url}/coordination/tasks`, { method: 'POST', headers: { traceparent: tp.header, 'content-type': 'application/json' }, body: '{}' });
  const denyBody = await res.text();
  assert.equal(res.status, 401, `${res.headers.get('x-mesh-reason')} ${denyBody}`);
  assert.equal(res.headers.get('x-mesh-reason'), 'missing_credential');
  const t = await stack.jaeger.waitForTrace(tp.traceId, (x) =>
    named(x, 'mesh.authz.check').length > 0 && named(x, 'coordination').length > 0 && x.spans.some((s) => s.operationName.includes('Authorization.Check')),
  );
  const check = one(t, 'mesh.authz.check');
  envoyParent(t, check, 'envoy.service.auth.v3.Authorization.Check');
  assert.equal(tag(check, 'mesh.decision'), 'deny');
  assert.equal(tag(check, 'mesh.reason'), 'missing_credential');
  assert.equal(tag(check, 'mesh.domain'), 'coordination');
  // The local reply is Envoy's: its ingress span records the 401 mesh-pep chose.
  assert.equal(String(tag(one(t, 'coordination'), 'http.status_code')), '401');
  // Real Envoy runs its local reply through the ext_proc filter's response path: mesh-pep sees the
  // response phases only (under Envoy's Process span), never the request that was denied.
  assert.equal(named(t, 'mesh.extproc.request_headers').length + named(t, 'mesh.extproc.request_body').length, 0, describe(t));
  for (const s of named(t, 'mesh.extproc.stream')) envoyParent(t, s, 'envoy.service.ext_proc.v3.ExternalProcessor.Process');
});

test('an allowed coordination call: the callee receives the trace context, and Check records the caller\'s role', async () => {
  const tp = traceparent();
  const res = await fetch(`${stack.url}/coordination/tasks`, {
    method: 'POST',
    headers: { authorization: `Bearer ${orchestratorToken}`, 'content-type': 'application/json', traceparent: tp.header },
    body: JSON.stringify({ task: 'plan' }),
  });
  assert.equal(res.status, 200);
  const echo = (await res.json()) as { received: { headers: Record<string, string> } };
  // Envoy forwards its own upstream span as the callee's parent: the same trace id reaches the agent.
  assert.equal(echo.received.headers.traceparent?.split('-')[1], tp.traceId);
  // Envoy and mesh-pep export in their own batches: wait for both sides' spans.
  const t = await stack.jaeger.waitForTrace(tp.traceId, (x) =>
    named(x, 'mesh.authz.check').length > 0 &&
    named(x, 'mesh.extproc.stream').length > 0 &&
    named(x, 'coordination').length > 0 &&
    x.spans.some((s) => s.operationName.includes('ExternalProcessor.Process')),
  );
  const check = one(t, 'mesh.authz.check');
  envoyParent(t, check, 'envoy.service.auth.v3.Authorization.Check');
  assert.equal(tag(check, 'mesh.agent.role'), 'ORCHESTRATOR');
  assert.equal(tag(check, 'mesh.decision'), 'allow');
  envoyParent(t, one(t, 'mesh.extproc.stream'), 'envoy.service.ext_proc.v3.ExternalProcessor.Process');
});
