import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { extProcServiceDefinition } from '../../src/envoy/ext-proc/service.js';
import { EnvoyPeer, PeerProtocolError } from '../support/envoy-peer.js';

/**
 * The test peer must catch servers that break Envoy's rules, or the ext_proc tests would prove
 * nothing. These servers are deliberately wrong, hand-written ext_proc peers.
 */
async function serve(handler: (msg: { request?: string }, call: grpc.ServerDuplexStream<{ request?: string }, object>) => void): Promise<{ address: string; close: () => void }> {
  const server = new grpc.Server();
  server.addService(extProcServiceDefinition(), {
    Process: (call: grpc.ServerDuplexStream<{ request?: string }, object>) => {
      call.on('data', (m: { request?: string }) => handler(m, call));
      call.on('end', () => call.end());
    },
  });
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  return { address: `127.0.0.1:${port}`, close: () => server.forceShutdown() };
}

const request = {
  headers: [[':method', 'PUT'], [':path', '/'], ['content-length', '5']] as Array<[string, string]>,
  body: Buffer.from('hello'),
};

describe('the Envoy test peer enforces Envoy rules', () => {
  it('a BUFFERED body replaced without fixing content-length becomes a local 500', async () => {
    const s = await serve((m, call) => {
      if (m.request === 'request_headers') call.write({ request_headers: { response: {} } });
      else if (m.request === 'request_body') call.write({ request_body: { response: { body_mutation: { body: Buffer.from('longer body') } } } });
    });
    const p = new EnvoyPeer({ address: s.address, mode: { requestBody: 'BUFFERED', responseBody: 'NONE' } });
    try {
      const r = await p.exchange(request, () => ({ status: 200, headers: [] }));
      assert.equal(r.kind, 'local');
      assert.equal(r.localReason, 'content_length_mismatch');
    } finally {
      p.close();
      s.close();
    }
  });

  it('an answer of the wrong type, or a clean close instead of an answer, is a protocol error', async () => {
    const wrong = await serve((m, call) => {
      if (m.request === 'request_headers') call.write({ request_body: { response: {} } });
    });
    const closes = await serve((m, call) => {
      if (m.request === 'request_headers') call.end();
    });
    for (const s of [wrong, closes]) {
      const p = new EnvoyPeer({ address: s.address, mode: { requestBody: 'BUFFERED', responseBody: 'NONE' } });
      try {
        await assert.rejects(p.exchange(request, () => ({ status: 200, headers: [] })), PeerProtocolError);
      } finally {
        p.close();
        s.close();
      }
    }
  });

  it('two answers to one message are caught', async () => {
    const s = await serve((m, call) => {
      if (m.request === 'request_headers') {
        call.write({ request_headers: { response: {} } });
        call.write({ request_headers: { response: {} } });
      } else if (m.request === 'request_body') call.write({ request_body: { response: {} } });
    });
    const p = new EnvoyPeer({ address: s.address, mode: { requestBody: 'BUFFERED', responseBody: 'NONE' } });
    try {
      await assert.rejects(p.exchange(request, () => ({ status: 200, headers: [] })), PeerProtocolError);
    } finally {
      p.close();
      s.close();
    }
  });
});
