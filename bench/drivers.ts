import http2 from 'node:http2';
import { loadServices } from '../src/envoy/protos.js';
import { grpcFrame } from './frames.js';
import { latencySummary, type LatencySummary } from './stats.js';

/**
 * Node load drivers for what h2load cannot do: a different request body on every call (cold
 * credentials: h2load posts one data file) and bidirectional ext_proc streams. They speak gRPC over
 * plain `node:http2` with pre-encoded messages — a grpc-js client costs several times more CPU per
 * call than the server under test, and on a 2-core machine the driver's cost is taken from the server.
 */
export interface DriverResult extends LatencySummary {
  requests: number;
  failed: number;
  seconds: number;
  rps: number;
}

const GRPC_HEADERS = { ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers' };

/**
 * Reassembles length-prefixed gRPC messages from DATA chunks. Chunks are kept in a list and joined
 * once a whole message is there: joining on every chunk (as this did first) copied an ~87 KB JWE
 * answer ~5 times over in 16 KiB steps, and that garbage made the driver, which shares the 2 CPUs
 * with the server under test, cost ~700 µs per 64 KiB exchange against the bare server's ~110.
 */
class FrameReader {
  private chunks: Buffer[] = [];
  private held = 0;
  push(chunk: Buffer, onMessage: (m: Buffer) => void): void {
    this.chunks.push(chunk);
    this.held += chunk.length;
    for (;;) {
      if (this.held < 5) return;
      let head = this.chunks[0]!;
      if (head.length < 5) head = this.join();
      const len = head.readUInt32BE(1);
      if (this.held < 5 + len) return;
      if (head.length < 5 + len) head = this.join();
      onMessage(head.subarray(5, 5 + len));
      const rest = head.subarray(5 + len);
      this.chunks[0] = rest;
      this.held -= 5 + len;
      if (rest.length === 0) this.chunks.shift();
    }
  }
  private join(): Buffer {
    const whole = Buffer.concat(this.chunks, this.held);
    this.chunks = [whole];
    return whole;
  }
}

function sessions(address: string, n: number): http2.ClientHttp2Session[] {
  return Array.from({ length: n }, () => {
    // Envoy's HTTP/2 windows are large (initial_stream_window_size 256 MiB by default); Node's 64 KiB
    // default would make every large answer wait for a WINDOW_UPDATE round trip.
    const s = http2.connect(`http://${address}`, { settings: { initialWindowSize: 16 * 1024 * 1024 } });
    s.on('connect', () => s.setLocalWindowSize(16 * 1024 * 1024));
    s.on('error', () => undefined);
    return s;
  });
}

/**
 * Sends each pre-encoded CheckRequest once, `concurrency` at a time over `connections` HTTP/2
 * connections, until all are used or `durationS` passes; every answer is decoded and its status code
 * checked (0 = allow, 7/16 = deny).
 */
export async function driveChecks(o: {
  address: string;
  requests: Buffer[];
  concurrency: number;
  connections?: number;
  durationS: number;
  expectCode: number;
}): Promise<DriverResult> {
  const decode = loadServices().Authorization.service.Check!.responseDeserialize as (b: Buffer) => { status?: { code?: number } };
  const conns = sessions(o.address, o.connections ?? 4);
  const framed = o.requests.map(grpcFrame);
  const lat: number[] = [];
  let next = 0;
  let failed = 0;
  const start = performance.now();
  const deadline = start + o.durationS * 1000;
  const one = (i: number) =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      const req = conns[i % conns.length]!.request({ ...GRPC_HEADERS, ':path': '/envoy.service.auth.v3.Authorization/Check' });
      const reader = new FrameReader();
      let code: number | undefined;
      let grpcStatus = '';
      req.on('data', (c: Buffer) => reader.push(c, (m) => (code = decode(m).status?.code ?? 0)));
      req.on('trailers', (t) => (grpcStatus = String(t['grpc-status'] ?? '')));
      req.on('error', () => undefined);
      req.on('close', () => {
        if (grpcStatus === '0' && code === o.expectCode) lat.push(performance.now() - t0);
        else failed++;
        resolve();
      });
      req.end(framed[i]);
    });
  await Promise.all(
    Array.from({ length: o.concurrency }, async () => {
      while (next < framed.length && performance.now() < deadline) await one(next++);
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  for (const c of conns) c.close();
  return { requests: lat.length, failed, seconds, rps: lat.length / seconds, ...latencySummary(lat) };
}

/**
 * ext_proc exchanges as Envoy runs them with request headers SEND and request body BUFFERED: one stream
 * per HTTP request, headers (with the ext_authz metadata) → answer → whole body → answer → end.
 * `protectedBody` asserts that the body answer replaced the body (the PEP) or not (the baseline).
 */
/**
 * The request_headers message Envoy sends for a JSON POST to the memory service, with the ext_authz
 * dynamic metadata that names the domain (as Check would have set it).
 */
export function extProcRequestHeaders(domain: string, contentLength?: number): object {
  const headers = [
    [':authority', 'memory.agents.svc'],
    [':path', '/v1/memory/items'],
    [':method', 'POST'],
    ['content-type', 'application/json'],
    ...(contentLength === undefined ? [] : [['content-length', String(contentLength)]]),
  ];
  return {
    request_headers: {
      headers: { headers: headers.map(([key, v]) => ({ key, raw_value: Buffer.from(v!, 'latin1') })) },
      end_of_stream: false,
    },
    metadata_context: {
      filter_metadata: {
        'envoy.filters.http.ext_authz': {
          fields: { domain: { stringValue: domain }, tier: { stringValue: 'RETRIEVAL' }, role: { stringValue: 'RETRIEVER' }, agent_id: { stringValue: 'agent-7' } },
        },
      },
    },
  };
}

export async function driveExtProc(o: {
  address: string;
  domain: string;
  body: Buffer;
  concurrency: number;
  durationS: number;
  protectedBody: boolean;
}): Promise<DriverResult & { mbPerS: number }> {
  const def = loadServices().ExternalProcessor.service.Process!;
  const encode = def.requestSerialize as (v: object) => Buffer;
  const decode = def.responseDeserialize as (b: Buffer) => Record<string, { response?: { body_mutation?: { body?: Buffer } } } | undefined>;
  const headersMsg = grpcFrame(encode(extProcRequestHeaders(o.domain, o.body.length)));
  const bodyMsg = grpcFrame(encode({ request_body: { body: o.body, end_of_stream: true } }));
  const conns = sessions(o.address, 2);
  let n = 0;
  const exchange = () =>
    new Promise<boolean>((resolve) => {
      const req = conns[n++ % conns.length]!.request({ ...GRPC_HEADERS, ':path': '/envoy.service.ext_proc.v3.ExternalProcessor/Process' });
      const reader = new FrameReader();
      let step = 0;
      let ok = false;
      let grpcStatus = '';
      req.on('data', (c: Buffer) =>
        reader.push(c, (m) => {
          const msg = decode(m);
          if (step === 0) {
            step = 1;
            if (!msg.request_headers) return void req.close();
            req.end(bodyMsg);
          } else if (step === 1) {
            step = 2;
            const replaced = (msg.request_body?.response?.body_mutation?.body?.length ?? 0) > 0;
            ok = msg.request_body != null && replaced === o.protectedBody;
          }
        }),
      );
      req.on('trailers', (t) => (grpcStatus = String(t['grpc-status'] ?? '')));
      req.on('error', () => undefined);
      req.on('close', () => resolve(ok && grpcStatus === '0'));
      req.write(headersMsg);
    });
  const lat: number[] = [];
  let failed = 0;
  const start = performance.now();
  const deadline = start + o.durationS * 1000;
  await Promise.all(
    Array.from({ length: o.concurrency }, async () => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        if (await exchange()) lat.push(performance.now() - t0);
        else failed++;
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  for (const c of conns) c.close();
  const rps = lat.length / seconds;
  return { requests: lat.length, failed, seconds, rps, mbPerS: (rps * o.body.length) / 1e6, ...latencySummary(lat) };
}
