/**
 * The chart's Istio wiring (issue 23, items 1, 2 and 7) through a real Envoy 1.40: the rendered EnvoyFilter
 * patches inside listeners shaped like istiod's (e2e/istio/sidecar.ts), mesh-pep with the chart's policy
 * behind its own sidecar Envoy, and a recording upstream.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { asObject, dig, type Json } from '../../test/deploy/support/repo.js';
import { combination } from '../../test/deploy/support/chart-combinations.js';
import { ensureEnvoy, freePort, startEnvoy, validateEnvoyConfig, type EnvoyBinary, type JsonObject, type RunningEnvoy } from '../../tools/envoy/index.js';
import { startChartPep, startRecordingUpstream, type ChartPep, type RecordingUpstream } from './pep.js';
import { chartObjects, envoyFilter, inboundBootstrap, outboundBootstrap, PEP_CLUSTER, PEP_FQDN } from './sidecar.js';

const RETRIEVER = 'retriever.agents.svc.cluster.local';
const OTHER = 'notes.other.svc.cluster.local';
const ORCHESTRATOR_SPIFFE = 'spiffe://cluster.local/ns/agents/sa/orchestrator';

let bin: EnvoyBinary;
before(async () => {
  bin = await ensureEnvoy();
});

function customPolicy(objects: Json[], name: string): Json {
  const p = objects.find((o) => o['kind'] === 'AuthorizationPolicy' && dig(o, 'metadata.name') === name);
  if (!p) throw new Error(`no AuthorizationPolicy ${name}`);
  return p;
}

/** A counter of the HCM, 0 when Envoy has not created it yet. */
async function counter(envoy: RunningEnvoy, name: string): Promise<number> {
  return (await envoy.stat(name)) ?? 0;
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  text(): string;
  json(): unknown;
}

/** One HTTP/1.1 request with the Host header the caller chooses (fetch does not let a caller set Host). */
function send(port: number, host: string, path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: init.method ?? 'GET', headers: { host, ...init.headers }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: () => body.toString(), json: () => JSON.parse(body.toString()) as unknown });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

function isJwe(body: Buffer): boolean {
  return /^[\w-]+\.[\w-]*\.[\w-]+\.[\w-]+\.[\w-]+$/.test(body.toString());
}

interface Rig {
  envoy: RunningEnvoy;
  pep: ChartPep;
  upstream: RecordingUpstream;
  stop(): Promise<void>;
}

async function rig(objects: Json[], bootstrap: (ports: { pep: number; pepSidecar: number; app: number }) => JsonObject): Promise<Rig> {
  const pep = await startChartPep(objects);
  const upstream = await startRecordingUpstream();
  try {
    const cfg = bootstrap({ pep: pep.pep.grpcPort, pepSidecar: await freePort(), app: upstream.port });
    await validateEnvoyConfig(bin.path, cfg);
    const envoy = await startEnvoy(cfg, { binary: bin.path });
    return {
      envoy,
      pep,
      upstream,
      stop: async () => {
        await envoy.stop();
        await pep.close();
        await upstream.close();
      },
    };
  } catch (e) {
    await pep.close();
    await upstream.close();
    throw e;
  }
}

