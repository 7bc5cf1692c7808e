/**
 * Allowed calls through Envoy 1.40: exactly the header set the callee receives (no credential, no
 * topology, the pseudonym, no Check-to-ext_proc helper header), client-spoofed x-agent-* and x-mesh-*
 * headers, and the topology headers on the way back, including the ones Envoy adds itself.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { httpFilter, type RunningEnvoy } from '../tools/envoy/index.js';
import { h1, h2 } from './support/client.js';
import { bearer, startStack, type Stack } from './support/stack.js';
import { UPSTREAM_TOPOLOGY, type Received } from './support/upstream.js';

let s: Stack;
let serviceTimeEnvoy: RunningEnvoy;

before(async () => {
  s = await startStack();
  // A deliberate change for one case: the shipped router suppresses Envoy's own x-envoy-* response
  // headers; with it off, Envoy adds x-envoy-upstream-service-time, which mesh-pep must mask.
  serviceTimeEnvoy = await s.extraEnvoy((cfg) => {
    httpFilter(cfg, 'envoy.filters.http.router').suppress_envoy_headers = false;
  });
});

after(async () => {
  await s?.stop();
});

/** What a client, a proxy in front of it, and an attacker put on the request. */
const SPOOFED = {
  'x-agent-id': 'root',
  'x-agent-role': 'ADMIN',
  'x-agent-pseudonym': 'ap_forged',
  'x-mesh-domain': 'financial_models',
  'x-mesh-tier': 'FORGED-TIER',
  'x-mesh-decision-id': 'forged-decision',
  'x-mesh-binding': 'v1.forged.forged',
  'x-mesh-protected': 'FORGED-PROTECTION',
  'x-mesh-anything': 'forged-extra',
  'x-agent-delegation-depth': '9',
};
const TOPOLOGY = {
  'x-forwarded-for': '10.1.2.3',
  'x-real-ip': '10.9.9.9',
  forwarded: 'for=10.0.0.1',
  via: '1.1 client-proxy',
  'user-agent': 'agent-sdk/2.0',
  'x-envoy-peer-metadata': 'c29tZQ==',
  'x-envoy-peer-metadata-id': 'sidecar~10.0.0.1~pod',
  'x-internal-id': 'node-17',
  'x-sender-ip': '10.0.0.7',
  'x-routing-path': 'a>b>c',
  'x-timestamp': '1700000000',
};

/** Headers Envoy itself puts on every upstream request of the shipped config (tracing, request id). */
const ENVOY_ADDS = ['host', 'traceparent', 'tracestate', 'x-forwarded-proto', 'x-request-id'];

const names = (r: Received) => [...new Set(r.rawHeaders.map(([n]) => n))].sort();
const one = (r: Received, name: string) => r.rawHeaders.filter(([n]) => n === name).map(([, v]) => v);

async function storeCall(client: typeof h1, agent: string): Promise<Received> {
  const token = await s.token(agent, 'ORCHESTRATOR');
  const mark = s.upstream.received.length;
  const body = JSON.stringify({ note: 'remember the plan' });
  const res = await client(s.port, { method: 'PUT', path: `/memory/store/${agent}`, headers: { ...bearer(token), 'content-type': 'application/json', ...SPOOFED, ...TOPOLOGY }, body });
  assert.equal(res.status, 201, res.text());
  const got = s.upstream.since(mark);
  assert.equal(got.length, 1);
  return got[0]!;
}

for (const [label, client] of [['HTTP/1.1', h1], ['HTTP/2', h2]] as const) {
  test(`masking domain over ${label}: exactly the expected header set reaches the callee`, async () => {
    const got = await storeCall(client, `planner-${label === 'HTTP/2' ? 2 : 1}`);
    assert.deepEqual(
      names(got),
      [...ENVOY_ADDS, 'content-length', 'content-type', 'x-agent-pseudonym', 'x-agent-role', 'x-mesh-decision-id', 'x-mesh-domain', 'x-mesh-protected', 'x-mesh-tier'].sort(),
      JSON.stringify(got.rawHeaders),
    );
    // Each set once, with Check's values: the spoofed ones are gone, not appended to.
    assert.deepEqual(one(got, 'x-agent-role'), ['ORCHESTRATOR']);
    assert.deepEqual(one(got, 'x-mesh-domain'), ['agent_memory']);
    assert.deepEqual(one(got, 'x-mesh-tier'), ['RETRIEVAL']);
    assert.deepEqual(one(got, 'x-mesh-protected'), ['RETRIEVAL']);
    assert.equal(one(got, 'x-agent-pseudonym').length, 1);
    assert.match(one(got, 'x-agent-pseudonym')[0]!, /^ap_[0-9a-f]{32}$/);
    assert.notEqual(one(got, 'x-mesh-decision-id')[0], SPOOFED['x-mesh-decision-id']);
    assert.deepEqual(one(got, 'content-type'), ['application/jose']);
    assert.deepEqual(one(got, 'content-length'), [String(got.body.length)]);
    for (const v of Object.values({ ...SPOOFED, ...TOPOLOGY })) {
      if (v.length < 3) continue;
      assert.ok(!got.rawHeaders.some(([, x]) => x.includes(v)), `spoofed or topology value ${v} reached the callee`);
    }
  });
}

