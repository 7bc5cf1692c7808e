import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bindDecision } from '../../src/policy/binding.js';
import { envoyCheckRequest, setHeaders, useCheckServer } from '../support/envoy-check.js';
import { EnvoyPeer, header, type HeaderList } from '../support/envoy-peer.js';

const h = useCheckServer();

/** ext_proc without forwarded metadata: the caller comes only from the request headers. */
async function exchange(mesh: HeaderList, body = '{"note":"plaintext-marker"}') {
  const peer = new EnvoyPeer({ address: h.server.address, mode: { requestBody: 'BUFFERED', responseBody: 'BUFFERED' }, allowEnvoy: true });
  let upstream: Buffer | undefined;
  try {
    const headers: HeaderList = [[':method', 'PUT'], [':path', '/v1/memory/n'], [':authority', 'memory.agents.svc'], [':scheme', 'http'], ['content-type', 'application/json'], ...mesh];
    const r = await peer.exchange({ headers, body: Buffer.from(body) }, (req) => {
      upstream = req.body;
      return { status: 204, headers: [[':status', '204']] };
    });
    return { r, upstream };
  } finally {
    peer.close();
  }
}

describe('ext_proc header fallback is bound to Check', () => {
  it('headers a real Check set are accepted', async () => {
    const token = await h.fx.token({ agent: 'r', role: 'RETRIEVER' });
    const res = await h.client.check(envoyCheckRequest({ domain: 'agent_memory', token }));
    const set = [...setHeaders(res).entries()] as HeaderList;
    assert.ok(set.some(([n]) => n === 'x-mesh-binding'));
    const { r, upstream } = await exchange(set);
    assert.equal(r.kind, 'upstream');
    assert.ok(upstream && !upstream.includes('plaintext-marker'));
    assert.equal(header(r.upstreamRequest!.headers, 'x-mesh-protected'), 'RETRIEVAL');
  });

  it('a client naming a domain itself, a forged, altered or expired binding: 403 and nothing forwarded', async () => {
    const token = await h.fx.token({ agent: 'r', role: 'RETRIEVER' });
    const real = [...setHeaders(await h.client.check(envoyCheckRequest({ domain: 'agent_memory', token }))).entries()] as HeaderList;
    const without = real.filter(([n]) => n !== 'x-mesh-binding');
    const altered = real.map(([n, v]) => (n === 'x-agent-role' ? [n, 'ORCHESTRATOR'] : [n, v])) as HeaderList;
    const otherDomain = real.map(([n, v]) => (n === 'x-mesh-domain' ? [n, 'coordination'] : [n, v])) as HeaderList;
    const f = Object.fromEntries(real);
    const wrongKey = bindDecision(Buffer.alloc(32, 7), { decisionId: f['x-mesh-decision-id']!, domain: 'agent_memory', role: 'RETRIEVER', agent: f['x-agent-pseudonym']! }, Date.now());
    const forged = real.map(([n, v]) => (n === 'x-mesh-binding' ? [n, wrongKey] : [n, v])) as HeaderList;
    const expired = real.map(([n, v]) =>
      n === 'x-mesh-binding'
        ? [n, bindDecision(h.server.runtime.pseudonyms.bindingKey(), { decisionId: f['x-mesh-decision-id']!, domain: 'agent_memory', role: 'RETRIEVER', agent: f['x-agent-pseudonym']! }, Date.now() - 3_600_000)]
        : [n, v],
    ) as HeaderList;
    for (const [name, mesh] of Object.entries({ clientOnly: [['x-mesh-domain', 'agent_memory']] as HeaderList, without, altered, otherDomain, forged, expired })) {
      const { r, upstream } = await exchange(mesh);
      assert.equal(r.kind, 'local', name);
      assert.equal(r.response.status, 403, name);
      assert.equal(header(r.response.headers, 'x-mesh-reason'), 'no_policy', name);
      assert.equal(upstream, undefined, `${name}: nothing reaches the callee`);
    }
  });
});
