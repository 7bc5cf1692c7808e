import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeProtectedHeader } from 'jose';
import { EnvoyPeer, header, type PeerOptions } from '../support/envoy-peer.js';
import { boundMetadata, get, MemoryStore, put, startTestServer, type TestServer } from '../support/extproc-server.js';

const BUFFERED: PeerOptions['mode'] = { requestBody: 'BUFFERED', responseBody: 'BUFFERED' };
const STREAMED: PeerOptions['mode'] = { requestBody: 'STREAMED', responseBody: 'STREAMED' };

describe('ext_proc RETRIEVAL over real gRPC', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t?.close();
  });

  function peer(over: Partial<PeerOptions> = {}): EnvoyPeer {
    return new EnvoyPeer({ address: t.address, mode: BUFFERED, allowEnvoy: true, ...over });
  }

  it('write then read: the store holds only a policy-bound JWE, the reader gets the original bytes and type', async () => {
    const store = new MemoryStore();
    const p = peer({ authzMetadata: boundMetadata({ domain: 'agent_memory', role: 'RETRIEVER', decision_id: 'dec-rt-1', agent_pseudonym: 'ap_x' }) });
    const original = Buffer.from(JSON.stringify({ memory: 'the launch code is 0000', n: 42, ünï: 'çødé' }));
    try {
      const w = await p.exchange(put('/v1/memory/m1', original, 'application/json; charset=utf-8'), store.handle);
      assert.equal(w.kind, 'upstream');
      assert.equal(w.response.status, 204);
      assert.deepEqual(w.rejectedMutations, []);
      const sent = w.upstreamRequest!;
      const stored = store.objects.get('/v1/memory/m1')!;
      assert.ok(!stored.body.includes(Buffer.from('launch code')), 'store must not hold plaintext');
      assert.equal(stored.contentType, 'application/jose');
      assert.equal(header(sent.headers, 'x-mesh-protected'), 'RETRIEVAL');
      assert.equal(header(sent.headers, 'content-length'), String(sent.body.length));
      const jweHeader = decodeProtectedHeader(sent.body.toString()) as Record<string, unknown>;
      assert.equal(jweHeader.alg, 'A256KW');
      assert.equal(jweHeader.enc, 'A256GCM');
      assert.equal(jweHeader.mesh_domain, 'agent_memory');
      assert.equal(jweHeader.cty, 'application/json; charset=utf-8');
      assert.equal(typeof jweHeader.kid, 'string');

      const r = await p.exchange(get('/v1/memory/m1'), store.handle);
      assert.equal(r.kind, 'upstream');
      assert.equal(r.response.status, 200);
      assert.deepEqual(r.response.body, original);
      assert.equal(header(r.response.headers, 'content-type'), 'application/json; charset=utf-8');
      assert.equal(header(r.response.headers, 'content-length'), String(original.length));
      assert.deepEqual(r.rejectedMutations, []);
      assert.ok(r.transcript.every((x) => x.answered === x.sent), JSON.stringify(r.transcript));
    } finally {
      p.close();
    }
  });

  it('records each body transformation in the audit chain with the plaintext hash, never the payload', async () => {
    const store = new MemoryStore();
    const p = peer({ authzMetadata: boundMetadata({ domain: 'notes', role: 'RETRIEVER', decision_id: 'dec-audit-1', agent_id: 'agent-a' }) });
    const body = Buffer.from('secret note body');
    try {
      await p.exchange(put('/v1/notes/a?token=abc', body, 'text/plain', 'notes'), store.handle);
      await p.exchange(get('/v1/notes/a?token=abc', 'notes'), store.handle);
    } finally {
      p.close();
    }
    const recs = (await t.auditRecords()).filter((r) => r.decision_id === 'dec-audit-1');
    const { createHash } = await import('node:crypto');
    const sha = createHash('sha256').update(body).digest('hex');
    const w = recs.find((r) => r.event === 'extproc.request_body')!;
    const rd = recs.find((r) => r.event === 'extproc.response_body')!;
    assert.equal(w.decision, 'transform');
    assert.equal(w.payload_sha256, sha);
    assert.equal(w.payload_bytes, body.length);
    assert.equal(w.agent, 'agent-a');
    assert.equal(w.tier, 'RETRIEVAL');
    assert.equal(w.target, 'memory.agents.svc/v1/notes/a', 'query strings never reach the audit');
    assert.equal(rd.decision, 'transform');
    assert.equal(rd.payload_sha256, sha);
    const text = JSON.stringify(await t.auditRecords());
    assert.ok(!text.includes('secret note body'));
    const m = t.server.runtime.metrics.extprocOutcomes;
    assert.ok(m.get({ domain: 'notes', tier: 'RETRIEVAL', phase: 'request_body', outcome: 'transform' }) >= 1);
    assert.ok(m.get({ domain: 'notes', tier: 'RETRIEVAL', phase: 'response_body', outcome: 'transform' }) >= 1);
  });

  it('STREAMED chunks: every plaintext chunk is cleared, the last answer carries the whole JWE; reading back streams too', async () => {
    const store = new MemoryStore();
    const p = peer({ mode: STREAMED, chunkSize: 100, authzMetadata: boundMetadata({ domain: 'agent_memory' }) });
    const original = Buffer.from('x'.repeat(950) + 'TAIL');
    try {
      const w = await p.exchange(put('/v1/memory/s1', original, 'text/plain'), store.handle);
      assert.equal(w.kind, 'upstream');
      assert.equal(w.transcript.filter((x) => x.sent === 'request_body').length, 10);
      const stored = store.objects.get('/v1/memory/s1')!;
      assert.ok(!stored.body.includes(Buffer.from('xxxx')));
      assert.ok(decodeProtectedHeader(stored.body.toString()).kid);
      assert.equal(header(w.upstreamRequest!.headers, 'content-length'), undefined, 'Envoy drops content-length in STREAMED mode');

      const r = await p.exchange(get('/v1/memory/s1'), store.handle);
      assert.deepEqual(r.response.body, original);
    } finally {
      p.close();
    }
  });

  it('a non-JWE response body (a store error) passes unchanged', async () => {
    const store = new MemoryStore();
    const p = peer({ authzMetadata: boundMetadata({ domain: 'agent_memory' }) });
    try {
      const r = await p.exchange(get('/v1/memory/missing'), store.handle);
      assert.equal(r.response.status, 404);
      assert.equal(r.response.body.toString(), '{"error":"not found"}');
      assert.equal(header(r.response.headers, 'content-length'), String(r.response.body.length));
    } finally {
      p.close();
    }
  });

  it('a multi-chunk STREAMED body that passes is re-emitted whole in the last answer', async () => {
    const p = peer({ mode: STREAMED, chunkSize: 5, authzMetadata: boundMetadata({ domain: 'notes' }) });
    const listing = Buffer.from('{"items":["a","b","c"]}');
    try {
      const r = await p.exchange(get('/v1/notes/', 'notes'), () => ({ status: 200, headers: [['content-type', 'application/json']], body: listing }));
      assert.deepEqual(r.response.body, listing);
    } finally {
      p.close();
    }
  });

  it('masks topology response headers in masking domains (x-envoy-* only where mutation_rules.allow_envoy)', async () => {
    const store = new MemoryStore();
    const body = Buffer.from('hello');
    const strict = peer({ allowEnvoy: false, authzMetadata: boundMetadata({ domain: 'agent_memory' }) });
    const lenient = peer({ allowEnvoy: true, authzMetadata: boundMetadata({ domain: 'agent_memory' }) });
    const plain = peer({ allowEnvoy: true, authzMetadata: boundMetadata({ domain: 'notes' }) });
    try {
      await lenient.exchange(put('/v1/memory/h', body, 'text/plain'), store.handle);
      const a = await lenient.exchange(get('/v1/memory/h'), store.handle);
      for (const h of ['server', 'x-envoy-upstream-service-time', 'x-store-node']) assert.equal(header(a.response.headers, h), undefined, h);
      assert.equal(header(a.response.headers, 'etag'), '"v1"');
      assert.deepEqual(a.rejectedMutations, []);

      const b = await strict.exchange(get('/v1/memory/h'), store.handle);
      assert.equal(header(b.response.headers, 'server'), undefined);
      assert.equal(header(b.response.headers, 'x-envoy-upstream-service-time'), '3', 'default rules keep x-envoy-*');
      assert.deepEqual(b.rejectedMutations, ['remove x-envoy-upstream-service-time']);

      const n = await plain.exchange(get('/v1/notes/none', 'notes'), () => ({ status: 200, headers: [['server', 'memstore']], body: Buffer.from('ok') }));
      assert.equal(header(n.response.headers, 'server'), 'memstore', 'non-masking domain keeps server');
    } finally {
      strict.close();
      lenient.close();
      plain.close();
    }
  });

  it('falls back to the x-mesh-domain header Check set when metadata is not forwarded', async () => {
    const store = new MemoryStore();
    const p = peer({});
    try {
      await p.exchange(put('/v1/memory/f', Buffer.from('via header'), 'text/plain'), store.handle);
      assert.equal(decodeProtectedHeader(store.objects.get('/v1/memory/f')!.body.toString()).mesh_domain, 'agent_memory');
    } finally {
      p.close();
    }
  });

  it('no domain, or an unknown one: immediate 403 no_policy, nothing reaches the callee', async () => {
    for (const metadata of [undefined, { domain: 'nope' }]) {
      const p = peer(metadata ? { authzMetadata: boundMetadata(metadata) } : {});
      let reached = false;
      try {
        const req = put('/v1/memory/x', Buffer.from('plaintext'), 'text/plain');
        req.headers = req.headers.filter(([n]) => n !== 'x-mesh-domain');
        const r = await p.exchange(req, () => {
          reached = true;
          return { status: 200, headers: [] };
        });
        assert.equal(r.kind, 'local');
        assert.equal(r.response.status, 403);
        assert.equal(header(r.response.headers, 'x-mesh-reason'), 'no_policy');
        assert.deepEqual(JSON.parse(r.response.body.toString()), { error: 'no policy matches this request', reason: 'no_policy' });
        assert.equal(reached, false);
      } finally {
        p.close();
      }
    }
  });

  it('observability mode: the server never answers, records what it saw, and ends cleanly', async () => {
    const p = peer({ observability: true, authzMetadata: boundMetadata({ domain: 'notes', decision_id: 'dec-observe-1' }) });
    try {
      const r = await p.exchange(put('/v1/notes/o', Buffer.from('observed'), 'text/plain', 'notes'), () => ({ status: 201, headers: [], body: Buffer.from('ok') }));
      assert.equal(r.kind, 'upstream');
      assert.ok(r.transcript.every((x) => x.answered === undefined));
      assert.equal(r.grpcStatus, 0);
    } finally {
      p.close();
    }
    const rec = (await t.auditRecords()).find((x) => x.decision_id === 'dec-observe-1' && x.event === 'extproc.request_body');
    assert.equal(rec?.decision, 'pass');
    assert.equal(rec?.payload_bytes, 8);
  });

  it('trailers are passed through after a BUFFERED body that ended with end_of_stream', async () => {
    const p = peer({ mode: { ...BUFFERED, responseTrailers: 'SEND' }, authzMetadata: boundMetadata({ domain: 'notes' }) });
    try {
      const r = await p.exchange(get('/v1/notes/t', 'notes'), () => ({ status: 200, headers: [], trailers: [['x-checksum', 'abc']] }));
      assert.equal(r.kind, 'upstream');
      assert.deepEqual(r.response.trailers, [['x-checksum', 'abc']]);
    } finally {
      p.close();
    }
  });
});
