import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EnvoyPeer, header } from '../support/envoy-peer.js';
import { checkedHeaders, startTestServer, type TestServer } from '../support/extproc-server.js';

/**
 * What Envoy 1.40 did that the old peer did not model (e2e/ runs the same cases through real Envoy):
 * an earlier filter's local reply crosses ext_proc's response path; request headers go on to the callee
 * with everything ext_proc did not remove; in STREAMED mode they go on before the body.
 */
let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(async () => {
  await t?.close();
});

const denyBody = JSON.stringify({ error: 'a bearer credential is required', reason: 'missing_credential' });

describe('an earlier filter\'s local reply (ext_authz deny, status_on_error)', () => {
  it('passes through ext_proc unchanged: status, JSON body and x-mesh-reason', async () => {
    for (const responseBody of ['BUFFERED', 'STREAMED'] as const) {
      const p = new EnvoyPeer({ address: t.address, mode: { requestBody: 'BUFFERED', responseBody } });
      try {
        const r = await p.localReply({ status: 401, headers: [['content-type', 'application/json'], ['x-mesh-reason', 'missing_credential']], body: Buffer.from(denyBody) });
        assert.equal(r.localReason, 'earlier_filter');
        assert.equal(r.upstreamRequest, undefined);
        assert.equal(r.response.status, 401);
        assert.equal(header(r.response.headers, 'x-mesh-reason'), 'missing_credential');
        assert.equal(r.response.body.toString(), denyBody);
      } finally {
        p.close();
      }
    }
  });

  it('a success status with no request seen and no Check decision is still refused (no_policy), not waved through', async () => {
    const p = new EnvoyPeer({ address: t.address, mode: { requestBody: 'BUFFERED', responseBody: 'BUFFERED' } });
    try {
      const r = await p.localReply({ status: 200, headers: [['content-type', 'text/plain']], body: Buffer.from('callee data') });
      assert.equal(r.response.status, 403);
      assert.equal(header(r.response.headers, 'x-mesh-reason'), 'no_policy');
      assert.ok(!r.response.body.toString().includes('callee data'));
    } finally {
      p.close();
    }
  });
});

describe('request headers as the callee gets them', () => {
  it('x-mesh-binding (Check to ext_proc only) is removed in the request-headers answer', async () => {
    const p = new EnvoyPeer({ address: t.address, mode: { requestBody: 'BUFFERED', responseBody: 'NONE' } });
    try {
      const headers: Array<[string, string]> = [[':method', 'GET'], [':path', '/n'], [':authority', 'notes'], ...checkedHeaders('notes', { method: 'GET', path: '/n', authority: 'notes' })];
      assert.ok(header(headers, 'x-mesh-binding'));
      const r = await p.exchange({ headers }, () => ({ status: 204, headers: [] }));
      assert.equal(r.kind, 'upstream');
      assert.equal(header(r.upstreamRequest!.headers, 'x-mesh-binding'), undefined);
      assert.equal(header(r.upstreamRequest!.headers, 'x-mesh-domain'), 'notes');
    } finally {
      p.close();
    }
  });

  it('STREAMED: the protected body is labelled in the headers answer (body answers cannot relabel it)', async () => {
    const p = new EnvoyPeer({ address: t.address, mode: { requestBody: 'STREAMED', responseBody: 'NONE' }, chunkSize: 8 });
    try {
      const body = Buffer.from(JSON.stringify({ note: 'plain text note' }));
      const headers: Array<[string, string]> = [[':method', 'PUT'], [':path', '/n'], [':authority', 'notes'], ['content-type', 'application/json'], ['content-length', String(body.length)], ...checkedHeaders('notes', { method: 'PUT', path: '/n', authority: 'notes' })];
      const r = await p.exchange({ headers, body }, () => ({ status: 204, headers: [] }));
      assert.equal(r.kind, 'upstream');
      const got = r.upstreamRequest!;
      assert.equal(header(got.headers, 'content-type'), 'application/jose');
      assert.equal(header(got.headers, 'x-mesh-protected'), 'RETRIEVAL');
      assert.equal(header(got.headers, 'content-length'), undefined);
      assert.equal(got.body.toString().split('.').length, 5);
    } finally {
      p.close();
    }
  });
});
