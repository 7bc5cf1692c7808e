import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { describe, it } from 'node:test';
import { loadServices } from '../../src/envoy/protos.js';
import { bindDecision, bindingHost } from '../../src/policy/binding.js';
import { CALLER_SPIFFE, envoyCheckRequest, setHeaders, useCheckServer, type CheckResponseView } from '../support/envoy-check.js';
import { EnvoyPeer, header, type HeaderList } from '../support/envoy-peer.js';

const h = useCheckServer();

/** The route Check is asked about in these tests; the legitimate exchange uses the same one. */
const ROUTE = { host: 'memory.agents.svc', path: '/v1/memory/items', method: 'PUT' } as const;
const OTHER_SPIFFE = 'spiffe://cluster.local/ns/agents/sa/intruder';

interface Attempt {
  /** Route of the exchange that goes through ext_proc. */
  host?: string;
  path?: string;
  method?: string;
  /** Headers the client sends on top of the pseudo-headers (captured `x-mesh-*` for a replay). */
  mesh: HeaderList;
  /** ext_authz metadata Envoy forwards (none: header fallback). */
  metadata?: Record<string, string>;
  /** The connection's URI SAN, as Envoy's `request_attributes` report it (none: not configured). */
  principal?: string;
  /** What the callee answers (a stored ciphertext, for the decrypt-on-replay attack). */
  respond?: { contentType: string; body: Buffer };
}

async function exchange(a: Attempt, body = '{"note":"plaintext-marker"}') {
  const peer = new EnvoyPeer({
    address: h.server.address,
    mode: { requestBody: 'BUFFERED', responseBody: 'BUFFERED' },
    allowEnvoy: true,
    ...(a.metadata ? { authzMetadata: a.metadata } : {}),
    ...(a.principal !== undefined ? { principalAttribute: a.principal } : {}),
  });
  let upstream: { headers: HeaderList; body: Buffer } | undefined;
  try {
    const headers: HeaderList = [
      [':method', a.method ?? ROUTE.method],
      [':path', a.path ?? ROUTE.path],
      [':authority', a.host ?? ROUTE.host],
      [':scheme', 'http'],
      ['content-type', 'application/json'],
      ...a.mesh,
    ];
    const r = await peer.exchange({ headers, body: Buffer.from(body) }, (req) => {
      upstream = { headers: req.headers, body: req.body };
      if (a.respond) {
        return { status: 200, headers: [[':status', '200'], ['content-type', a.respond.contentType], ['content-length', String(a.respond.body.length)]], body: a.respond.body };
      }
      return { status: 204, headers: [[':status', '204']] };
    });
    return { r, upstream };
  } finally {
    peer.close();
  }
}

async function checkAllow(principal = CALLER_SPIFFE): Promise<{ res: CheckResponseView; mesh: HeaderList; metadata: Record<string, string> }> {
  const token = await h.fx.token({ agent: 'r', role: 'RETRIEVER' });
  const res = await h.client.check(envoyCheckRequest({ domain: 'agent_memory', token, host: ROUTE.host, path: ROUTE.path, method: ROUTE.method, principal }));
  assert.equal(res.status.code, 0);
  const mesh = [...setHeaders(res).entries()] as HeaderList;
  const metadata = Object.fromEntries(Object.entries(res.dynamic_metadata?.fields ?? {}).map(([k, v]) => [k, v.stringValue ?? '']));
  return { res, mesh, metadata };
}

function assertRefused(result: Awaited<ReturnType<typeof exchange>>, name: string): void {
  assert.equal(result.r.kind, 'local', name);
  assert.equal(result.r.response.status, 403, name);
  assert.equal(header(result.r.response.headers, 'x-mesh-reason'), 'no_policy', name);
  assert.equal(result.upstream, undefined, `${name}: nothing reaches the callee`);
}

