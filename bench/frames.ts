import { envoyCheckRequest as peerCheckRequest } from '../src/envoy/peer/check-request.js';
import { loadServices } from '../src/envoy/protos.js';

/**
 * CheckRequests as Envoy (an Istio sidecar) sends them — the shared builder (`envoy/peer`) with the
 * sidecar's headers plus what a real agent call carries (accept, W3C trace context, Envoy's decorator),
 * about 1.1 KiB of headers with the bearer token — encoded with the server's own proto loading
 * (`envoy/protos.ts`: the pinned Envoy protos, the same loader options), then gRPC-framed.
 */
export function envoyCheckRequest(o: { domain: string; token?: string }) {
  return peerCheckRequest({
    domain: o.domain,
    token: o.token,
    host: 'memory.agents.svc:8080',
    path: '/v1/memory/items?limit=20',
    sidecarHeaders: true,
    headers: {
      accept: 'application/json',
      'content-length': '4096',
      'x-envoy-decorator-operation': 'memory.agents.svc.cluster.local:8080/*',
      traceparent: '00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01',
    },
  });
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
