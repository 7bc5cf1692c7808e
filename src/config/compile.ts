import path from 'node:path';
import { TOPOLOGY_REQUEST_HEADERS, TOPOLOGY_RESPONSE_HEADERS } from '../masking/topology-headers.js';
import { DEFAULTS } from './defaults.js';
import { ASYMMETRIC_ALGORITHMS } from './schema.js';
import type { RawDomain, RawPolicy } from './raw.js';
import { compilePrincipalPatterns } from '../policy/guards/principal-pattern.js';
import type { CompiledPolicy, DomainPolicy, GlobalSettings, ServerSettings, ZoneDefinition } from './types.js';

function freezeDeep<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v) && !(v instanceof Map) && !(v instanceof Set)) {
    for (const k of Object.keys(v)) freezeDeep((v as Record<string, unknown>)[k]);
    Object.freeze(v);
  }
  return v;
}

function unique(list: readonly string[]): string[] {
  return [...new Set(list.map((s) => s.toLowerCase()))];
}

function compileDomain(d: RawDomain, g: GlobalSettings, keysDir: string, resolve: (p: string) => string, zones: readonly ZoneDefinition[]): DomainPolicy {
  const masking = d.metadata_masking ?? false;
  return {
    zoneAccess: d.zones
      ? { rules: (d.zones.allow ?? []).map((r) => ({ from: r.from, to: r.to })), allowUnzoned: d.zones.allow_unzoned ?? false, zones }
      : undefined,
    denySharedIdentity: d.deny_shared_identity ?? false,
    name: d.name,
    tier: d.tier,
    allowedRoles: new Set(d.allowed_roles),
    metadataMasking: masking,
    auditLevel: d.audit_level ?? g.auditScope,
    maxTokenAgeMs: d.max_token_age_ms ?? g.credentialRotationIntervalMs,
    attestationRequired: d.attestation_required ?? false,
    match: d.match
      ? // Hosts compare case-insensitively and without the DNS root's trailing dot (policy/normalize.ts).
        { hosts: unique((d.match.hosts ?? []).map((h) => h.toLowerCase().replace(/\.$/, ''))), pathPrefixes: [...(d.match.path_prefixes ?? [])] }
      : undefined,
    // Only masking domains strip topology; every domain strips the credential (added by the core).
    maskRequestHeaders: masking ? unique([...TOPOLOGY_REQUEST_HEADERS, ...(d.mask_headers ?? [])]) : unique(d.mask_headers ?? []),
    maskResponseHeaders: masking
      ? unique([...TOPOLOGY_RESPONSE_HEADERS, ...(d.mask_response_headers ?? [])])
      : unique(d.mask_response_headers ?? []),
    maxBodyBytes: d.max_body_bytes ?? DEFAULTS.maxBodyBytes,
    dlp: d.dlp ? { action: d.dlp.action, entities: [...(d.dlp.entities ?? [])], canaries: [...(d.dlp.canaries ?? [])] } : undefined,
    computation:
      d.tier === 'COMPUTATION'
        ? {
            mode: d.computation?.mode ?? 'tee',
            recipientsFile: resolve(d.computation?.recipients_file ?? path.join(keysDir, `${d.name}.recipients.jwks.json`)),
            parties: (d.computation?.parties ?? []).map((p) => ({ name: p.name, jwksFile: resolve(p.jwks_file) })),
            fields: [...(d.computation?.fields ?? [])],
          }
        : undefined,
    fhe:
      d.tier === 'FHE'
        ? {
            paths: [...(d.fhe?.paths ?? [])],
            maxLength: d.fhe?.max_length ?? DEFAULTS.fheMaxLength,
            maxCiphertexts: d.fhe?.max_ciphertexts ?? DEFAULTS.fheMaxCiphertexts,
            maxOutputBytes: d.fhe?.max_output_bytes ?? DEFAULTS.fheMaxOutputBytes,
          }
        : undefined,
    keyringFile: path.join(keysDir, `${d.name}.jwks.json`),
  };
}

