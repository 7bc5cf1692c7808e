import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { brotliCompressSync, brotliDecompressSync, deflateSync, gunzipSync, gzipSync, inflateSync } from 'node:zlib';
import { EnvoyPeer, header, type HeaderList, type PeerOptions } from '../support/envoy-peer.js';
import { boundMetadata, get, MemoryStore, put, startTestServer, TEST_POLICY, type TestServer } from '../support/extproc-server.js';

/**
 * Leak guard 2 over the real gRPC wire: the server as `mesh-pep serve` runs it, driven by the Envoy
 * peer. Each transform and each content coding is sent as real bytes in a callee's response (the
 * pass-through path, where the caller sees exactly what the leak guard let through) and, for codings,
 * in a request body as well.
 */
const POLICY = `${TEST_POLICY}    - name: leak_redact
      tier: RETRIEVAL
      allowed_roles: [RETRIEVER]
      metadata_masking: false
      audit_level: FULL_MESH
      dlp: {action: redact, canaries: ["MESHPEP-CANARY-[0-9a-f]{16}"]}
    - name: leak_block
      tier: RETRIEVAL
      allowed_roles: [RETRIEVER]
      metadata_masking: false
      audit_level: FULL_MESH
      dlp: {action: block, canaries: ["MESHPEP-CANARY-[0-9a-f]{16}"]}
`;

const BUFFERED: PeerOptions['mode'] = { requestBody: 'BUFFERED', responseBody: 'BUFFERED' };
const STREAMED: PeerOptions['mode'] = { requestBody: 'STREAMED', responseBody: 'STREAMED' };

const STRIPE = `sk_live_${'4eC39HqLyjWDarjtT1zdp7dc'}`;
const EMAIL = 'alice.smith@corp-mail.com';
const CARD = '4111 1111 1111 1111';
const hex = (s: string) => Buffer.from(s, 'utf8').toString('hex');
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/** Each transform an agent (or an attacker) wraps a value in, with the value it hides. */
const TRANSFORMS: ReadonlyArray<{ name: string; body: string; value: string }> = [
  { name: 'plain', body: `mail ${EMAIL} today`, value: EMAIL },
  { name: 'zero-width characters in a card', body: `card 4111\u200b1111\u200c1111\u200d1111 ok`, value: '1111' },
  { name: 'NBSP separators in a card', body: `card 4111\u00a01111\u00a01111\u00a01111 ok`, value: '1111' },
  { name: 'Unicode hyphens in an SSN', body: 'ssn 536\u201122\u20111234 ok', value: '1234' },
  { name: 'fullwidth digits', body: 'card ４１１１１１１１１１１１１１１１ ok', value: '１１１１' },
  { name: 'zero-width inside a canary', body: 'tag MESHPEP-CANARY-0123\u200b456789abcdef end', value: '456789abcdef' },
  { name: 'zero-width inside an AWS key', body: 'id AKIAIOSF\u200bODNN7EXAMPLF end', value: 'ODNN7EXAMPLF' },
  { name: 'hex', body: `blob ${hex(`mail ${EMAIL} now`)} end`, value: hex(EMAIL).slice(0, 20) },
  { name: 'HTML character references', body: 'to alice.smith&#64;corp-mail&#x2e;com end', value: 'alice.smith&#64;' },
  { name: 'named HTML references', body: 'to alice.smith&commat;corp-mail.com end', value: 'alice.smith&commat;' },
  {
    name: 'MIME base64 wrapped at 76 columns',
    body: `${b64(`${'x'.repeat(50)} key ${STRIPE} end ${'y'.repeat(60)}`).replace(/(.{76})/g, '$1\r\n')}\r\n`,
    value: STRIPE,
  },
  { name: 'double URL encoding', body: 'q=alice.smith%2540corp-mail.com&x=1', value: 'alice.smith%2540' },
  { name: 'base64', body: `data ${b64(`mail ${EMAIL} now`)} end`, value: b64(`mail ${EMAIL} now`) },
  { name: '\\u escapes', body: 'to alice.smith\\u0040corp-mail.com end', value: 'alice.smith\\u0040' },
];

type Coding = 'gzip' | 'deflate' | 'br';
const ENCODE: Record<Coding, (b: Buffer) => Buffer> = { gzip: gzipSync, deflate: deflateSync, br: brotliCompressSync };
const DECODE: Record<Coding, (b: Buffer) => Buffer> = { gzip: gunzipSync, deflate: inflateSync, br: brotliDecompressSync };

function getRequest(domain: string): { headers: HeaderList } {
  return get('/v1/x', domain);
}

function callee(body: Buffer, headers: HeaderList) {
  return () => ({ status: 200, headers: [...headers, ['content-length', String(body.length)]] as HeaderList, body });
}

