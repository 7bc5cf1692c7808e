import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { CompactEncrypt, decodeProtectedHeader } from 'jose';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { EnvoyPeer, header, rawProcessCall, type ExchangeResult, type PeerOptions } from '../support/envoy-peer.js';
import { boundMetadata, get, MemoryStore, put, startTestServer, type TestServer, checkedHeaders } from '../support/extproc-server.js';

const BUFFERED: PeerOptions['mode'] = { requestBody: 'BUFFERED', responseBody: 'BUFFERED' };

interface Scripted {
  answers: string[];
  status: grpc.StatusObject;
}

/** Sends the messages as given (no protocol help) and collects every answer and the final status. */
async function script(p: EnvoyPeer, messages: object[], opts: { end?: boolean; cancel?: boolean } = {}): Promise<Scripted> {
  const call = p.openRaw();
  const answers: string[] = [];
  call.on('data', (r: { response?: string }) => answers.push(r.response ?? '?'));
  const status = new Promise<grpc.StatusObject>((resolve) => {
    call.on('status', resolve);
    call.on('error', () => undefined);
  });
  for (const m of messages) call.write(m);
  if (opts.cancel) call.cancel();
  else if (opts.end !== false) call.end();
  return { answers, status: await status };
}

const hdrs = (list: Array<[string, string]>) => ({ headers: list.map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) });
const requestHeaders = (domain = 'notes', eos = false) => ({
  request_headers: { headers: hdrs([[':method', 'PUT'], [':path', '/v1/x'], ...checkedHeaders(domain, { method: 'PUT', path: '/v1/x' }), ['content-type', 'text/plain']]), end_of_stream: eos },
});

function assertRefused(r: ExchangeResult, status: number, reason: string, plaintext?: Buffer): void {
  assert.equal(r.kind, 'local', `expected a local reply, got ${r.response.status}`);
  assert.equal(r.localReason, 'immediate_response');
  assert.equal(r.response.status, status);
  assert.equal(header(r.response.headers, 'x-mesh-reason'), reason);
  assert.equal(header(r.response.headers, 'content-type'), 'application/json');
  assert.equal(JSON.parse(r.response.body.toString()).reason, reason);
  if (plaintext) assert.ok(!r.response.body.includes(plaintext), 'refusal must not carry the plaintext');
}

