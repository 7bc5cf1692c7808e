import { randomUUID } from 'node:crypto';

/**
 * Builds the CheckRequest an Istio sidecar's ext_authz filter sends: lower-case headers with
 * pseudo-headers, the authorization header, the caller's SPIFFE principal from mTLS, and per-route
 * context extensions. Used by `mesh-pep check`, the demo, the probe and the tests, so all of them speak
 * to the server exactly as Envoy does.
 */
export interface EnvoyCheckOptions {
  host?: string;
  path?: string;
  method?: string;
  /** Bearer token; sets `authorization: Bearer <token>`. */
  token?: string;
  /** A raw `authorization` value (overrides `token`). */
  authorization?: string;
  /** Further request headers (names are sent as given; Envoy lower-cases them). */
  headers?: Record<string, string>;
  /** The caller's principal as Envoy saw it (default: a retriever's SPIFFE id). */
  principal?: string;
  destinationPrincipal?: string;
  /** `context_extensions.domain`, as a route sets it. */
  domain?: string;
  extensions?: Record<string, string>;
  /** Add the headers an Envoy/Istio sidecar adds (x-forwarded-*, x-envoy-*, user-agent, B3). */
  sidecarHeaders?: boolean;
  /** The request body, as ext_authz sends it with `with_request_body` (`http.body`). */
  body?: string;
}

export const CALLER_SPIFFE = 'spiffe://cluster.local/ns/agents/sa/retriever';
export const CALLEE_SPIFFE = 'spiffe://cluster.local/ns/agents/sa/memory';

function sidecarHeaders(): Record<string, string> {
  return {
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
  };
}

export function envoyCheckRequest(o: EnvoyCheckOptions = {}) {
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
    ...(o.sidecarHeaders ? sidecarHeaders() : {}),
    ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
    ...(o.authorization !== undefined ? { authorization: o.authorization } : {}),
    ...o.headers,
  };
  return {
    attributes: {
      source: { principal: o.principal ?? CALLER_SPIFFE, address: { socket_address: { address: '10.12.0.7', port_value: 41234 } } },
      destination: { principal: o.destinationPrincipal ?? CALLEE_SPIFFE, address: { socket_address: { address: '10.12.0.9', port_value: 8080 } } },
      request: {
        time: { seconds: Math.floor(Date.now() / 1000), nanos: 0 },
        http: { id, method, path, host, scheme: 'http', protocol: 'HTTP/1.1', headers, size: o.body === undefined ? '-1' : String(Buffer.byteLength(o.body)), ...(o.body !== undefined ? { body: o.body } : {}) },
      },
      context_extensions: { ...(o.domain ? { domain: o.domain } : {}), ...o.extensions },
    },
  };
}
