/** Defaults for everything the blueprint's template leaves out (contract section 3). */
export const DEFAULTS = {
  tlsMinVersion: '1.3',
  credentialRotationIntervalMs: 600_000,
  auditScope: 'FULL_MESH',
  issuer: 'mesh-pep',
  audiences: ['agent-mesh'],
  jwksFile: 'keys/issuer.jwks.json',
  roleClaim: 'role',
  attestationClaim: 'attestation_hash',
  spiffeClaim: 'spiffe_id',
  clockSkewMs: 30_000,
  keysDir: 'keys',
  pseudonymKeyFile: 'pseudonym.key',
  issuerPrivateKeyFile: 'issuer.private.jwk.json',
  auditFile: 'audit/audit.jsonl',
  auditMaxFileBytes: 64 * 1024 * 1024,
  // No window by default: records that arrive while a sync is in flight already share the next one, and
  // with cluster workers a window added its length to every group cycle (BENCHMARKS.md, "Group commit
  // without a window").
  auditGroupCommitMs: 0,
  maxBodyBytes: 1024 * 1024,
  fheMaxLength: 65_536,
  // Issue 17, finding 4: 256 ciphertexts per body (the old fixed bound) let a 1.4 KB body become
  // 55 MB and block a worker for a second. 32 still takes one array of max_length (16 ciphertexts)
  // twice over; 16 MiB holds 32 public-key ciphertexts (~440 KB each) with room for sealed strings.
  fheMaxCiphertexts: 32,
  fheMaxOutputBytes: 16 * 1024 * 1024,
  // Hardening (docs/hardening.md)
  maxConcurrentChecks: 4096,
  maxConcurrentStreams: 1024,
  maxRequestHeaderBytes: 64 * 1024,
  // 256 MiB per process: the default 1 MiB bodies of every default stream slot fit 4 times over,
  // while the largest allowed body (64 MiB) still fits 4 at once. Copies made while protecting a
  // body (about 2-3x its size) come on top, so the heap peak stays near 1 GiB in the worst case.
  maxInflightBodyBytes: 256 * 1024 * 1024,
  sharedIdentityWindowMs: 300_000,
  sharedIdentityMaxAgents: 100_000,
} as const;
