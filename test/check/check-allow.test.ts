import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TOPOLOGY_REQUEST_HEADERS } from '../../src/masking/topology-headers.js';
import { envoyCheckRequest, setHeaders, useCheckServer } from '../support/envoy-check.js';

const h = useCheckServer();

const ALL_TOPOLOGY = Object.fromEntries(TOPOLOGY_REQUEST_HEADERS.map((h) => [h, `value-of-${h}`]));

describe('Check allows with header mutations and dynamic metadata', () => {
  it('masking domain: pseudonym instead of id, every topology header removed, metadata on the wire', async () => {
    const token = await h.fx.token({ agent: 'retriever-7', role: 'RETRIEVER' });
    const res = await h.client.check(envoyCheckRequest({ domain: 'agent_memory', token, headers: { ...ALL_TOPOLOGY, 'x-tenant-route': 'r1', forwarded: 'for=10.0.0.1' } }));
    assert.equal(res.status.code, 0);
    assert.equal(res.denied_response ?? null, null);
    const set = setHeaders(res);
    assert.equal(set.get('x-agent-role'), 'RETRIEVER');
    assert.equal(set.get('x-mesh-domain'), 'agent_memory');
    assert.equal(set.get('x-mesh-tier'), 'RETRIEVAL');
    assert.match(set.get('x-mesh-decision-id')!, /^[0-9a-f-]{36}$/);
    assert.match(set.get('x-agent-pseudonym')!, /^ap_[0-9a-f]{32}$/);
    assert.equal(set.has('x-agent-id'), false);
    for (const h of res.ok_response!.headers) assert.deepEqual(h.append, { value: false }, `${h.header.key} must overwrite`);
    const removed = new Set(res.ok_response!.headers_to_remove);
    assert.ok(removed.has('authorization'));
    for (const h of TOPOLOGY_REQUEST_HEADERS) assert.ok(removed.has(h), `${h} removed`);
    assert.ok(removed.has('x-tenant-route'), 'per-domain extra header removed');
    for (const h of removed) assert.ok(!h.startsWith(':') && h !== 'host');
    // The Struct arrives with values: proves stringValue (not string_value) went on the wire.
    const meta = Object.fromEntries(Object.entries(res.dynamic_metadata!.fields).map(([k, v]) => [k, v.stringValue]));
    assert.deepEqual(meta, {
      domain: 'agent_memory',
      tier: 'RETRIEVAL',
      role: 'RETRIEVER',
      decision_id: set.get('x-mesh-decision-id'),
      agent_pseudonym: set.get('x-agent-pseudonym'),
      // ext_proc checks the same MAC on the metadata path (bound to this route and principal).
      binding: set.get('x-mesh-binding'),
      source_principal: 'spiffe://cluster.local/ns/agents/sa/retriever',
    });
    assert.ok(!JSON.stringify(res).includes('retriever-7'), 'the agent id never appears in a masking domain');
  });

  it('pseudonyms are stable per domain and differ across domains', async () => {
    const token = await h.fx.token({ agent: 'retriever-7', role: 'RETRIEVER' });
    const a = setHeaders(await h.client.check(envoyCheckRequest({ domain: 'agent_memory', token })));
    const b = setHeaders(await h.client.check(envoyCheckRequest({ domain: 'agent_memory', token: await h.fx.token({ agent: 'retriever-7', role: 'RETRIEVER' }) })));
    assert.equal(a.get('x-agent-pseudonym'), b.get('x-agent-pseudonym'));
    const other = setHeaders(await h.client.check(envoyCheckRequest({ domain: 'agent_memory', token: await h.fx.token({ agent: 'retriever-8', role: 'RETRIEVER' }) })));
    assert.notEqual(other.get('x-agent-pseudonym'), a.get('x-agent-pseudonym'));
    const analyst = await h.fx.token({ agent: 'retriever-7', role: 'ANALYST', attestation: 'sha256:' + 'a1'.repeat(32) });
    const sealed = setHeaders(await h.client.check(envoyCheckRequest({ domain: 'sealed_memory', token: analyst })));
    assert.notEqual(sealed.get('x-agent-pseudonym'), a.get('x-agent-pseudonym'));
  });

  it('non-masking domain: agent id forwarded, topology headers kept, only the credential removed', async () => {
    const token = await h.fx.token({ agent: 'orch-1', role: 'ORCHESTRATOR' });
    const res = await h.client.check(envoyCheckRequest({ host: 'planner.coord.svc', path: '/plan', token }));
    assert.equal(res.status.code, 0);
    const set = setHeaders(res);
    assert.equal(set.get('x-agent-id'), 'orch-1');
    assert.equal(set.get('x-mesh-domain'), 'coordination');
    assert.deepEqual(res.ok_response!.headers_to_remove, ['authorization']);
    assert.equal(res.dynamic_metadata!.fields.agent_id!.stringValue, 'orch-1');
  });

  it('spoofed x-agent-* and x-mesh-* headers never survive, in any casing', async () => {
    const token = await h.fx.token({ agent: 'retriever-7', role: 'RETRIEVER' });
    const spoofed = {
      'x-agent-id': 'orchestrator-0',
      'X-Agent-Role': 'ORCHESTRATOR',
      'x-AGENT-pseudonym': 'ap_fake',
      'x-mesh-domain': 'financial_models',
      'X-Mesh-Tier': 'NONE',
      'x-mesh-decision-id': 'forged',
      'x-mesh-protected': 'RETRIEVAL',
      'x-agent-extra': 'x',
    };
    const res = await h.client.check(envoyCheckRequest({ domain: 'agent_memory', token, headers: spoofed }));
    assert.equal(res.status.code, 0);
    const set = setHeaders(res);
    const removed = new Set(res.ok_response!.headers_to_remove);
    for (const name of Object.keys(spoofed).map((n) => n.toLowerCase())) {
      assert.ok(set.has(name) || removed.has(name), `${name} must be overwritten or removed`);
    }
    assert.equal(set.get('x-agent-role'), 'RETRIEVER');
    assert.equal(set.get('x-mesh-domain'), 'agent_memory');
    assert.notEqual(set.get('x-agent-pseudonym'), 'ap_fake');
    assert.ok(removed.has('x-agent-id'));
  });

  it('domain chosen by match: host and path prefix, wildcard host', async () => {
    const token = await h.fx.token({ agent: 'retriever-7', role: 'RETRIEVER' });
    const res = await h.client.check(envoyCheckRequest({ host: 'memory.agents.svc:8080', path: '/v1/memory/items?q=1', token }));
    assert.equal(setHeaders(res).get('x-mesh-domain'), 'agent_memory');
    const wrongPath = await h.client.check(envoyCheckRequest({ host: 'memory.agents.svc', path: '/v1/memoryx', token }));
    assert.equal(wrongPath.status.code, 7);
  });

  it('records every FULL_MESH decision in the audit file without the credential', async () => {
    const token = await h.fx.token({ agent: 'retriever-7', role: 'RETRIEVER' });
    const res = await h.client.check(envoyCheckRequest({ domain: 'agent_memory', token }));
    const id = setHeaders(res).get('x-mesh-decision-id')!;
    const { readFile } = await import('node:fs/promises');
    const text = await readFile(h.fx.policy.audit.file, 'utf8');
    const line = text.trim().split('\n').map((l) => JSON.parse(l)).find((r) => r.decision_id === id);
    assert.ok(line, 'allow recorded before it was answered');
    assert.equal(line.decision, 'allow');
    assert.equal(line.agent, setHeaders(res).get('x-agent-pseudonym'));
    assert.ok(!text.includes(token) && !text.includes(token.split('.')[2]!), 'no credential in the audit file');
    assert.ok(!text.includes('retriever-7'), 'no agent id in a masking domain record');
  });
});
