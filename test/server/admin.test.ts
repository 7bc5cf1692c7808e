import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createRequire } from 'node:module';
import { loadServices } from '../../src/envoy/protos.js';
import { CheckClient, envoyCheckRequest, useCheckServer } from '../support/envoy-check.js';

const h = useCheckServer();

function unary<T>(client: grpc.Client, method: string, req: unknown): Promise<T> {
  return new Promise((resolve, reject) =>
    (client as unknown as Record<string, Function>)[method]!.call(client, req, (e: Error | null, r: T) => (e ? reject(e) : resolve(r))),
  );
}

/** Parses Prometheus text exposition into name{labels} -> value. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    assert.ok(m, `valid exposition line: ${line}`);
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}

describe('admin surface', () => {
  it('/healthz, /readyz and /metrics counting decisions', async () => {
    const base = `http://127.0.0.1:${h.server.adminPort}`;
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    assert.equal((await fetch(`${base}/nope`)).status, 404);
    const client = new CheckClient(h.server.address);
    await client.check(envoyCheckRequest({ domain: 'agent_memory', token: await h.fx.token({ agent: 'a', role: 'RETRIEVER' }) }));
    await client.check(envoyCheckRequest({ domain: 'agent_memory' }));
    client.close();
    const res = await fetch(`${base}/metrics`);
    assert.match(res.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/);
    const metrics = parseMetrics(await res.text());
    assert.equal(metrics.get('mesh_pep_decisions_total{domain="agent_memory",decision="allow",reason="ok"}'), 1);
    assert.equal(metrics.get('mesh_pep_decisions_total{domain="agent_memory",decision="deny",reason="missing_credential"}'), 1);
    assert.ok((metrics.get('mesh_pep_decision_duration_seconds_count{decision="allow"}') ?? 0) >= 1);
  });

  it('grpc.health.v1 reports SERVING for the server and both Envoy services', async () => {
    const require = createRequire(import.meta.url);
    const healthProto = require('grpc-health-check').protoPath as string;
    const def = grpc.loadPackageDefinition(protoLoader.loadSync(healthProto, { enums: String })) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } };
    const client = new def.grpc.health.v1.Health(h.server.address, grpc.credentials.createInsecure());
    for (const service of ['', 'envoy.service.auth.v3.Authorization', 'envoy.service.ext_proc.v3.ExternalProcessor']) {
      const r = await unary<{ status: string }>(client, 'Check', { service });
      assert.equal(r.status, 'SERVING', service);
    }
    client.close();
  });

  it('server reflection lists the services', async () => {
    const require = createRequire(import.meta.url);
    const reflectionProto = require.resolve('@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto');
    const def = grpc.loadPackageDefinition(protoLoader.loadSync(reflectionProto, { keepCase: true })) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
    };
    const client = new def.grpc.reflection.v1.ServerReflection(h.server.address, grpc.credentials.createInsecure());
    const call = (client as unknown as { ServerReflectionInfo(): grpc.ClientDuplexStream<unknown, { list_services_response?: { service: { name: string }[] } }> }).ServerReflectionInfo();
    const names = await new Promise<string[]>((resolve, reject) => {
      call.on('data', (r) => resolve(r.list_services_response?.service.map((s: { name: string }) => s.name) ?? []));
      call.on('error', reject);
      call.write({ list_services: '' });
    });
    call.end();
    client.close();
    for (const s of ['envoy.service.auth.v3.Authorization', 'envoy.service.ext_proc.v3.ExternalProcessor', 'meshpep.admin.v1.Admin', 'grpc.health.v1.Health']) {
      assert.ok(names.includes(s), `${s} in ${names.join(', ')}`);
    }
  });

  it('Admin.Explain shows every step without auditing; Admin.Status reports policy and keys', async () => {
    const admin = new (loadServices().Admin)(h.server.address, grpc.credentials.createInsecure());
    const token = await h.fx.token({ agent: 'r', role: 'RETRIEVER' });
    const ex = await unary<{ decision: string; reason: string; steps: { phase: string; outcome: string; detail: string }[]; response: { status: { code: number } } }>(
      admin,
      'Explain',
      { check: envoyCheckRequest({ domain: 'agent_memory', token }) },
    );
    assert.equal(ex.decision, 'allow');
    assert.equal(ex.response.status.code, 0);
    assert.deepEqual(ex.steps.map((s) => `${s.phase}:${s.outcome}`), ['classify:pass', 'identify:pass', 'identify:skip', 'authorize:pass', 'attest:skip', 'mask:pass', 'respond:pass']);
    assert.ok(ex.steps.every((s: { detail: string }) => !s.detail.includes(token)));
    const st = await unary<{ policy_hash: string; domains: { name: string; key_ids: string[] }[]; issuer_key_ids: string[]; last_reload: { ok: boolean }; ready: boolean }>(admin, 'Status', {});
    assert.equal(st.policy_hash, h.fx.policy.hash);
    assert.equal(st.ready, true);
    assert.equal(st.last_reload.ok, true);
    assert.equal(st.issuer_key_ids.length, 1);
    assert.ok(st.domains.find((d) => d.name === 'agent_memory')!.key_ids.length >= 1);
    admin.close();
  });
});
