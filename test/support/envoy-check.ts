import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { loadServices } from '../../src/envoy/protos.js';
import { startServer, type RunningServer } from '../../src/server/start.js';
import { createLogger } from '../../src/telemetry/logger.js';

/**
 * Plays Envoy's ext_authz side: CheckRequests shaped as an Istio sidecar sends them (lower-case
 * headers with pseudo-headers, Envoy/Istio request headers, SPIFFE principals, per-route context
 * extensions), over a real gRPC client built from Envoy's protos.
 */
export interface EnvoyRequestOptions {
  host?: string;
  path?: string;
  method?: string;
  token?: string;
  authorization?: string;
  headers?: Record<string, string>;
  principal?: string;
  domain?: string;
  extensions?: Record<string, string>;
  /** Omit Envoy's usual request headers (x-forwarded-*, x-envoy-*, user-agent). */
  bare?: boolean;
}

export const CALLER_SPIFFE = 'spiffe://cluster.local/ns/agents/sa/retriever';
export const CALLEE_SPIFFE = 'spiffe://cluster.local/ns/agents/sa/memory';

export function envoyCheckRequest(o: EnvoyRequestOptions = {}) {
  const host = o.host ?? 'memory.agents.svc';
  const path = o.path ?? '/v1/memory/items';
  const method = o.method ?? 'POST';
  const id = randomUUID();
  const headers: Record<string, string> = {
    ':authority': host,
    ':path': path,
    ':method': method,
    ':scheme': 'http',
    'x-request-id': id,
    ...(o.bare
      ? {}
      : {
          'content-type': 'application/json',
          'user-agent': 'agent-runtime/1.4 (python-httpx)',
          'x-forwarded-proto': 'http',
          'x-forwarded-for': '10.12.0.7',
          'x-envoy-attempt-count': '1',
          'x-envoy-expected-rq-timeout-ms': '15000',
          'x-envoy-peer-metadata-id': 'sidecar~10.12.0.7~retriever-6d9f.agents~agents.svc.cluster.local',
          'x-envoy-peer-metadata': 'ChQKDkFQUF9DT05UQUlORVJTEgIaAA==',
          'x-forwarded-client-cert': `By=${CALLEE_SPIFFE};Hash=4b1c2a;Subject="";URI=${CALLER_SPIFFE}`,
          'x-b3-traceid': '80f198ee56343ba864fe8b2a57d3eff7',
          'x-b3-spanid': 'e457b5a2e4d86bd1',
          'x-b3-sampled': '1',
        }),
    ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
    ...(o.authorization ? { authorization: o.authorization } : {}),
    ...o.headers,
  };
  return {
    attributes: {
      source: { principal: o.principal ?? CALLER_SPIFFE, address: { socket_address: { address: '10.12.0.7', port_value: 41234 } } },
      destination: { principal: CALLEE_SPIFFE, address: { socket_address: { address: '10.12.0.9', port_value: 8080 } } },
      request: {
        time: { seconds: Math.floor(Date.now() / 1000), nanos: 0 },
        http: { id, method, path, host, scheme: 'http', protocol: 'HTTP/1.1', headers, size: '-1' },
      },
      context_extensions: { ...(o.domain ? { domain: o.domain } : {}), ...o.extensions },
    },
  };
}

export interface HeaderOptionView {
  header: { key: string; value: string };
  append?: { value: boolean } | null;
}

export interface CheckResponseView {
  status: { code: number; message: string };
  ok_response?: { headers: HeaderOptionView[]; headers_to_remove: string[] } | null;
  denied_response?: { status: { code: string | number }; headers: HeaderOptionView[]; body: string } | null;
  dynamic_metadata?: { fields: Record<string, { stringValue?: string }> } | null;
  http_response?: string;
}

export class CheckClient {
  private readonly client: grpc.Client;
  constructor(address: string) {
    this.client = new (loadServices().Authorization)(address, grpc.credentials.createInsecure());
  }
  check(req: unknown, metadata = new grpc.Metadata()): Promise<CheckResponseView> {
    return new Promise((resolve, reject) => {
      (this.client as unknown as { Check: Function }).Check(req, metadata, { deadline: Date.now() + 10_000 }, (err: Error | null, res: CheckResponseView) =>
        err ? reject(err) : resolve(res),
      );
    });
  }
  close(): void {
    this.client.close();
  }
}

export async function startTestServer(configFile: string, extra: { watchPolicy?: boolean } = {}): Promise<RunningServer & { address: string }> {
  const s = await startServer({
    configFile,
    grpcAddress: '127.0.0.1:0',
    adminAddress: '127.0.0.1:0',
    log: createLogger('silent'),
    drainTimeoutMs: 2000,
    ...extra,
  });
  return Object.assign(s, { address: `127.0.0.1:${s.grpcPort}` });
}

/** Header helpers for assertions. */
export function setHeaders(res: CheckResponseView): Map<string, string> {
  return new Map((res.ok_response?.headers ?? []).map((h) => [h.header.key, h.header.value]));
}

export function denyReason(res: CheckResponseView): string | undefined {
  return res.denied_response?.headers.find((h) => h.header.key === 'x-mesh-reason')?.header.value;
}

export function deniedHttpStatus(res: CheckResponseView): number {
  const c = res.denied_response?.status.code;
  const names: Record<string, number> = { Unauthorized: 401, Forbidden: 403, ServiceUnavailable: 503 };
  return typeof c === 'number' ? c : (names[String(c)] ?? Number(c));
}