/** Turns a validated raw policy into frozen runtime lookups. Pure apart from reading `Date.now()`. */
export function compilePolicy(raw: RawPolicy, source: string, hash: string): CompiledPolicy {
  const m = raw.security_mesh;
  const base = path.dirname(source);
  const resolve = (p: string) => path.resolve(base, p);
  const global: GlobalSettings = {
    tlsMinVersion: m.global?.tls_min_version ?? DEFAULTS.tlsMinVersion,
    credentialRotationIntervalMs: m.global?.credential_rotation_interval_ms ?? DEFAULTS.credentialRotationIntervalMs,
    auditScope: m.global?.audit_scope ?? DEFAULTS.auditScope,
  };
  const id = m.identity ?? {};
  const keysDir = resolve(m.keys?.dir ?? DEFAULTS.keysDir);
  const zones: ZoneDefinition[] = (m.zones ?? []).map((z) => ({ name: z.name, principals: [...z.principals], matches: compilePrincipalPatterns(z.principals) }));
  const domains = m.domains.map((d) => compileDomain(d, global, keysDir, resolve, zones));
  const srv = m.server;
  const server: ServerSettings = {
    tls: srv?.tls
      ? {
          certFile: resolve(srv.tls.cert_file),
          keyFile: resolve(srv.tls.key_file),
          clientCaFile: srv.tls.client_ca_file ? resolve(srv.tls.client_ca_file) : undefined,
          ...(srv.tls.allowed_clients ? { allowedClients: Object.freeze([...srv.tls.allowed_clients]) } : {}),
        }
      : undefined,
    maxConcurrentChecks: srv?.max_concurrent_checks ?? DEFAULTS.maxConcurrentChecks,
    maxConcurrentStreams: srv?.max_concurrent_streams ?? DEFAULTS.maxConcurrentStreams,
    maxRequestHeaderBytes: srv?.max_request_header_bytes ?? DEFAULTS.maxRequestHeaderBytes,
    maxInflightBodyBytes: srv?.max_inflight_body_bytes ?? DEFAULTS.maxInflightBodyBytes,
  };
  const policy: CompiledPolicy = {
    source,
    hash,
    loadedAt: Date.now(),
    global,
    identity: {
      issuer: id.issuer ?? DEFAULTS.issuer,
      audiences: id.audiences ?? [...DEFAULTS.audiences],
      jwksFile: id.jwks_uri ? undefined : resolve(id.jwks_file ?? DEFAULTS.jwksFile),
      jwksUri: id.jwks_uri,
      roleClaim: id.role_claim ?? DEFAULTS.roleClaim,
      attestationClaim: id.attestation_claim ?? DEFAULTS.attestationClaim,
      spiffeClaim: id.spiffe_claim ?? DEFAULTS.spiffeClaim,
      clockSkewMs: id.clock_skew_ms ?? DEFAULTS.clockSkewMs,
      algorithms: id.algorithms ?? [...ASYMMETRIC_ALGORITHMS],
    },
    trustedMeasurements: new Set(m.attestation?.trusted_measurements ?? []),
    keys: {
      dir: keysDir,
      pseudonymKeyFile: m.keys?.pseudonym_key_file ? resolve(m.keys.pseudonym_key_file) : path.join(keysDir, DEFAULTS.pseudonymKeyFile),
      issuerPrivateKeyFile: m.keys?.issuer_private_key_file
        ? resolve(m.keys.issuer_private_key_file)
        : path.join(keysDir, DEFAULTS.issuerPrivateKeyFile),
    },
    audit: {
      file: resolve(m.audit?.file ?? DEFAULTS.auditFile),
      maxFileBytes: m.audit?.max_file_bytes ?? DEFAULTS.auditMaxFileBytes,
      groupCommitMs: m.audit?.group_commit_ms ?? DEFAULTS.auditGroupCommitMs,
    },
    domains,
    domainsByName: new Map(domains.map((d) => [d.name, d])),
    zones,
    revocation: {
      agents: new Set(m.revocation?.agents ?? []),
      tokenIds: new Set(m.revocation?.token_ids ?? []),
      keyIds: new Set(m.revocation?.key_ids ?? []),
      file: m.revocation?.file ? resolve(m.revocation.file) : undefined,
    },
    sharedIdentity: {
      windowMs: m.shared_identity?.window_ms ?? DEFAULTS.sharedIdentityWindowMs,
      maxTrackedAgents: m.shared_identity?.max_tracked_agents ?? DEFAULTS.sharedIdentityMaxAgents,
    },
    server,
  };
  return freezeDeep(policy);
}