describe('ext_proc accepts only what Check decided for this very request', () => {
  it('the headers and metadata of a real Check are accepted on their own route, and the callee never sees x-mesh-binding', async () => {
    const { mesh, metadata } = await checkAllow();
    assert.ok(mesh.some(([n]) => n === 'x-mesh-binding'));
    assert.match(metadata['binding'] ?? '', /^v2\./, 'the MAC travels in the metadata too');
    for (const [name, attempt] of Object.entries({
      headersWithAttribute: { mesh, principal: CALLER_SPIFFE },
      metadata: { mesh, metadata },
      metadataWithAttribute: { mesh, metadata, principal: CALLER_SPIFFE },
      // The same host however Envoy spells it: case, port and a trailing dot do not make another route.
      hostSpelling: { mesh, host: 'MEMORY.agents.svc.:8080', principal: CALLER_SPIFFE },
    } satisfies Record<string, Attempt>)) {
      const { r, upstream } = await exchange(attempt);
      assert.equal(r.kind, 'upstream', name);
      assert.ok(upstream && !upstream.body.includes('plaintext-marker'), name);
      assert.equal(header(r.upstreamRequest!.headers, 'x-mesh-protected'), 'RETRIEVAL', name);
      assert.equal(header(upstream.headers, 'x-mesh-binding'), undefined, `${name}: the helper header is removed before the callee`);
    }
  });

  it('captured x-mesh-* headers replayed on another host, path, method or principal, without metadata: refused', async () => {
    const { mesh } = await checkAllow();
    const attempts: Record<string, Attempt> = {
      otherHost: { mesh, host: 'secrets.agents.svc', principal: CALLER_SPIFFE },
      otherPath: { mesh, path: '/v1/memory/other', principal: CALLER_SPIFFE },
      otherQuery: { mesh, path: `${ROUTE.path}?all=1`, principal: CALLER_SPIFFE },
      otherMethod: { mesh, method: 'GET', principal: CALLER_SPIFFE },
      otherPrincipal: { mesh, principal: OTHER_SPIFFE },
      // Envoy not told to send the principal: a MAC made for a caller with one cannot be checked.
      noPrincipalAttribute: { mesh },
    };
    for (const [name, attempt] of Object.entries(attempts)) assertRefused(await exchange(attempt), name);
  });

  it('a replay on another route cannot make ext_proc decrypt a stored RETRIEVAL ciphertext', async () => {
    const { mesh } = await checkAllow();
    const stored = await exchange({ mesh, principal: CALLER_SPIFFE }, '{"secret":"only-for-the-caller"}');
    assert.equal(stored.r.kind, 'upstream');
    const ciphertext = stored.upstream!.body;
    assert.ok(!ciphertext.includes('only-for-the-caller'));
    // The attacker GETs another object with the captured headers; the store answers the ciphertext.
    const replay = await exchange({ mesh, method: 'GET', path: '/v1/memory/dump', principal: OTHER_SPIFFE, respond: { contentType: 'application/jose', body: ciphertext } });
    assertRefused(replay, 'replayed GET');
    assert.ok(!JSON.stringify(replay.r).includes('only-for-the-caller'));
  });

  it('Check metadata replayed for another route or principal, or metadata without a valid MAC: refused', async () => {
    const { mesh, metadata } = await checkAllow();
    const withoutMac = Object.fromEntries(Object.entries(metadata).filter(([k]) => k !== 'binding'));
    const attempts: Record<string, Attempt> = {
      otherHost: { mesh: [], metadata, host: 'secrets.agents.svc' },
      otherPath: { mesh: [], metadata, path: '/v1/memory/other' },
      otherMethod: { mesh: [], metadata, method: 'DELETE' },
      otherPrincipalAttribute: { mesh: [], metadata, principal: OTHER_SPIFFE },
      principalRewrittenInMetadata: { mesh: [], metadata: { ...metadata, source_principal: OTHER_SPIFFE } },
      roleRaisedInMetadata: { mesh: [], metadata: { ...metadata, role: 'ORCHESTRATOR' } },
      otherDomainInMetadata: { mesh: [], metadata: { ...metadata, domain: 'coordination' } },
      metadataOnlyNoMac: { mesh: [], metadata: withoutMac },
      handWrittenMetadata: { mesh: [], metadata: { domain: 'agent_memory', role: 'RETRIEVER', decision_id: 'd-1' } },
      headerMacCannotStandInForMetadata: { mesh, metadata: withoutMac },
    };
    for (const [name, attempt] of Object.entries(attempts)) assertRefused(await exchange(attempt), name);
  });

  it('a client naming a domain itself, a forged, altered or expired binding: 403 and nothing forwarded', async () => {
    const { mesh: real } = await checkAllow();
    const f = Object.fromEntries(real);
    const fields = {
      decisionId: f['x-mesh-decision-id']!,
      domain: 'agent_memory',
      role: 'RETRIEVER',
      agent: f['x-agent-pseudonym']!,
      host: bindingHost(ROUTE.host),
      path: ROUTE.path,
      method: ROUTE.method,
      principal: CALLER_SPIFFE,
    };
    const replace = (name: string, value: string) => real.map(([n, v]) => (n === name ? [n, value] : [n, v])) as HeaderList;
    const attempts: Record<string, HeaderList> = {
      clientOnly: [['x-mesh-domain', 'agent_memory']],
      without: real.filter(([n]) => n !== 'x-mesh-binding'),
      altered: replace('x-agent-role', 'ORCHESTRATOR'),
      otherDomain: replace('x-mesh-domain', 'coordination'),
      forged: replace('x-mesh-binding', bindDecision(Buffer.alloc(32, 7), fields, Date.now())),
      // Lifetime is 60 s: a binding from two minutes ago is dead, even for the right route.
      expired: replace('x-mesh-binding', bindDecision(h.server.runtime.pseudonyms.bindingKey(), fields, Date.now() - 120_000)),
      oldFormat: replace('x-mesh-binding', `v1.${Date.now().toString(36)}.${'A'.repeat(43)}`),
    };
    for (const [name, mesh] of Object.entries(attempts)) assertRefused(await exchange({ mesh, principal: CALLER_SPIFFE }), name);
  });

  it('Explain never returns a usable binding', async () => {
    const admin = new (loadServices().Admin)(h.server.address, grpc.credentials.createInsecure());
    try {
      const token = await h.fx.token({ agent: 'r', role: 'RETRIEVER' });
      const check = envoyCheckRequest({ domain: 'agent_memory', token, host: ROUTE.host, path: ROUTE.path, method: ROUTE.method });
      const ex = await new Promise<{ decision: string; response: CheckResponseView }>((resolve, reject) =>
        (admin as unknown as { Explain: Function }).Explain({ check }, (e: Error | null, r: { decision: string; response: CheckResponseView }) => (e ? reject(e) : resolve(r))),
      );
      assert.equal(ex.decision, 'allow');
      const mesh = [...setHeaders(ex.response).entries()] as HeaderList;
      assert.ok(mesh.some(([n]) => n === 'x-mesh-decision-id'), 'Explain still shows the headers Check would set');
      assert.equal(mesh.find(([n]) => n === 'x-mesh-binding'), undefined);
      const metadata = Object.fromEntries(Object.entries(ex.response.dynamic_metadata?.fields ?? {}).map(([k, v]) => [k, v.stringValue ?? '']));
      assert.equal(metadata['binding'], undefined);
      // And what it does show gets nowhere through ext_proc.
      assertRefused(await exchange({ mesh, principal: CALLER_SPIFFE }), 'explain headers');
      assertRefused(await exchange({ mesh: [], metadata, principal: CALLER_SPIFFE }), 'explain metadata');
    } finally {
      admin.close();
    }
  });
});
