/**
 * Request headers that reveal who called whom and by which path. Removed on allow in every
 * metadata_masking domain (contract section 4); the last four are the blueprint's own metadata keys
 * (`sender_ip`, `routing_path`, `internal_id`, `timestamp`) in header form.
 */
export const TOPOLOGY_REQUEST_HEADERS: readonly string[] = Object.freeze([
  'x-forwarded-for',
  'x-real-ip',
  'forwarded',
  'via',
  'x-forwarded-client-cert',
  'x-envoy-peer-metadata',
  'x-envoy-peer-metadata-id',
  'x-envoy-attempt-count',
  'x-envoy-expected-rq-timeout-ms',
  'x-envoy-original-path',
  'x-envoy-internal',
  'x-envoy-external-address',
  'x-envoy-downstream-service-cluster',
  'x-envoy-downstream-service-node',
  'x-envoy-decorator-operation',
  'user-agent',
  'x-sender-ip',
  'x-routing-path',
  'x-internal-id',
  'x-timestamp',
]);

/** Response headers that reveal the callee's software and mesh placement (contract section 5). */
export const TOPOLOGY_RESPONSE_HEADERS: readonly string[] = Object.freeze([
  'server',
  'x-envoy-upstream-service-time',
  'x-envoy-peer-metadata',
  'x-envoy-peer-metadata-id',
  'via',
  'x-powered-by',
]);

/** Headers Check sets; any client-sent header with these prefixes is overwritten or removed. */
export const MESH_HEADER_PREFIXES: readonly string[] = ['x-agent-', 'x-mesh-'];

/** Names Envoy refuses to let an external service remove or rewrite. */
export function isProtectedHeaderName(name: string): boolean {
  return name.startsWith(':') || name === 'host';
}
