import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { headerMapOf, mayRemoveHeader, maySetHeader } from '../../src/envoy/ext-proc/headers.js';
import { ProtocolViolation } from '../../src/envoy/ext-proc/messages.js';
import { decodeRequest, encodeResponse, UNDECODABLE } from '../../src/envoy/ext-proc/wire.js';
import { isJsonContentType } from '../../src/protect/pipeline.js';
import { BodyBuffer } from '../../src/envoy/ext-proc/body-buffer.js';

describe('ext_proc wire adapter', () => {
  it('reads header values from raw_value, else value; joins repeats; lower-cases names', () => {
    const m = headerMapOf([
      { key: 'X-A', raw_value: Buffer.from('raw') },
      { key: 'x-b', value: 'plain' },
      { key: 'x-a', raw_value: Buffer.from('two') },
      { key: 'x-c', value: 'ignored', raw_value: Buffer.from('wins') },
    ]);
    assert.deepEqual([...m], [['x-a', 'raw, two'], ['x-b', 'plain'], ['x-c', 'wins']]);
  });

  it('never emits a mutation Envoy refuses by default', () => {
    for (const n of ['host', ':authority', ':scheme', ':method', ':path', 'x-envoy-original-path']) assert.equal(maySetHeader(n), false, n);
    for (const n of ['host', ':authority', ':status']) assert.equal(mayRemoveHeader(n), false, n);
    assert.equal(mayRemoveHeader('x-envoy-upstream-service-time'), true);
    const out = encodeResponse({
      type: 'body',
      phase: 'request_body',
      body: { kind: 'keep' },
      headers: { set: [['host', 'evil'], [':method', 'GET'], ['x-envoy-x', '1'], ['content-type', 'a/b']], remove: [':path', 'host', 'server'] },
    }) as { request_body: { response: { header_mutation: { set_headers: Array<{ header: { key: string; raw_value: Buffer; value?: string } }>; remove_headers: string[] } } } };
    const hm = out.request_body.response.header_mutation;
    assert.deepEqual(hm.set_headers.map((s) => s.header.key), ['content-type']);
    assert.equal(hm.set_headers[0]!.header.value, undefined, 'raw_value only');
    assert.deepEqual(hm.remove_headers, ['server']);
  });

  it('turns every shape of bad message into a ProtocolViolation', () => {
    assert.throws(() => decodeRequest(UNDECODABLE), ProtocolViolation);
    assert.throws(() => decodeRequest({}), ProtocolViolation);
    assert.throws(() => decodeRequest({ request: 'something_new' }), ProtocolViolation);
  });

  it('reads the ext_authz metadata Struct (camelCase well-known types under keepCase)', () => {
    const msg = decodeRequest({
      request: 'request_trailers',
      request_trailers: {},
      metadata_context: { filter_metadata: { 'envoy.filters.http.ext_authz': { fields: { domain: { stringValue: 'd' }, n: {} } } } },
    });
    assert.deepEqual(msg.authz, { domain: 'd' });
  });

  it('bounds body buffering at the limit', () => {
    const b = new BodyBuffer(10);
    assert.equal(b.add(Buffer.alloc(6)), 'ok');
    assert.equal(b.add(Buffer.alloc(4)), 'ok');
    assert.equal(b.add(Buffer.alloc(1)), 'too_large');
  });

  it('knows JSON content types', () => {
    assert.equal(isJsonContentType('application/json; charset=utf-8'), true);
    assert.equal(isJsonContentType('application/problem+json'), true);
    assert.equal(isJsonContentType('text/plain'), false);
    assert.equal(isJsonContentType(undefined), false);
  });
});
