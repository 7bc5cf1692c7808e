import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { denyReason, envoyCheckRequest, setHeaders, useCheckServer } from '../support/envoy-check.js';

/**
 * The two context_extensions the Helm chart's Istio wiring sets besides `domain` (issue 23):
 * `domains` for a workload serving several domains, and `source_principal` on a caller's outbound listener.
 */
const h = useCheckServer();

const ORCHESTRATOR_SPIFFE = 'spiffe://cluster.local/ns/agents/sa/orchestrator';

describe('context_extensions.domains: a multi-domain workload picks among its own domains only', () => {
  it('the path picks the domain among the candidates', async () => {
    const token = await h.fx.token({ agent: 'orch-1', role: 'ORCHESTRATOR' });
    const res = await h.client.check(envoyCheckRequest({ host: 'a.coord.svc', path: '/tasks', token, extensions: { domains: 'agent_memory,coordination' } }));
    assert.equal(res.status.code, 0);
    assert.equal(setHeaders(res).get('x-mesh-domain'), 'coordination');
  });

  it('a host and path of another domain is no_policy, never that domain (the caller cannot steer)', async () => {
    const token = await h.fx.token({ agent: 'retr-1', role: 'RETRIEVER' });
    // Without candidates this request would be agent_memory and allowed for a RETRIEVER.
    const free = await h.client.check(envoyCheckRequest({ host: 'memory.agents.svc', path: '/v1/memory/items', token }));
    assert.equal(setHeaders(free).get('x-mesh-domain'), 'agent_memory');
    const res = await h.client.check(envoyCheckRequest({ host: 'memory.agents.svc', path: '/v1/memory/items', token, extensions: { domains: 'coordination,sealed_memory' } }));
    assert.equal(res.status.code, 7);
    assert.equal(denyReason(res), 'no_policy');
  });

  it('a candidate the policy does not define matches nothing', async () => {
    const token = await h.fx.token({ agent: 'retr-1', role: 'RETRIEVER' });
    const res = await h.client.check(envoyCheckRequest({ host: 'memory.agents.svc', path: '/v1/memory/items', token, extensions: { domains: 'no_such_domain' } }));
    assert.equal(denyReason(res), 'no_policy');
  });
});

describe('context_extensions.source_principal: the caller identity on an outbound listener', () => {
  it('with no peer principal (outbound: the local app over plaintext), the configured SPIFFE id binds the credential', async () => {
    const token = await h.fx.token({ agent: 'orch-1', role: 'ORCHESTRATOR', spiffe: ORCHESTRATOR_SPIFFE });
    const ok = await h.client.check(envoyCheckRequest({ host: 'a.coord.svc', path: '/tasks', token, principal: '', extensions: { domain: 'coordination', source_principal: ORCHESTRATOR_SPIFFE } }));
    assert.equal(ok.status.code, 0);
    // A credential bound to another workload, presented from this caller's pod, is refused.
    const stolen = await h.fx.token({ agent: 'retr-1', role: 'ORCHESTRATOR', spiffe: 'spiffe://cluster.local/ns/agents/sa/retriever' });
    const res = await h.client.check(envoyCheckRequest({ host: 'a.coord.svc', path: '/tasks', token: stolen, principal: '', extensions: { domain: 'coordination', source_principal: ORCHESTRATOR_SPIFFE } }));
    assert.equal(denyReason(res), 'identity_mismatch');
  });

  it('a principal Envoy saw always wins over the configured one', async () => {
    const token = await h.fx.token({ agent: 'orch-1', role: 'ORCHESTRATOR', spiffe: ORCHESTRATOR_SPIFFE });
    const res = await h.client.check(envoyCheckRequest({
      host: 'a.coord.svc', path: '/tasks', token,
      principal: 'spiffe://cluster.local/ns/agents/sa/retriever',
      extensions: { domain: 'coordination', source_principal: ORCHESTRATOR_SPIFFE },
    }));
    assert.equal(denyReason(res), 'identity_mismatch');
  });
});