test('the pseudonym is stable per agent and differs between agents; the agent id never appears', async () => {
  const a1 = await storeCall(h1, 'retriever-a');
  const a2 = await storeCall(h2, 'retriever-a');
  const b = await storeCall(h1, 'retriever-b');
  assert.equal(one(a1, 'x-agent-pseudonym')[0], one(a2, 'x-agent-pseudonym')[0]);
  assert.notEqual(one(a1, 'x-agent-pseudonym')[0], one(b, 'x-agent-pseudonym')[0]);
  for (const r of [a1, a2, b]) assert.ok(!r.rawHeaders.some(([, v]) => v.includes('retriever-')), JSON.stringify(r.rawHeaders));
});

test('non-masking domain: the agent id, no credential, no helper header, spoofed x-agent-*/x-mesh-* replaced or removed', async () => {
  const token = await s.token('planner-9', 'EXECUTOR');
  const mark = s.upstream.received.length;
  const res = await h1(s.port, { method: 'POST', path: '/coordination/tasks', headers: { ...bearer(token), 'content-type': 'application/json', ...SPOOFED, 'user-agent': 'agent-sdk/2.0' }, body: '{"task":"plan"}' });
  assert.equal(res.status, 200, res.text());
  const got = s.upstream.since(mark)[0]!;
  assert.equal(got.url, '/tasks');
  assert.deepEqual(one(got, 'x-agent-id'), ['planner-9']);
  assert.deepEqual(one(got, 'x-agent-role'), ['EXECUTOR']);
  assert.deepEqual(one(got, 'x-mesh-domain'), ['coordination']);
  assert.deepEqual(one(got, 'x-agent-pseudonym'), []);
  assert.deepEqual(one(got, 'authorization'), []);
  assert.deepEqual(one(got, 'x-mesh-binding'), [], 'Check-to-ext_proc MAC reached the callee');
  // Not a masking domain: the client's own non-mesh headers pass, as Envoy forwards them.
  assert.deepEqual(one(got, 'user-agent'), ['agent-sdk/2.0']);
  // The caller gets its plaintext back: the echo returned the JWE and ext_proc opened it.
  assert.deepEqual(res.json(), { task: 'plan' });
  assert.match(res.headers['content-type'] ?? '', /^application\/json/);
});

test('a bodiless request: no spoofed x-agent-* or x-mesh-* header survives, whatever its name', async () => {
  const token = await s.token('planner-9', 'ORCHESTRATOR');
  const mark = s.upstream.received.length;
  const res = await h2(s.port, { method: 'GET', path: '/coordination/status', headers: { ...bearer(token), ...SPOOFED } });
  assert.equal(res.status, 200, res.text());
  const got = s.upstream.since(mark)[0]!;
  for (const [n, v] of got.rawHeaders) {
    if (n.startsWith('x-agent-') || n.startsWith('x-mesh-')) assert.ok(!Object.values(SPOOFED).includes(v), `${n}: ${v} survived`);
  }
  assert.deepEqual(names(got).filter((n) => n.startsWith('x-agent-') || n.startsWith('x-mesh-')), ['x-agent-id', 'x-agent-role', 'x-mesh-decision-id', 'x-mesh-domain', 'x-mesh-tier']);
});

test('masking domain responses: the callee\'s server, x-powered-by and via are removed; Envoy adds no decorator header', async () => {
  const token = await s.token('planner-1', 'ORCHESTRATOR');
  for (const client of [h1, h2]) {
    const res = await client(s.port, { method: 'PUT', path: '/memory/store/topology', headers: { ...bearer(token), 'content-type': 'text/plain' }, body: 'x' });
    assert.equal(res.status, 201);
    for (const h of [...Object.keys(UPSTREAM_TOPOLOGY), 'x-envoy-decorator-operation', 'x-envoy-upstream-service-time']) assert.equal(res.headers[h], undefined, `${h}: ${res.headers[h]}`);
  }
});

test('non-masking domain responses keep the callee\'s headers (masking is per domain)', async () => {
  const token = await s.token('planner-1', 'ORCHESTRATOR');
  const res = await h1(s.port, { method: 'POST', path: '/coordination/tasks', headers: { ...bearer(token), 'content-type': 'text/plain' }, body: 'y' });
  assert.equal(res.status, 200);
  assert.equal(res.headers.server, UPSTREAM_TOPOLOGY.server);
  assert.equal(res.headers['x-envoy-decorator-operation'], undefined, 'decorators are not propagated (propagate: false)');
});

test('x-envoy-upstream-service-time, added by Envoy\'s router itself, is masked in masking domains only', async () => {
  const token = await s.token('planner-1', 'ORCHESTRATOR');
  const port = serviceTimeEnvoy.port();
  const masked = await h1(port, { method: 'PUT', path: '/memory/store/svc-time', headers: { ...bearer(token), 'content-type': 'text/plain' }, body: 'z' });
  assert.equal(masked.status, 201);
  assert.equal(masked.headers['x-envoy-upstream-service-time'], undefined);
  assert.equal(masked.headers.server, undefined);
  const plain = await h1(port, { method: 'POST', path: '/coordination/tasks', headers: { ...bearer(token), 'content-type': 'text/plain' }, body: 'z' });
  assert.equal(plain.status, 200);
  assert.match(plain.headers['x-envoy-upstream-service-time'] ?? '', /^\d+$/, 'Envoy adds it where nothing masks it');
});