describe('item 1: ext_proc reaches mesh-pep through a cluster named the Istio way', () => {
  let r: Rig;
  let objects: Json[];
  before(async () => {
    objects = chartObjects();
    r = await rig(objects, (ports) => inboundBootstrap({ ports, customPolicy: customPolicy(objects, 'mesh-pep-agents-retriever'), filter: envoyFilter(objects, 'mesh-pep-agents-retriever') }));
  });
  after(async () => r?.stop());

  it('with the rendered authority, Check and Process both answer: the stored body is a JWE, the credential is gone', async () => {
    const token = await r.pep.token({ agent: 'retriever-1', role: 'RETRIEVER' });
    const res = await send(r.envoy.port('virtualInbound'), `${RETRIEVER}:8080`, '/v1/memory/note-1', {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ note: 'supplier contract renews in March' }),
    });
    assert.equal(res.status, 201, `${res.text()}\n${await r.envoy.log()}`);
    const got = r.upstream.seen.at(-1)!;
    assert.equal(got.headers['content-type'], 'application/jose');
    assert.ok(isJwe(got.body), 'the callee stores ciphertext');
    assert.ok(!got.body.toString().includes('supplier'));
    assert.equal(got.headers.authorization, undefined);
    assert.equal(got.headers['x-mesh-domain'], 'agent_memory');
    // Read back through the same sidecar: the caller gets its plaintext.
    const back = await send(r.envoy.port('virtualInbound'), `${RETRIEVER}:8080`, '/v1/memory/note-1', { headers: { authorization: `Bearer ${token}` } });
    assert.equal(back.status, 200);
    assert.deepEqual(back.json(), { note: 'supplier contract renews in March' });
    // mesh-pep's sidecar saw the calls under the service name, not the cluster name.
    assert.ok((await counter(r.envoy, 'http.mesh_pep_inbound.downstream_rq_2xx')) >= 2);
  });

  it('without the authority, Envoy sends the cluster name as :authority and mesh-pep\'s sidecar refuses it: fail closed', async () => {
    const withAuthority = envoyFilter(objects, 'mesh-pep-agents-retriever');
    const stripped = structuredClone(withAuthority);
    const grpc = asObject(dig(stripped, 'spec.configPatches.0.patch.value.typed_config.grpc_service.envoy_grpc'), 'envoy_grpc');
    assert.equal(grpc['authority'], PEP_FQDN);
    delete grpc['authority'];
    const bare = await rig(objects, (ports) => inboundBootstrap({ ports, customPolicy: customPolicy(objects, 'mesh-pep-agents-retriever'), filter: stripped }));
    try {
      const token = await bare.pep.token({ agent: 'retriever-1', role: 'RETRIEVER' });
      const before = bare.upstream.seen.length;
      const res = await send(bare.envoy.port('virtualInbound'), `${RETRIEVER}:8080`, '/v1/memory/note-2', {
        method: 'PUT',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ note: 'must not reach the callee in plaintext' }),
      });
      // What Envoy 1.40 does: Check (Istio's ext_authz, which sets the authority) passes; the ext_proc stream
      // carries ":authority: outbound|9001||…", mesh-pep's sidecar closes the HTTP/2 connection as a protocol
      // error, ext_proc counts a failed stream and, failure_mode_allow being false, answers 500. Every
      // request would fail so in a cluster; closed, but broken.
      assert.equal(res.status, 500, res.text());
      assert.equal(bare.upstream.seen.length, before, 'nothing reaches the callee');
      assert.equal(await counter(bare.envoy, 'http.inbound_0.0.0.0_8080.ext_authz.ok'), 1);
      assert.equal(await counter(bare.envoy, 'http.inbound_0.0.0.0_8080.ext_proc.streams_failed'), 1);
      assert.ok((await counter(bare.envoy, 'http.mesh_pep_inbound.downstream_cx_protocol_error')) >= 1, await bare.envoy.log());
    } finally {
      await bare.stop();
    }
  });
});

describe('item 2: Check and ext_proc cover the same requests; an exempt path skips both', () => {
  let r: Rig;
  before(async () => {
    const objects = chartObjects(combination('outbound'));
    r = await rig(objects, (ports) => inboundBootstrap({ ports, customPolicy: customPolicy(objects, 'mesh-pep-agents-retriever'), filter: envoyFilter(objects, 'mesh-pep-agents-retriever') }));
  });
  after(async () => r?.stop());

  const stats = async () => ({
    checks: (await counter(r.envoy, 'http.inbound_0.0.0.0_8080.ext_authz.ok')) + (await counter(r.envoy, 'http.inbound_0.0.0.0_8080.ext_authz.denied')),
    streams: await counter(r.envoy, 'http.inbound_0.0.0.0_8080.ext_proc.streams_started'),
  });

  for (const path of ['/healthz', '/healthz?probe=kubelet', '/public/docs/readme']) {
    it(`${path} is exempt from both: no credential needed, no Check, no ext_proc stream, no mesh headers`, async () => {
      const before = await stats();
      const res = await send(r.envoy.port('virtualInbound'), `${RETRIEVER}:8080`, path);
      assert.equal(res.status, 200, await r.envoy.log());
      assert.equal(res.text(), 'upstream-ok');
      assert.deepEqual(await stats(), before);
      const got = r.upstream.seen.at(-1)!;
      assert.equal(got.url, path);
      assert.equal(Object.keys(got.headers).filter((h) => h.startsWith('x-mesh-')).length, 0);
    });
  }

  it('a path outside the exemptions gets both: Check denies without a credential; with one, Check and Process run', async () => {
    const before = await stats();
    const denied = await send(r.envoy.port('virtualInbound'), `${RETRIEVER}:8080`, '/healthzz');
    assert.equal(denied.status, 401, denied.text());
    assert.equal(denied.headers['x-mesh-reason'], 'missing_credential');
    const mid = await stats();
    assert.equal(mid.checks, before.checks + 1);
    const token = await r.pep.token({ agent: 'retriever-1', role: 'RETRIEVER' });
    const ok = await send(r.envoy.port('virtualInbound'), `${RETRIEVER}:8080`, '/v1/memory/x', {
      method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"a":1}',
    });
    assert.equal(ok.status, 201);
    const afterOk = await stats();
    assert.equal(afterOk.checks, mid.checks + 1);
    assert.ok(afterOk.streams > mid.streams, 'ext_proc ran for the checked request');
    assert.ok(isJwe(r.upstream.seen.at(-1)!.body));
  });
});

