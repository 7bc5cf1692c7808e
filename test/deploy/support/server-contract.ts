/**
 * What the mesh-pep server offers Envoy, per the external contract (CONTRACT.md §1, §2, §5). Deployment
 * configs are checked against this one table so a port or processing-mode change is made in one place.
 */
export const SERVER = {
  grpcPort: 9001,
  adminPort: 9090,
  grpcServices: [
    'envoy.service.auth.v3.Authorization',
    'envoy.service.ext_proc.v3.ExternalProcessor',
    'grpc.health.v1.Health',
  ],
  adminPaths: { liveness: '/healthz', readiness: '/readyz', metrics: '/metrics' },
  /** ext_proc processing modes the Process handler implements, per ProcessingMode field. */
  processingModes: {
    request_header_mode: ['SEND'],
    response_header_mode: ['SEND'],
    request_body_mode: ['BUFFERED', 'STREAMED'],
    response_body_mode: ['BUFFERED', 'STREAMED'],
    request_trailer_mode: ['SKIP'],
    response_trailer_mode: ['SKIP'],
  } as Readonly<Record<string, readonly string[]>>,
  /** Metadata namespace the Check decision is written to and Process reads back. */
  authzMetadataNamespace: 'envoy.filters.http.ext_authz',
  /** Domains of the bundled policy (config/security_mesh.yaml) and their tiers. */
  bundledDomains: {
    agent_memory: 'RETRIEVAL',
    pii_inference: 'COMPUTATION',
    financial_models: 'FHE',
    coordination: 'RETRIEVAL',
  } as Readonly<Record<string, string>>,
} as const;
