import type { FieldSchema } from './schema-walker.js';

/**
 * The policy file's shape. Keys are the blueprint's snake_case names plus the contract's extensions;
 * anything not listed here is an error, not silently ignored.
 */
const str = { kind: 'string', nonEmpty: true } as const;
const strList = { kind: 'array', of: str } as const;
const headerName = {
  kind: 'string',
  pattern: /^[a-z0-9!#$%&'*+.^_`|~-]+$/,
  patternHint: 'is not a lower-case HTTP header name (":"-prefixed names and upper case are not allowed)',
} as const;

export const ASYMMETRIC_ALGORITHMS = [
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA',
] as const;

export const DOMAIN_NAME_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,62}$/i;

const zoneName = {
  kind: 'string',
  pattern: /^[a-z0-9][a-z0-9_.-]{0,62}$/i,
  patternHint: 'must be 1-63 letters, digits, "_", "." or "-"',
} as const;

const domain: FieldSchema = {
  kind: 'object',
  required: ['name', 'tier', 'allowed_roles'],
  fields: {
    name: {
      kind: 'string',
      pattern: DOMAIN_NAME_PATTERN,
      patternHint: 'must be 1-63 letters, digits, "_", "." or "-" (it names key files)',
    },
    tier: { kind: 'string', enum: ['RETRIEVAL', 'COMPUTATION', 'FHE'] },
    allowed_roles: { kind: 'array', of: str, nonEmpty: true },
    metadata_masking: { kind: 'boolean' },
    audit_level: { kind: 'string', enum: ['FULL_MESH', 'OUTPUT_ONLY'] },
    max_token_age_ms: { kind: 'integer', min: 1000 },
    attestation_required: { kind: 'boolean' },
    match: {
      kind: 'object',
      fields: {
        hosts: strList,
        path_prefixes: { kind: 'array', of: { kind: 'string', pattern: /^\//, patternHint: 'must start with "/"' } },
      },
    },
    mask_headers: { kind: 'array', of: headerName },
    mask_response_headers: { kind: 'array', of: headerName },
    max_body_bytes: { kind: 'integer', min: 1, max: 64 * 1024 * 1024 },
    dlp: {
      kind: 'object',
      required: ['action'],
      fields: {
        action: { kind: 'string', enum: ['redact', 'block', 'report'] },
        entities: strList,
        canaries: strList,
      },
    },
    computation: {
      kind: 'object',
      fields: {
        mode: { kind: 'string', enum: ['tee', 'mpc'] },
        recipients_file: str,
        parties: {
          kind: 'array',
          of: { kind: 'object', required: ['name', 'jwks_file'], fields: { name: str, jwks_file: str } },
        },
        fields: strList,
      },
    },
    fhe: {
      kind: 'object',
      fields: {
        paths: strList,
        max_length: { kind: 'integer', min: 1, max: 1 << 20 },
        // Issue 17, finding 4: what one body may cost (docs/fhe.md, "Limits").
        max_ciphertexts: { kind: 'integer', min: 1, max: 4096 },
        max_output_bytes: { kind: 'integer', min: 65_536, max: 1024 * 1024 * 1024 },
      },
    },
    // Hardening (docs/hardening.md): which trust zones may call this domain, shared-identity denial.
    zones: {
      kind: 'object',
      fields: {
        allow: {
          kind: 'array',
          of: { kind: 'object', required: ['from'], fields: { from: zoneName, to: zoneName } },
        },
        allow_unzoned: { kind: 'boolean' },
      },
    },
    deny_shared_identity: { kind: 'boolean' },
  },
};

/** Policy-level hardening sections (docs/hardening.md). */
const zone: FieldSchema = {
  kind: 'object',
  required: ['name', 'principals'],
  fields: {
    name: zoneName,
    principals: {
      kind: 'array',
      nonEmpty: true,
      of: { kind: 'string', pattern: /^\S+$/, patternHint: 'must be a principal pattern without spaces ("*" matches within one path segment)' },
    },
  },
};

const revocationLists = {
  agents: strList,
  token_ids: strList,
  key_ids: strList,
} as const;

const serverSection: FieldSchema = {
  kind: 'object',
  fields: {
    tls: {
      kind: 'object',
      required: ['cert_file', 'key_file'],
      fields: {
        cert_file: str,
        key_file: str,
        client_ca_file: str,
        allowed_clients: {
          kind: 'array',
          nonEmpty: true,
          of: { kind: 'string', pattern: /^\S+$/, patternHint: 'must be a SAN URI (spiffe://…) or DNS name without spaces' },
        },
      },
    },
    max_concurrent_checks: { kind: 'integer', min: 1, max: 1_000_000 },
    max_concurrent_streams: { kind: 'integer', min: 1, max: 1_000_000 },
    max_request_header_bytes: { kind: 'integer', min: 1024, max: 16 * 1024 * 1024 },
    max_inflight_body_bytes: { kind: 'integer', min: 65_536, max: 64 * 1024 * 1024 * 1024 },
  },
};

/** The separate revocation file (`revocation.file`): the same three lists at the top level. */
export const REVOCATION_FILE_SCHEMA: FieldSchema = { kind: 'object', fields: revocationLists };

export const POLICY_SCHEMA: FieldSchema = {
  kind: 'object',
  required: ['security_mesh'],
  fields: {
    security_mesh: {
      kind: 'object',
      required: ['domains'],
      fields: {
        global: {
          kind: 'object',
          fields: {
            tls_min_version: { kind: 'string', enum: ['1.2', '1.3'] },
            credential_rotation_interval_ms: { kind: 'integer', min: 1000 },
            audit_scope: { kind: 'string', enum: ['FULL_MESH', 'OUTPUT_ONLY'] },
          },
        },
        identity: {
          kind: 'object',
          fields: {
            issuer: str,
            audiences: strList,
            jwks_file: str,
            jwks_uri: { kind: 'string', pattern: /^https?:\/\/\S+$/, patternHint: 'must be an http(s) URL' },
            role_claim: str,
            attestation_claim: str,
            spiffe_claim: str,
            clock_skew_ms: { kind: 'integer', min: 0, max: 300_000 },
            algorithms: { kind: 'array', nonEmpty: true, of: { kind: 'string', enum: ASYMMETRIC_ALGORITHMS } },
          },
        },
        attestation: {
          kind: 'object',
          fields: { trusted_measurements: strList },
        },
        keys: {
          kind: 'object',
          fields: { dir: str, pseudonym_key_file: str, issuer_private_key_file: str },
        },
        audit: {
          kind: 'object',
          fields: {
            file: str,
            max_file_bytes: { kind: 'integer', min: 4096 },
            group_commit_ms: { kind: 'number', min: 0 },
          },
        },
        domains: { kind: 'array', of: domain, nonEmpty: true },
        zones: { kind: 'array', of: zone },
        revocation: { kind: 'object', fields: { ...revocationLists, file: str } },
        shared_identity: {
          kind: 'object',
          fields: {
            window_ms: { kind: 'integer', min: 1000, max: 7 * 24 * 3600 * 1000 },
            max_tracked_agents: { kind: 'integer', min: 1, max: 10_000_000 },
          },
        },
        server: serverSection,
      },
    },
  },
};