describe('item 7: caller-side protection on the calling agent\'s outbound listener', () => {
  let r: Rig;
  before(async () => {
    const objects = chartObjects(combination('outbound'));
    const filter = objects.find((o) => o['kind'] === 'EnvoyFilter' && String(dig(o, 'metadata.name')).startsWith('mesh-pep-out-'));
    assert.ok(filter);
    r = await rig(objects, (ports) => outboundBootstrap({ ports, filter, services: [RETRIEVER, OTHER] }));
  });
  after(async () => r?.stop());

  const out = (host: string, path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) =>
    send(r.envoy.port('virtualOutbound_8080'), `${host}:8080`, path, init);

  it('plaintext of a protected domain never leaves the caller: the destination receives a JWE, the caller reads plaintext back', async () => {
    const token = await r.pep.token({ agent: 'orchestrator-1', role: 'ORCHESTRATOR', spiffe: ORCHESTRATOR_SPIFFE });
    const put = await out(RETRIEVER, '/v1/memory/plan', { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"plan":"acquire supplier"}' });
    assert.equal(put.status, 201, `${put.text()}\n${await r.envoy.log()}`);
    const got = r.upstream.seen.at(-1)!;
    assert.ok(isJwe(got.body));
    assert.ok(!got.body.toString().includes('acquire'));
    assert.equal(got.headers.authorization, undefined, 'the credential does not leave the caller either');
    assert.equal(got.headers['x-mesh-domain'], 'agent_memory');
    const back = await out(RETRIEVER, '/v1/memory/plan', { headers: { authorization: `Bearer ${token}` } });
    assert.equal(back.status, 200);
    assert.deepEqual(back.json(), { plan: 'acquire supplier' });
  });

  it('the caller\'s own SPIFFE id binds the credential: a token bound to another workload is refused before anything leaves', async () => {
    const before = r.upstream.seen.length;
    const stolen = await r.pep.token({ agent: 'retriever-1', role: 'ORCHESTRATOR', spiffe: 'spiffe://cluster.local/ns/agents/sa/retriever' });
    const res = await out(RETRIEVER, '/v1/memory/plan', { method: 'PUT', headers: { authorization: `Bearer ${stolen}`, 'content-type': 'application/json' }, body: '{"x":1}' });
    assert.equal(res.status, 403);
    assert.equal(res.headers['x-mesh-reason'], 'identity_mismatch');
    const none = await out(RETRIEVER, '/v1/memory/plan', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"x":1}' });
    assert.equal(none.status, 401);
    assert.equal(r.upstream.seen.length, before, 'nothing reached the destination');
  });

  it('a destination that is not protected is untouched: no Check, no ext_proc, the body as sent', async () => {
    const checks = await counter(r.envoy, 'http.outbound_0.0.0.0_8080.ext_authz.ok');
    const streams = await counter(r.envoy, 'http.outbound_0.0.0.0_8080.ext_proc.streams_started');
    const res = await out(OTHER, '/notes/1', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"public":true}' });
    assert.equal(res.status, 201);
    assert.equal(r.upstream.seen.at(-1)!.body.toString(), '{"public":true}');
    assert.equal(await counter(r.envoy, 'http.outbound_0.0.0.0_8080.ext_authz.ok'), checks);
    assert.equal(await counter(r.envoy, 'http.outbound_0.0.0.0_8080.ext_proc.streams_started'), streams);
  });
});

describe('every rendered EnvoyFilter, in an Istio-shaped bootstrap, passes envoy --mode validate', () => {
  it('all documented values combinations', async () => {
    const seen = new Set<string>();
    for (const name of ['defaults', 'workers', 'outbound', 'metrics-direct', 'key-rotation', 'everything-on', 'fhe-keys-pvc']) {
      const objects = chartObjects(combination(name));
      for (const filter of objects.filter((o) => o['kind'] === 'EnvoyFilter')) {
        const key = JSON.stringify(filter['spec']);
        if (seen.has(key)) continue;
        seen.add(key);
        const ports = { pep: 1, pepSidecar: 2, app: 3 };
        const outbound = dig(filter, 'spec.configPatches.0.match.context') === 'SIDECAR_OUTBOUND';
        const cfg = outbound
          ? outboundBootstrap({ ports, filter, services: [RETRIEVER] })
          : inboundBootstrap({ ports, customPolicy: objects.find((o) => o['kind'] === 'AuthorizationPolicy' && dig(o, 'metadata.name') === dig(filter, 'metadata.name'))!, filter });
        await validateEnvoyConfig(bin.path, cfg).catch((e: Error) => assert.fail(`${name} ${String(dig(filter, 'metadata.name'))}: ${e.message}`));
      }
    }
    assert.ok(seen.size >= 5, `${seen.size} distinct EnvoyFilters validated`);
    assert.ok(PEP_CLUSTER.includes('|'));
  });
});
