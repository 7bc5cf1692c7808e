import * as grpc from '@grpc/grpc-js';
import { loadServices } from '../protos.js';
import { envoyCheckRequest } from './check-request.js';
import { EnvoyPeer, type ExchangeResult, type HeaderList, type HttpResponse, type ProcessingModeSpec } from './ext-proc-peer.js';

/**
 * An inbound sidecar's HTTP filter chain as Istio configures it for mesh-pep: ext_authz (Check) →
 * ext_proc (Process) → router. A deny is Envoy's local reply from `denied_response`; an allow applies
 * the header mutations (overwrite, remove) and forwards Check's dynamic metadata to ext_proc in
 * `metadata_context`, as `metadata_options.forwarding_namespaces` does.
 */
export interface SidecarRequest {
  method: string;
  path: string;
  host: string;
  headers?: Record<string, string>;
  body?: Buffer;
  token?: string;
  /** The caller's mTLS principal (SPIFFE id). */
  principal?: string;
  /** The route's `context_extensions.domain`. */
  domain?: string;
  /** Further `context_extensions` of the route (e.g. `hop: egress`). */
  extensions?: Record<string, string>;
}

export interface CheckView {
  status: { code: number; message: string };
  ok_response?: { headers: { header: { key: string; value: string } }[]; headers_to_remove: string[] } | null;
  denied_response?: { status: { code: string | number }; headers: { header: { key: string; value: string } }[]; body: string } | null;
  dynamic_metadata?: { fields: Record<string, { stringValue?: string }> } | null;
}

export type SidecarResult =
  | { kind: 'denied'; reason: string; status: number; body: string; check: CheckView }
  | { kind: 'allowed'; removed: string[]; metadata: Record<string, string>; check: CheckView; exchange: ExchangeResult };

const HTTP_NAMES: Record<string, number> = { Unauthorized: 401, Forbidden: 403, ServiceUnavailable: 503 };

export class SidecarPeer {
  private readonly authz: grpc.Client;

  constructor(
    private readonly address: string,
    private readonly mode: ProcessingModeSpec = { requestBody: 'BUFFERED', responseBody: 'BUFFERED' },
  ) {
    this.authz = new (loadServices().Authorization)(address, grpc.credentials.createInsecure());
  }

  check(req: SidecarRequest): Promise<CheckView> {
    const checkRequest = envoyCheckRequest({
      host: req.host,
      path: req.path,
      method: req.method,
      token: req.token,
      headers: req.headers,
      principal: req.principal,
      domain: req.domain,
      ...(req.extensions ? { extensions: req.extensions } : {}),
    });
    return new Promise((resolve, reject) =>
      (this.authz as unknown as { Check: Function }).Check(checkRequest, { deadline: Date.now() + 10_000 }, (e: Error | null, r: CheckView) => (e ? reject(e) : resolve(r))),
    );
  }

  async send(req: SidecarRequest, upstream: (r: NonNullable<ExchangeResult['upstreamRequest']>) => Promise<HttpResponse> | HttpResponse): Promise<SidecarResult> {
    const check = await this.check(req);
    if (check.status.code !== 0) {
      const d = check.denied_response;
      const c = d?.status.code;
      const status = typeof c === 'number' ? c : (HTTP_NAMES[String(c)] ?? 403);
      // Real Envoy runs ext_authz's local reply through ext_proc's response path as well (a stream
      // that starts at response headers, without Check metadata): the client gets what comes out.
      const peer = new EnvoyPeer({ address: this.address, mode: this.mode, allowEnvoy: true });
      try {
        const headers: HeaderList = (d?.headers ?? []).map((h) => [h.header.key.toLowerCase(), h.header.value]);
        const body = Buffer.from(d?.body ?? '');
        const reply = await peer.localReply({ status, headers: [...headers, ['content-length', String(body.length)]], body });
        const out = reply.response;
        return {
          kind: 'denied',
          reason: out.headers.find(([k]) => k === 'x-mesh-reason')?.[1] ?? check.status.message,
          status: out.status,
          body: out.body.toString('utf8'),
          check,
        };
      } finally {
        peer.close();
      }
    }
    const headers = new Map<string, string>([
      [':method', req.method],
      [':path', req.path],
      [':authority', req.host],
      [':scheme', 'http'],
    ]);
    for (const [k, v] of Object.entries(req.headers ?? {})) headers.set(k.toLowerCase(), v);
    if (req.token) headers.set('authorization', `Bearer ${req.token}`);
    if (req.body) headers.set('content-length', String(req.body.length));
    for (const h of check.ok_response?.headers ?? []) headers.set(h.header.key, h.header.value);
    const removed = check.ok_response?.headers_to_remove ?? [];
    for (const name of removed) headers.delete(name);
    const metadata = Object.fromEntries(Object.entries(check.dynamic_metadata?.fields ?? {}).map(([k, v]) => [k, v.stringValue ?? '']));
    const peer = new EnvoyPeer({ address: this.address, mode: this.mode, allowEnvoy: true, authzMetadata: metadata });
    try {
      const list: HeaderList = [...headers.entries()];
      const exchange = await peer.exchange({ headers: list, ...(req.body ? { body: req.body } : {}) }, upstream);
      return { kind: 'allowed', removed, metadata, check, exchange };
    } finally {
      peer.close();
    }
  }

  close(): void {
    this.authz.close();
  }
}
