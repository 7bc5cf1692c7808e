import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EnvoyPeer, header, type BodyMode, type PeerOptions } from '../support/envoy-peer.js';
import { boundMetadata, get, MemoryStore, put, startTestServer, type TestServer } from '../support/extproc-server.js';
import { renderChart } from './support/helm-chart.js';
import { asArray, asObject, dig, readYaml, repoPath, type Json } from './support/repo.js';
import { SERVER } from './support/server-contract.js';

/**
 * The ext_proc settings in the deployment configs, applied the way Envoy would apply them, drive the
 * real mesh-pep server through a RETRIEVAL write and read: the processing mode decides which messages
 * the peer sends, `forwarding_namespaces` decides whether the Check metadata reaches Process, and
 * `mutation_rules.allow_envoy` decides whether the masking of `x-envoy-*` response headers is honoured.
 */

interface ExtProcSettings {
  source: string;
  config: Json;
}

function fromEnvoyYaml(): ExtProcSettings {
  const filters = asArray(dig(readYaml('envoy', 'envoy.yaml'), 'static_resources.listeners.0.filter_chains.0.filters.0.typed_config.http_filters'), 'filters');
  const extProc = filters.map((f) => asObject(f, 'filter')).find((f) => f['name'] === 'envoy.filters.http.ext_proc');
  assert.ok(extProc);
  return { source: 'envoy/envoy.yaml', config: asObject(extProc['typed_config'], 'typed_config') };
}

function fromChart(): ExtProcSettings {
  const chart = renderChart(repoPath('helm', 'mesh-pep'), { name: 'mesh-pep', namespace: 'mesh-pep' });
  const filter = chart.objects.find((o) => o['kind'] === 'EnvoyFilter');
  assert.ok(filter);
  return { source: 'helm EnvoyFilter', config: asObject(dig(filter, 'spec.configPatches.0.patch.value.typed_config'), 'typed_config') };
}

function peerOptions(address: string, config: Json, metadata: Record<string, string>): PeerOptions {
  const mode = asObject(config['processing_mode'], 'processing_mode');
  const body = (field: string): BodyMode => {
    const value = String(mode[field] ?? 'NONE');
    assert.ok(value === 'NONE' || value === 'BUFFERED' || value === 'STREAMED', `${field}=${value} is a mode the peer plays`);
    return value;
  };
  const headerMode = (field: string): 'SEND' | 'SKIP' => (mode[field] === 'SKIP' ? 'SKIP' : 'SEND');
  const namespaces = asArray(dig(config, 'metadata_options.forwarding_namespaces.untyped'), 'untyped');
  return {
    address,
    mode: {
      requestHeaders: headerMode('request_header_mode'),
      responseHeaders: headerMode('response_header_mode'),
      requestBody: body('request_body_mode'),
      responseBody: body('response_body_mode'),
      requestTrailers: headerMode('request_trailer_mode'),
      responseTrailers: headerMode('response_trailer_mode'),
    },
    allowEnvoy: (config['mutation_rules'] as Json | undefined)?.['allow_envoy'] === true,
    // Check's metadata carries its binding MAC for the exchange's route (src/policy/binding.ts).
    authzMetadata: namespaces.includes(SERVER.authzMetadataNamespace) ? boundMetadata(metadata) : undefined,
  };
}

describe('deployment ext_proc settings drive the real server', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server?.close();
  });

  for (const [label, settings] of [['envoy/envoy.yaml', fromEnvoyYaml], ['helm EnvoyFilter', fromChart]] as const) {
    it(`${label}: RETRIEVAL write and read round trip`, async () => {
      const { source, config } = settings();
      const store = new MemoryStore();
      const metadata = { domain: 'agent_memory', role: 'RETRIEVER', decision_id: `dec-deploy-${source}`, agent_pseudonym: 'ap_deploy' };
      const peer = new EnvoyPeer(peerOptions(server.address, config, metadata));
      const original = Buffer.from(JSON.stringify({ memory: 'vendor renewal terms', n: 7 }));
      try {
        const written = await peer.exchange(put('/v1/memory/deploy', original, 'application/json'), store.handle);
        assert.equal(written.kind, 'upstream', source);
        const stored = store.objects.get('/v1/memory/deploy');
        assert.ok(stored);
        assert.equal(stored.contentType, 'application/jose', `${source}: the store holds a JWE`);
        assert.ok(!stored.body.includes(Buffer.from('vendor renewal')), `${source}: no plaintext in the store`);

        const read = await peer.exchange(get('/v1/memory/deploy'), store.handle);
        assert.equal(read.kind, 'upstream');
        assert.equal(read.response.status, 200);
        assert.deepEqual(read.response.body, original, `${source}: the reader gets the plaintext back`);
        assert.equal(header(read.response.headers, 'content-type'), 'application/json');
        // Masking removed the topology headers, x-envoy-* included: allowed by mutation_rules.allow_envoy.
        assert.equal(header(read.response.headers, 'x-envoy-upstream-service-time'), undefined);
        assert.equal(header(read.response.headers, 'server'), undefined);
        assert.deepEqual(read.rejectedMutations, [], `${source}: Envoy would apply every mutation`);
        assert.ok(read.transcript.every((t) => t.answered === t.sent), `${source}: one matching answer per message`);
      } finally {
        peer.close();
      }
    });
  }

  it('without mutation_rules.allow_envoy, Envoy would ignore the x-envoy-* removal (why the configs set it)', async () => {
    const { config } = fromEnvoyYaml();
    const without = structuredClone(config);
    delete without['mutation_rules'];
    const store = new MemoryStore();
    const peer = new EnvoyPeer(peerOptions(server.address, without, { domain: 'agent_memory', role: 'RETRIEVER', decision_id: 'dec-deploy-noenvoy', agent_pseudonym: 'ap_deploy' }));
    try {
      await peer.exchange(put('/v1/memory/x', Buffer.from('{"a":1}'), 'application/json'), store.handle);
      const read = await peer.exchange(get('/v1/memory/x'), store.handle);
      assert.equal(header(read.response.headers, 'x-envoy-upstream-service-time'), '3');
      assert.ok(read.rejectedMutations.some((m) => m.includes('x-envoy-upstream-service-time')), JSON.stringify(read.rejectedMutations));
    } finally {
      peer.close();
    }
  });
});
