import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { extProcServiceDefinition } from '../../src/envoy/ext-proc/service.js';
import { decodeRequest, encodeResponse, type DecodedOrNot, type WireProcessingRequest } from '../../src/envoy/ext-proc/wire.js';
import { loadServices } from '../../src/envoy/protos.js';

/**
 * Bodies cross the ext_proc wire adapter without being copied (a view of the decoded message on the
 * way in, the handler's bytes on the way out); what is decoded and what goes on the wire must be the
 * same as before: the bytes of the body, whatever typed array carries them.
 */
const plain = loadServices().ExternalProcessor.service.Process!;
const served = extProcServiceDefinition()['Process']!;
const encodeRequest = plain.requestSerialize as (v: object) => Buffer;
const deserialize = served.requestDeserialize as (b: Buffer) => DecodedOrNot;
const serialize = served.responseSerialize as (v: object) => Buffer;
const decodeResponse = plain.responseDeserialize as (b: Buffer) => Record<string, { response?: { body_mutation?: { body?: Buffer; clear_body?: boolean } } }>;

describe('ext_proc wire adapter: bodies', () => {
  it('decodes request and response bodies to exactly the bytes sent', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 20_000 }), fc.boolean(), fc.constantFrom('request_body', 'response_body'), (body, eos, phase) => {
        const msg = decodeRequest(deserialize(encodeRequest({ [phase]: { body: Buffer.from(body), end_of_stream: eos } })));
        assert.equal(msg.message.type, 'body');
        assert.ok(msg.message.type === 'body');
        assert.ok(Buffer.isBuffer(msg.message.body));
        assert.deepEqual(Buffer.from(msg.message.body), Buffer.from(body));
        assert.equal(msg.message.endOfStream, eos);
      }),
    );
  });

  it('takes a body carried by a plain Uint8Array view (not a Buffer) as its bytes', () => {
    const backing = new Uint8Array(64);
    backing.set(Buffer.from('....{"a":1}....'), 0);
    const view = backing.subarray(4, 11);
    const raw: WireProcessingRequest = { request: 'request_body', request_body: { body: view, end_of_stream: true } };
    const msg = decodeRequest(raw);
    assert.ok(msg.message.type === 'body');
    assert.equal(msg.message.body.toString(), '{"a":1}');
    const none = decodeRequest({ request: 'request_body', request_body: { end_of_stream: true } });
    assert.ok(none.message.type === 'body');
    assert.equal(none.message.body.length, 0);
  });

  it('a replacement body goes on the wire as the same bytes whether the handler returned a Buffer or a Uint8Array view', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 20_000 }), fc.nat(16), (bytes, pad) => {
        const backing = new Uint8Array(bytes.length + 2 * pad);
        backing.set(bytes, pad);
        const asView = backing.subarray(pad, pad + bytes.length);
        const out = (body: Uint8Array) =>
          serialize(encodeResponse({ type: 'body', phase: 'request_body', body: { kind: 'replace', body }, headers: { set: [['content-type', 'application/jose']], remove: [] } }));
        const a = out(Buffer.from(bytes));
        const b = out(asView);
        assert.deepEqual(a, b);
        assert.deepEqual(Buffer.from(decodeResponse(a)['request_body']!.response!.body_mutation!.body!), Buffer.from(bytes));
      }),
    );
  });
});
