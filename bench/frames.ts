import { loadServices } from '../src/envoy/protos.js';

/**
 * CheckRequests as Envoy (an Istio sidecar) sends them, encoded with the server's own proto loading
 * (`envoy/protos.ts`: the pinned Envoy protos, the same loader options), then gRPC-framed.
 */
const CALLER = 'spiffe://cluster.local/ns/agents/sa/retriever';
const CALLEE = 'spiffe://cluster.local/ns/agents/sa/memory';

export function envoyCheckRequest(o: { domain: string; token?: string; host?: string; path?: string }) {
  const host = o.host ?? 'memory.agents.svc:8080';
  const path = o.path ?? '/v1/memory/items?limit=20';
  const id = 'c6d5e3f1-8a4b-4c2d-9e7f-0a1b2c3d4e5f';
  const headers: Record<string, string> = {
    ':authority': host,
    ':path': path,
    ':method': 'POST',
    ':scheme': 'http',
    'content-type': 'application/json',
    'content-length': '4096',
    accept: 'application/json',
    'accept-encoding': 'gzip, deflate',
    'user-agent': 'agent-runtime/1.4.2 (python-httpx/0.27.0; linux; x86_64)',
    'x-request-id': id,
    'x-forwarded-proto': 'http',
    'x-forwarded-for': '10.12.0.7',
    'x-envoy-attempt-count': '1',
    'x-envoy-expected-rq-timeout-ms': '15000',
    'x-envoy-decorator-operation': 'memory.agents.svc.cluster.local:8080/*',
    'x-envoy-peer-metadata-id': 'sidecar~10.12.0.7~retriever-6d9f7c8b5-x2k4p.agents~agents.svc.cluster.local',
    'x-envoy-peer-metadata':
      'ChQKDkFQUF9DT05UQUlORVJTEgIaAAoaCgpDTFVTVEVSX0lEEgwaCkt1YmVybmV0ZXMKHgoNSVNUSU9fVkVSU0lPThINGgsxLjIyLjAtZGlzdGxlc3MKHAoMSU5TVEFOQ0VfSVBTEgwaCjEwLjEyLjAuNw==',
    'x-forwarded-client-cert': `By=${CALLEE};Hash=4b1c2a9f0e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b;Subject="";URI=${CALLER}`,
    'x-b3-traceid': '80f198ee56343ba864fe8b2a57d3eff7',
    'x-b3-spanid': 'e457b5a2e4d86bd1',
    'x-b3-parentspanid': '05e3ac9a4f6e3b90',
    'x-b3-sampled': '1',
    traceparent: '00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01',
    ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
  };
  return {
    attributes: {
      source: { principal: CALLER, address: { socket_address: { address: '10.12.0.7', port_value: 41234 } } },
      destination: { principal: CALLEE, address: { socket_address: { address: '10.12.0.9', port_value: 8080 } } },
      request: {
        time: { seconds: Math.floor(Date.now() / 1000), nanos: 0 },
        http: { id, method: 'POST', path, host, scheme: 'http', protocol: 'HTTP/1.1', headers, size: '4096' },
      },
      context_extensions: { domain: o.domain },
    },
  };
}

/** Header bytes in the request (names + values), to show it is Envoy-sized. */
export function headerBytes(req: ReturnType<typeof envoyCheckRequest>): number {
  let n = 0;
  for (const [k, v] of Object.entries(req.attributes.request.http.headers)) n += k.length + v.length;
  return n;
}

export function encodeCheckRequest(req: object): Buffer {
  const serialize = loadServices().Authorization.service.Check!.requestSerialize as (v: object) => Buffer;
  return serialize(req);
}

/** The gRPC length-prefixed message: 1 byte "not compressed", 4 bytes big-endian length, the bytes. */
export function grpcFrame(message: Buffer): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt8(0, 0);
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}
