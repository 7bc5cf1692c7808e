/**
 * The compiled policy: what the rest of mesh-pep reads. Built once per (re)load by `config/compile.ts`
 * from the validated YAML, frozen, and swapped atomically so no decision sees a half-applied policy.
 * Paths are already absolute; defaults are already applied.
 */
export type Tier = 'RETRIEVAL' | 'COMPUTATION' | 'FHE';
export const TIERS: readonly Tier[] = ['RETRIEVAL', 'COMPUTATION', 'FHE'];
export type AuditLevel = 'FULL_MESH' | 'OUTPUT_ONLY';
export const AUDIT_LEVELS: readonly AuditLevel[] = ['FULL_MESH', 'OUTPUT_ONLY'];
export type DlpAction = 'redact' | 'block' | 'report';

export interface GlobalSettings {
  tlsMinVersion: '1.2' | '1.3';
  credentialRotationIntervalMs: number;
  auditScope: AuditLevel;
}

export interface IdentitySettings {
  issuer: string | undefined;
  audiences: readonly string[];
  jwksFile: string | undefined;
  jwksUri: string | undefined;
  roleClaim: string;
  attestationClaim: string;
  spiffeClaim: string;
  clockSkewMs: number;
  /** Asymmetric JWS algorithms accepted; HMAC and `none` can never be listed. */
  algorithms: readonly string[];
}

export interface KeySettings {
  /** Folder of per-domain keyrings `<dir>/<domain>.jwks.json`. */
  dir: string;
  /** Secret used to derive per-domain pseudonym keys (HMAC). */
  pseudonymKeyFile: string;
  /** Development issuer signing key (`mesh-pep token`); never needed in production. */
  issuerPrivateKeyFile: string;
}

export interface AuditSettings {
  file: string;
  /** Rotate to a new file when the current one exceeds this size; the chain continues across files. */
  maxFileBytes: number;
  /** Group-commit window: records arriving within it share one fdatasync. */
  groupCommitMs: number;
}

export interface DlpSettings {
  action: DlpAction;
  /** Entity names to detect; empty means every built-in entity. */
  entities: readonly string[];
  /** Operator canary patterns (regular expressions, compiled at load). */
  canaries: readonly string[];
}

export interface ComputationParty {
  name: string;
  jwksFile: string;
}

export interface ComputationSettings {
  mode: 'tee' | 'mpc';
  /** TEE: JWK Set of enclave public keys, each naming its measurement in `x-attestation`. */
  recipientsFile: string | undefined;
  /** MPC: the parties, each with its public JWK Set. */
  parties: readonly ComputationParty[];
  /** JSON paths of numeric fields to protect; empty means every number. */
  fields: readonly string[];
}

export interface FheSettings {
  /** JSON paths of numeric arrays/scalars to encrypt; empty means every numeric array and scalar. */
  paths: readonly string[];
  /** Longest numeric array accepted. */
  maxLength: number;
  /** Most CKKS ciphertexts one body may produce (each ~150-450 KB and a few ms of CPU). */
  maxCiphertexts: number;
  /** Largest protected body, in bytes, one plaintext body may become. */
  maxOutputBytes: number;
}

export interface DomainMatch {
  hosts: readonly string[];
  pathPrefixes: readonly string[];
}

export interface DomainPolicy {
  name: string;
  tier: Tier;
  allowedRoles: ReadonlySet<string>;
  metadataMasking: boolean;
  auditLevel: AuditLevel;
  maxTokenAgeMs: number;
  attestationRequired: boolean;
  match: DomainMatch | undefined;
  /** Request headers removed on allow (lower-case); precomputed from the built-in list plus extras. */
  maskRequestHeaders: readonly string[];
  /** Response headers removed by ext_proc in masking domains (lower-case). */
  maskResponseHeaders: readonly string[];
  /** Largest body buffered by ext_proc for this domain. */
  maxBodyBytes: number;
  dlp: DlpSettings | undefined;
  computation: ComputationSettings | undefined;
  fhe: FheSettings | undefined;
  /** Keyring file `<keys.dir>/<name>.jwks.json`. */
  keyringFile: string;
  /** Trust-zone rules for callers of this domain; absent means the domain is not segmented. */
  zoneAccess?: DomainZoneAccess;
  /** Deny (`identity_mismatch`) an agent id seen from two SPIFFE principals within the window. */
  denySharedIdentity?: boolean;
}

/** A trust zone: the workloads whose SPIFFE principal matches one of its patterns. */
export interface ZoneDefinition {
  name: string;
  principals: readonly string[];
  /** Compiled from `principals`; "*" matches within one path segment. */
  matches: (principal: string) => boolean;
}

export interface ZoneRule {
  from: string;
  /** Zone of the callee (from the destination principal); undefined means any callee. */
  to: string | undefined;
}

/**
 * Carries the zone definitions too, so the guard reads zones and rules from the same compiled policy
 * as the rest of the decision (a reload never mixes old zones with new rules).
 */
export interface DomainZoneAccess {
  rules: readonly ZoneRule[];
  allowUnzoned: boolean;
  zones: readonly ZoneDefinition[];
}

export interface RevocationLists {
  agents: ReadonlySet<string>;
  tokenIds: ReadonlySet<string>;
  keyIds: ReadonlySet<string>;
}

export interface RevocationSettings extends RevocationLists {
  /** Separate watched file with the same lists (absolute path). */
  file: string | undefined;
}

export interface SharedIdentitySettings {
  windowMs: number;
  maxTrackedAgents: number;
}

export interface ServerTlsSettings {
  certFile: string;
  keyFile: string;
  /** When set, clients must present a certificate signed by this CA (mTLS). */
  clientCaFile: string | undefined;
  /**
   * When set (mTLS only), a client certificate must also carry one of these identities: a URI SAN
   * (an entry with `://`, e.g. the Envoys' SPIFFE ids) or a DNS SAN (any other entry, case-insensitive).
   */
  allowedClients?: readonly string[];
}

export interface ServerSettings {
  tls: ServerTlsSettings | undefined;
  /** Checks in flight beyond this are denied `overloaded` at once. */
  maxConcurrentChecks: number;
  /** ext_proc streams open at once beyond this are refused. */
  maxConcurrentStreams: number;
  /** Total bytes of request header names and values a Check accepts. */
  maxRequestHeaderBytes: number;
  /** Body bytes all ext_proc streams of one process may hold at once; beyond it bodies shed `overloaded`. */
  maxInflightBodyBytes: number;
}

export interface CompiledPolicy {
  /** Absolute path of the file this came from. */
  source: string;
  /** SHA-256 (hex) of the file's bytes: the policy version operators see in Status and logs. */
  hash: string;
  loadedAt: number;
  global: GlobalSettings;
  identity: IdentitySettings;
  trustedMeasurements: ReadonlySet<string>;
  keys: KeySettings;
  audit: AuditSettings;
  domains: readonly DomainPolicy[];
  domainsByName: ReadonlyMap<string, DomainPolicy>;
  /** Hardening sections (docs/hardening.md); always set by compile, optional for hand-built policies. */
  zones?: readonly ZoneDefinition[];
  revocation?: RevocationSettings;
  sharedIdentity?: SharedIdentitySettings;
  server?: ServerSettings;
}
