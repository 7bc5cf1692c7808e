import * as grpc from '@grpc/grpc-js';
import { loadServices } from '../src/envoy/protos.js';
import { latencySummary, type LatencySummary } from './stats.js';

/**
 * Node load drivers for what h2load cannot do: a different request body on every call (cold
 * credentials: h2load posts one data file) and bidirectional ext_proc streams. Both run in the
 * benchmark process, so they share the machine with the server exactly as h2load does.
 */
export interface DriverResult extends LatencySummary {
  requests: number;
  failed: number;
  seconds: number;
  rps: number;
}

const identity = (b: Buffer) => b;

/**
 * Sends each pre-encoded CheckRequest once (round-robin over `concurrency` callers) until all are used
 * or `durationS` passes; `expect` is checked on every decoded answer (0 = allow, 7/16 = deny).
 */
export async function driveChecks(o: { address: string; requests: Buffer[]; concurrency: number; durationS: number; expectCode: number }): Promise<DriverResult> {
  const client = new grpc.Client(o.address, grpc.credentials.createInsecure());
  const decode = loadServices().Authorization.service.Check!.responseDeserialize as (b: Buffer) => { status?: { code?: number } };
  const lat: number[] = [];
  let next = 0;
  let failed = 0;
  const start = performance.now();
  const deadline = start + o.durationS * 1000;
  const one = () =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      client.makeUnaryRequest('/envoy.service.auth.v3.Authorization/Check', identity, identity, o.requests[next++]!, (err, res) => {
        if (err || !res || (decode(res).status?.code ?? 0) !== o.expectCode) failed++;
        else lat.push(performance.now() - t0);
        resolve();
      });
    });
  await Promise.all(
    Array.from({ length: o.concurrency }, async () => {
      while (next < o.requests.length && performance.now() < deadline) await one();
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  client.close();
  return { requests: lat.length, failed, seconds, rps: lat.length / seconds, ...latencySummary(lat) };
}

/**
 * ext_proc exchanges as Envoy runs them with request headers SEND and request body BUFFERED: one stream
 * per HTTP request, headers (with the ext_authz metadata) → answer → whole body → answer → end.
 * `protectedBody` asserts that the body answer replaced the body (the PEP) or not (the baseline).
 */
export async function driveExtProc(o: {
  address: string;
  domain: string;
  body: Buffer;
  concurrency: number;
  durationS: number;
  protectedBody: boolean;
}): Promise<DriverResult & { mbPerS: number }> {
  const Ctor = loadServices().ExternalProcessor;
  const client = new Ctor(o.address, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 * 1024 * 1024 }) as unknown as {
    Process(): grpc.ClientDuplexStream<object, Record<string, { response?: { body_mutation?: { body?: Buffer } } } | undefined>>;
    close(): void;
  };
  const headers = {
    headers: {
      headers: [
        [':authority', 'memory.agents.svc'],
        [':path', '/v1/memory/items'],
        [':method', 'POST'],
        ['content-type', 'application/json'],
        ['content-length', String(o.body.length)],
      ].map(([key, v]) => ({ key, raw_value: Buffer.from(v!, 'latin1') })),
    },
    end_of_stream: false,
  };
  const metadata = {
    filter_metadata: {
      'envoy.filters.http.ext_authz': {
        fields: { domain: { stringValue: o.domain }, tier: { stringValue: 'RETRIEVAL' }, role: { stringValue: 'RETRIEVER' }, agent_id: { stringValue: 'agent-7' } },
      },
    },
  };
  const exchange = () =>
    new Promise<boolean>((resolve) => {
      const call = client.Process();
      let step = 0;
      let ok = false;
      call.on('data', (m) => {
        if (step === 0) {
          step = 1;
          if (!m.request_headers) return call.cancel();
          call.write({ request_body: { body: o.body, end_of_stream: true } });
        } else {
          const replaced = (m.request_body?.response?.body_mutation?.body?.length ?? 0) > 0;
          ok = m.request_body !== undefined && m.request_body !== null && replaced === o.protectedBody;
          call.end();
        }
      });
      call.on('error', () => resolve(false));
      call.on('end', () => resolve(ok));
      call.on('status', () => undefined);
      call.write({ request_headers: headers, metadata_context: metadata });
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
  client.close();
  const rps = lat.length / seconds;
  return { requests: lat.length, failed, seconds, rps, mbPerS: (rps * o.body.length) / 1e6, ...latencySummary(lat) };
}