describe('ext_proc bad input: refused, never passed through', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t?.close();
  });
  const peer = (over: Partial<PeerOptions> = {}) => new EnvoyPeer({ address: t.address, mode: BUFFERED, allowEnvoy: true, ...over });

  it('garbage protobuf ends the stream with INVALID_ARGUMENT', async () => {
    for (const bytes of [Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]), Buffer.from('GET / HTTP/1.1\r\n\r\n'), Buffer.alloc(0)]) {
      const { client, call } = rawProcessCall(t.address);
      const answers: Buffer[] = [];
      call.on('data', (b: Buffer) => answers.push(b));
      const status = await new Promise<grpc.StatusObject>((resolve) => {
        call.on('status', resolve);
        call.on('error', () => undefined);
        call.write(bytes);
        call.end();
      });
      client.close();
      assert.equal(status.code, grpc.status.INVALID_ARGUMENT, `${bytes.toString('hex')}: ${status.details}`);
      assert.equal(answers.length, 0);
    }
  });

  it('a body before headers ends the stream with INVALID_ARGUMENT', async () => {
    const p = peer();
    try {
      const r = await script(p, [{ request_body: { body: Buffer.from('plaintext'), end_of_stream: true } }]);
      assert.equal(r.status.code, grpc.status.INVALID_ARGUMENT);
      assert.deepEqual(r.answers, []);
    } finally {
      p.close();
    }
  });

  it('two request_headers: the first is answered, the second ends the stream with INVALID_ARGUMENT', async () => {
    const p = peer();
    try {
      const r = await script(p, [requestHeaders(), requestHeaders()]);
      assert.deepEqual(r.answers, ['request_headers']);
      assert.equal(r.status.code, grpc.status.INVALID_ARGUMENT);
    } finally {
      p.close();
    }
  });

  it('a response body before response headers, or a request body after the response began, is a protocol violation', async () => {
    const p = peer();
    try {
      const a = await script(p, [requestHeaders('notes', true), { response_body: { body: Buffer.from('x'), end_of_stream: true } }]);
      assert.equal(a.status.code, grpc.status.INVALID_ARGUMENT);
      const b = await script(p, [
        requestHeaders('notes', true),
        { response_headers: { headers: hdrs([[':status', '200']]), end_of_stream: false } },
        { request_body: { body: Buffer.from('x'), end_of_stream: true } },
      ]);
      assert.deepEqual(b.answers, ['request_headers', 'response_headers']);
      assert.equal(b.status.code, grpc.status.INVALID_ARGUMENT);
    } finally {
      p.close();
    }
  });

  it('a body over the domain limit: 413 payload_too_large, BUFFERED or STREAMED, nothing reaches the callee', async () => {
    const big = Buffer.alloc(5000, 0x61);
    for (const mode of [BUFFERED, { requestBody: 'STREAMED', responseBody: 'STREAMED' } as const]) {
      const p = peer({ mode, chunkSize: 1000, authzMetadata: boundMetadata({ domain: 'agent_memory' }) });
      let reached = false;
      try {
        const r = await p.exchange(put('/v1/memory/big', big, 'text/plain'), () => {
          reached = true;
          return { status: 204, headers: [] };
        });
        assertRefused(r, 413, 'payload_too_large');
        assert.equal(reached, false);
      } finally {
        p.close();
      }
    }
    // The limit is per domain: `notes` has the 1 MiB default.
    const p = peer({ authzMetadata: boundMetadata({ domain: 'notes' }) });
    try {
      const ok = await p.exchange(put('/v1/notes/big', big, 'text/plain', 'notes'), () => ({ status: 204, headers: [] }));
      assert.equal(ok.kind, 'upstream');
    } finally {
      p.close();
    }
  });

  it('a response over the limit is refused too (the reader never gets a truncated or plaintext body)', async () => {
    const p = peer({ authzMetadata: boundMetadata({ domain: 'agent_memory' }) });
    try {
      const r = await p.exchange(get('/v1/memory/huge'), () => ({ status: 200, headers: [['content-type', 'text/plain']], body: Buffer.alloc(5000, 0x62) }));
      assertRefused(r, 413, 'payload_too_large');
    } finally {
      p.close();
    }
  });

  it('JSON that is not UTF-8: 502 payload_rejected', async () => {
    const p = peer({ authzMetadata: boundMetadata({ domain: 'notes' }) });
    try {
      const body = Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')]);
      const r = await p.exchange(put('/v1/notes/j', body, 'application/json', 'notes'), () => ({ status: 204, headers: [] }));
      assertRefused(r, 502, 'payload_rejected');
    } finally {
      p.close();
    }
  });

  describe('ciphertext the reader must not get', () => {
    const store = new MemoryStore();
    const secret = Buffer.from('top secret memory');

    async function stored(domain: string, path: string): Promise<Buffer> {
      const p = peer({ authzMetadata: boundMetadata({ domain }) });
      try {
        await p.exchange(put(path, secret, 'text/plain', domain), store.handle);
      } finally {
        p.close();
      }
      return store.objects.get(path)!.body;
    }

    async function read(path: string, body: Buffer): Promise<ExchangeResult> {
      const p = peer({ authzMetadata: boundMetadata({ domain: 'agent_memory' }) });
      try {
        return await p.exchange(get(path), () => ({ status: 200, headers: [['content-type', 'application/jose']], body }));
      } finally {
        p.close();
      }
    }

    it('tampered ciphertext (one character of the ciphertext part changed): 502 payload_rejected', async () => {
      const jwe = (await stored('agent_memory', '/v1/memory/t')).toString();
      const parts = jwe.split('.');
      const c = parts[3]!;
      parts[3] = (c[0] === 'A' ? 'B' : 'A') + c.slice(1);
      assertRefused(await read('/v1/memory/t', Buffer.from(parts.join('.'))), 502, 'payload_rejected', secret);
      // And a tampered protected header (changes the AAD):
      const h = JSON.parse(Buffer.from(jwe.split('.')[0]!, 'base64url').toString());
      h.cty = 'text/html';
      const forged = [Buffer.from(JSON.stringify(h)).toString('base64url'), ...jwe.split('.').slice(1)].join('.');
      assertRefused(await read('/v1/memory/t', Buffer.from(forged)), 502, 'payload_rejected', secret);
    });

    it("another domain's JWE: 502 payload_rejected, even though this stream's keys are valid", async () => {
      const notesJwe = await stored('notes', '/v1/notes/other');
      assert.equal(decodeProtectedHeader(notesJwe.toString()).mesh_domain, 'notes');
      assertRefused(await read('/v1/memory/other', notesJwe), 502, 'payload_rejected', secret);
    });

    it('a JWE under a wrong key (same kid, other key material; or an unknown kid): 502 payload_rejected', async () => {
      const ring = JSON.parse(await readFile(t.keyringOf('agent_memory'), 'utf8')) as { keys: Array<{ kid: string }> };
      const kid = ring.keys[ring.keys.length - 1]!.kid;
      for (const k of [kid, 'unknown-kid']) {
        const jwe = await new CompactEncrypt(secret)
          .setProtectedHeader({ alg: 'A256KW', enc: 'A256GCM', kid: k, mesh_domain: 'agent_memory', cty: 'text/plain' })
          .encrypt(randomBytes(32));
        assertRefused(await read('/v1/memory/w', Buffer.from(jwe)), 502, 'payload_rejected', secret);
      }
    });
  });

  it('a request body the filter never sent (request_body_mode NONE) gets the response refused', async () => {
    const p = peer({ mode: { requestBody: 'NONE', responseBody: 'BUFFERED' }, authzMetadata: boundMetadata({ domain: 'notes' }) });
    try {
      const r = await p.exchange(put('/v1/notes/n', Buffer.from('x'), 'text/plain', 'notes'), () => ({ status: 204, headers: [] }));
      assertRefused(r, 500, 'internal_error');
    } finally {
      p.close();
    }
  });

  it('a STREAMED body ended by trailers cannot be replaced: refused, its chunks were cleared', async () => {
    const p = peer({ mode: { requestBody: 'STREAMED', responseBody: 'STREAMED', requestTrailers: 'SEND' }, chunkSize: 4, authzMetadata: boundMetadata({ domain: 'notes' }) });
    let reached = false;
    try {
      const req = { ...put('/v1/notes/tr', Buffer.from('plaintext body'), 'text/plain', 'notes'), trailers: [['x-sum', '1']] as Array<[string, string]> };
      const r = await p.exchange(req, () => {
        reached = true;
        return { status: 204, headers: [] };
      });
      assertRefused(r, 502, 'payload_rejected');
      assert.equal(reached, false);
    } finally {
      p.close();
    }
  });

  it('half-close mid-body ends the stream cleanly; cancel mid-body is survived; the server keeps serving', async () => {
    const p = peer();
    try {
      const half = await script(p, [requestHeaders(), { request_body: { body: Buffer.from('part'), end_of_stream: false } }]);
      assert.deepEqual(half.answers, ['request_headers', 'request_body']);
      assert.equal(half.status.code, grpc.status.OK);
      const cancelled = await script(p, [requestHeaders(), { request_body: { body: Buffer.from('part'), end_of_stream: false } }], { cancel: true });
      assert.equal(cancelled.status.code, grpc.status.CANCELLED);
      const after = await p.exchange(put('/v1/notes/alive', Buffer.from('still here'), 'text/plain', 'notes'), () => ({ status: 204, headers: [] }));
      assert.equal(after.kind, 'upstream');
    } finally {
      p.close();
    }
  });
});