describe('leak guard 2 over real gRPC', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer(POLICY);
  });
  after(async () => {
    await t?.close();
  });

  function peer(domain: string, over: Partial<PeerOptions> = {}): EnvoyPeer {
    return new EnvoyPeer({ address: t.address, mode: BUFFERED, allowEnvoy: true, authzMetadata: boundMetadata({ domain, role: 'RETRIEVER', decision_id: `dec-${domain}`, agent_id: 'agent-a' }), ...over });
  }

  for (const tr of TRANSFORMS) {
    it(`transform "${tr.name}": redacted in a redact domain, 403 dlp_blocked in a block domain`, async () => {
      const body = Buffer.from(tr.body, 'utf8');
      const p = peer('leak_redact');
      try {
        const r = await p.exchange(getRequest('leak_redact'), callee(body, [['content-type', 'text/plain; charset=utf-8']]));
        assert.equal(r.response.status, 200);
        const got = r.response.body.toString('utf8');
        assert.ok(got.includes('REDACTED') || /5245444143544544/i.test(got) || got !== tr.body, `not redacted: ${got}`);
        assert.ok(!got.includes(tr.value), `value survived: ${got}`);
        assert.equal(header(r.response.headers, 'content-length'), String(r.response.body.length));
      } finally {
        p.close();
      }
      const b = peer('leak_block');
      try {
        const r = await b.exchange(getRequest('leak_block'), callee(body, [['content-type', 'text/plain']]));
        assert.equal(r.response.status, 403);
        assert.equal(header(r.response.headers, 'x-mesh-reason'), 'dlp_blocked');
      } finally {
        b.close();
      }
    });
  }

  for (const coding of ['gzip', 'deflate', 'br'] as const) {
    it(`content-encoding ${coding}: a finding is redacted and the body re-encoded; a clean body passes byte for byte`, async () => {
      const p = peer('leak_redact');
      try {
        const dirty = ENCODE[coding](Buffer.from(JSON.stringify({ note: `mail ${EMAIL}`, card: CARD })));
        const r = await p.exchange(getRequest('leak_redact'), callee(dirty, [['content-type', 'application/json'], ['content-encoding', coding]]));
        assert.equal(r.response.status, 200);
        assert.equal(header(r.response.headers, 'content-encoding'), coding);
        assert.deepEqual(JSON.parse(DECODE[coding](r.response.body).toString()), { note: 'mail [REDACTED:EMAIL]', card: '[REDACTED:CREDIT_CARD]' });

        const clean = ENCODE[coding](Buffer.from(JSON.stringify({ note: 'nothing to see', n: [1, 2, 3] })));
        const c = await p.exchange(getRequest('leak_redact'), callee(clean, [['content-type', 'application/json'], ['content-encoding', coding]]));
        assert.equal(c.response.status, 200);
        assert.deepEqual(c.response.body, clean);
      } finally {
        p.close();
      }
    });

    it(`content-encoding ${coding} on a request: a clean JSON body is sealed decoded and reads back intact; a finding blocks`, async () => {
      const store = new MemoryStore();
      const p = peer('leak_block');
      try {
        const plain = Buffer.from(JSON.stringify({ memo: 'quarterly numbers', total: 12 }));
        const w = await p.exchange(
          { ...put('/v1/memory/z', ENCODE[coding](plain), 'application/json', 'leak_block'), headers: [...put('/v1/memory/z', plain, 'application/json', 'leak_block').headers, ['content-encoding', coding]] },
          store.handle,
        );
        assert.equal(w.kind, 'upstream', JSON.stringify(w.response.headers));
        assert.equal(header(w.upstreamRequest!.headers, 'content-encoding'), undefined);
        const r = await p.exchange(get('/v1/memory/z', 'leak_block'), store.handle);
        assert.equal(r.response.status, 200);
        assert.deepEqual(r.response.body, plain);

        const secret = ENCODE[coding](Buffer.from(JSON.stringify({ memo: `key ${STRIPE}` })));
        const d = await p.exchange({ ...put('/v1/memory/y', secret, 'text/plain', 'leak_block'), headers: [...put('/v1/memory/y', secret, 'text/plain', 'leak_block').headers, ['content-encoding', coding]] }, store.handle);
        assert.equal(d.kind, 'local');
        assert.equal(header(d.response.headers, 'x-mesh-reason'), 'dlp_blocked');
        assert.ok(!store.objects.has('/v1/memory/y'));
      } finally {
        p.close();
      }
    });
  }

  it('an undecodable body is refused with payload_rejected in a block domain, request and response', async () => {
    const store = new MemoryStore();
    const p = peer('leak_block');
    try {
      const junk = Buffer.from('this is not gzip at all, it only says so');
      const base = put('/v1/memory/u', junk, 'application/json', 'leak_block');
      const w = await p.exchange({ ...base, headers: [...base.headers, ['content-encoding', 'gzip']] }, store.handle);
      assert.equal(w.kind, 'local');
      assert.equal(w.response.status, 502);
      assert.equal(header(w.response.headers, 'x-mesh-reason'), 'payload_rejected');
      assert.ok(!store.objects.has('/v1/memory/u'));
      for (const coding of ['gzip', 'br', 'zstd']) {
        const r = await p.exchange(getRequest('leak_block'), callee(junk, [['content-type', 'text/plain'], ['content-encoding', coding]]));
        assert.equal(r.response.status, 502, coding);
        assert.equal(header(r.response.headers, 'x-mesh-reason'), 'payload_rejected');
        assert.ok(!r.response.body.includes(junk));
      }
    } finally {
      p.close();
    }
  });

  it('a blocked body names its finding in the audit: entity and layer, never the value', async () => {
    const p = peer('leak_block');
    try {
      const body = Buffer.from(JSON.stringify({ blob: b64(`the key is ${STRIPE}`) }));
      const r = await p.exchange(getRequest('leak_block'), callee(gzipSync(body), [['content-type', 'application/json'], ['content-encoding', 'gzip']]));
      assert.equal(r.response.status, 403);
      const records = await t.auditRecords();
      const rec = records.reverse().find((x) => x.reason === 'dlp_blocked') as unknown as Record<string, unknown>;
      assert.ok(rec, 'no dlp_blocked record');
      assert.deepEqual(rec.findings, { STRIPE_KEY: 1 });
      assert.deepEqual(rec.finding_layers, ['STRIPE_KEY@json>base64']);
      assert.ok(!JSON.stringify(records).includes(STRIPE.slice(8)));
    } finally {
      p.close();
    }
  });

  describe('streamed text/event-stream and NDJSON responses', () => {
    const events = [
      { jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'working on it' }] } },
      { jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: `the key is ${STRIPE} and mail ${EMAIL}` }] } },
      { jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'done' }] } },
    ];
    const sse = Buffer.from(events.map((e, i) => `id: ${i}\nevent: message\ndata: ${JSON.stringify(e)}\n\n`).join(''));
    const ndjson = Buffer.from(events.map((e) => `${JSON.stringify(e)}\n`).join(''));

    for (const chunkSize of [5, 17, 64]) {
      it(`SSE in ${chunkSize}-byte chunks: a value split across chunks is redacted, every event stays well-formed`, async () => {
        const p = peer('leak_redact', { mode: STREAMED, chunkSize });
        try {
          const r = await p.exchange(getRequest('leak_redact'), callee(sse, [['content-type', 'text/event-stream']]));
          assert.equal(r.response.status, 200);
          const got = r.response.body.toString();
          assert.ok(!got.includes(STRIPE.slice(8)) && !got.includes(EMAIL), got);
          const datas = got.split('\n\n').filter(Boolean).map((ev) => JSON.parse(ev.split('\n').find((l) => l.startsWith('data: '))!.slice(6)));
          assert.equal(datas.length, 3);
          assert.equal(datas[1].result.content[0].text, 'the key is [REDACTED:STRIPE_KEY] and mail [REDACTED:EMAIL]');
          assert.deepEqual(datas[0], events[0]);
        } finally {
          p.close();
        }
      });
    }

    it('SSE in a block domain: the stream is cut before the event holding the value reaches the caller', async () => {
      const p = peer('leak_block', { mode: STREAMED, chunkSize: 9 });
      try {
        const r = await p.exchange(getRequest('leak_block'), callee(sse, [['content-type', 'text/event-stream']]));
        assert.ok(!r.response.body.includes(Buffer.from(STRIPE.slice(8))));
        assert.ok(!r.response.body.includes(Buffer.from(EMAIL)));
      } finally {
        p.close();
      }
    });

    it('NDJSON streamed in small chunks is redacted line by line; a clean stream passes byte for byte', async () => {
      const p = peer('leak_redact', { mode: STREAMED, chunkSize: 11 });
      try {
        const r = await p.exchange(getRequest('leak_redact'), callee(ndjson, [['content-type', 'application/x-ndjson']]));
        const lines = r.response.body.toString().trim().split('\n').map((l) => JSON.parse(l));
        assert.equal(lines[1].result.content[0].text, 'the key is [REDACTED:STRIPE_KEY] and mail [REDACTED:EMAIL]');
        const clean = Buffer.from(`${JSON.stringify(events[0])}\n${JSON.stringify(events[2])}\n`);
        const c = await p.exchange(getRequest('leak_redact'), callee(clean, [['content-type', 'application/x-ndjson']]));
        assert.deepEqual(c.response.body, clean);
        const s = await p.exchange(getRequest('leak_redact'), callee(Buffer.from(`data: ${JSON.stringify(events[0])}\n\n`), [['content-type', 'text/event-stream']]));
        assert.equal(s.response.body.toString(), `data: ${JSON.stringify(events[0])}\n\n`);
      } finally {
        p.close();
      }
    });
  });
});
